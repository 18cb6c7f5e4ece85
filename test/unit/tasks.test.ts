import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { slowTask } from "../../examples/tools.js";
import {
  MemoryTaskStore,
  TaskManager,
  ToolContext,
  ToolRegistry,
  defineConfig,
  defineTool,
  staticConfig,
  taskTools,
  type RawConfig,
  type TaskRecord,
} from "../../src/index.js";
import { RecordingLogger, eventually } from "../support/helpers.js";

function registry(cfg: RawConfig): ToolRegistry {
  const reg = new ToolRegistry({ config: staticConfig(defineConfig({ backgroundThreshold: 0.05, ...cfg })), logger: new RecordingLogger() });
  reg.register(slowTask, ...taskTools(() => reg.taskManager));
  return reg;
}

test("a call still running after the threshold returns a task id at once and keeps running", async () => {
  const reg = registry({});
  const started = Date.now();
  const outcome = await reg.execute("slow_task", { seconds: 0.3, label: "report" }, { userId: "alice" });
  assert.ok(Date.now() - started < 250, "returned before the handler finished");
  assert.equal(outcome.kind, "background");
  assert.ok(outcome.taskId);
  assert.match(outcome.text, new RegExp(`^Tool 'slow_task' is still running, so it continues in the background as task ${outcome.taskId}\\.`));
  const id = outcome.taskId;
  assert.equal((await reg.taskManager?.getTaskResult(id))?.status, "running");
  assert.equal(
    await reg.call("get_task_result", { task_id: id }, { userId: "alice", ctx: new ToolContext({ userId: "alice" }) }),
    `Task ${id} (slow_task) is still running.`,
  );

  await eventually(async () => assert.equal((await reg.taskManager?.getTaskResult(id))?.status, "done"));
  const done = await reg.taskManager?.getTaskResult(id);
  assert.equal(done?.result, "report finished after 0.3s.");
  assert.equal(done?.userId, "alice");
  assert.ok((done?.finishedAt ?? 0) >= (done?.startedAt ?? Infinity));
  assert.equal(
    await reg.call("get_task_result", { task_id: id }, { ctx: new ToolContext({ userId: "alice" }) }),
    `Task ${id} (slow_task) finished: report finished after 0.3s.`,
  );
  // Another user's task id tells them nothing.
  assert.equal(await reg.call("get_task_result", { task_id: id }, { ctx: new ToolContext({ userId: "bob" }) }), `No task with id '${id}'.`);
  const listed = JSON.parse(await reg.call("list_tasks", {}, { ctx: new ToolContext({ userId: "alice" }) })) as { id: string; status: string }[];
  assert.deepEqual(
    listed.map((t) => [t.id, t.status]),
    [[id, "done"]],
  );
  assert.deepEqual(JSON.parse(await reg.call("list_tasks", {}, { ctx: new ToolContext({ userId: "bob" }) })), []);
  await reg.close();
});

test("a failed background task stores its error text", async () => {
  const reg = registry({});
  reg.register(
    defineTool({
      name: "fails_late",
      description: "",
      parameters: z.object({}),
      handler: async () => {
        await sleep(150);
        throw new Error("late failure");
      },
    }),
  );
  const { taskId } = await reg.execute("fails_late", {});
  assert.ok(taskId);
  await eventually(async () => assert.equal((await reg.taskManager?.getTaskResult(taskId))?.status, "error"));
  assert.equal((await reg.taskManager?.getTaskResult(taskId))?.result, "Tool 'fails_late' failed: late failure");
  await reg.close();
});

test("noBackground tools, nested calls, and a registry without a task manager are never offloaded", async () => {
  const reg = registry({});
  reg.register(defineTool({ name: "pinned_fg", description: "", parameters: z.object({}), noBackground: true, handler: () => sleep(150).then(() => "fg") }));
  assert.equal(await reg.call("pinned_fg", {}), "fg");
  assert.equal(await reg.call("slow_task", { seconds: 0.15 }, { nested: true }), "work finished after 0.15s.");
  reg.taskManager = null;
  assert.equal(await reg.call("slow_task", { seconds: 0.15 }), "work finished after 0.15s.");
});

test("past the cap on running tasks, a call waits in the foreground instead", async () => {
  const reg = registry({ taskMaxRunning: 1 });
  const first = await reg.execute("slow_task", { seconds: 0.4 });
  assert.equal(first.kind, "background");
  assert.equal(reg.taskManager?.runningCount, 1);
  const second = await reg.execute("slow_task", { seconds: 0.15 });
  assert.equal(second.kind, "ok");
  assert.equal(second.text, "work finished after 0.15s.");
  await reg.close();
});

test("results expire after their TTL", async () => {
  const reg = registry({ taskResultTtl: 0.2 });
  const { taskId } = await reg.execute("slow_task", { seconds: 0.1 });
  assert.ok(taskId);
  await eventually(async () => assert.equal((await reg.taskManager?.getTaskResult(taskId))?.status, "done"));
  await sleep(250);
  assert.equal(await reg.taskManager?.getTaskResult(taskId), null);
  assert.deepEqual(await reg.taskManager?.listTasks(), []);
});

test("close() aborts running tasks and waits for their outcome to be stored", async () => {
  const reg = registry({});
  const { taskId } = await reg.execute("slow_task", { seconds: 30 });
  assert.ok(taskId);
  await reg.close();
  const record = await reg.taskManager?.getTaskResult(taskId);
  assert.equal(record?.status, "error");
  assert.equal(record?.result, "Tool 'slow_task' was cancelled: task manager closed");
  assert.equal(reg.taskManager?.runningCount, 0);
});

test("a background task is aborted after taskTimeout", async () => {
  const reg = registry({ taskTimeout: 0.2 });
  const { taskId } = await reg.execute("slow_task", { seconds: 30 });
  assert.ok(taskId);
  await eventually(async () => assert.equal((await reg.taskManager?.getTaskResult(taskId))?.status, "error"));
  assert.equal((await reg.taskManager?.getTaskResult(taskId))?.result, "Tool 'slow_task' was cancelled: background task exceeded 0.2s");
});

test("the memory store holds at most maxRecords", async () => {
  const store = new MemoryTaskStore(3);
  for (let i = 0; i < 10; i++) await store.put({ id: `t${i}`, tool: "x", userId: "", status: "done", startedAt: i }, 60);
  assert.deepEqual(
    (await store.list()).map((r) => r.id),
    ["t9", "t8", "t7"],
  );
  assert.equal(await store.get("t0"), null);
});

test("a background task deaf to its abort is given up on, and its slot comes back", async () => {
  const reg = registry({ taskTimeout: 0.1, taskMaxRunning: 1 });
  reg.register(defineTool({ name: "deaf", description: "", parameters: z.object({}), handler: () => new Promise<string>(() => undefined) }));
  const { taskId } = await reg.execute("deaf", {});
  assert.ok(taskId);
  await eventually(async () => assert.equal((await reg.taskManager?.getTaskResult(taskId))?.status, "error"), 5000);
  assert.equal((await reg.taskManager?.getTaskResult(taskId))?.result, "Tool 'deaf' was cancelled: background task exceeded 0.1s");
  assert.equal(reg.taskManager?.runningCount, 0);
  await reg.close();
});

test("task tools show a user only their own tasks, an empty user id included", async () => {
  const reg = registry({});
  const { taskId } = await reg.execute("slow_task", { seconds: 0.1 }, { userId: "alice", ctx: new ToolContext({ userId: "alice" }) });
  assert.ok(taskId);
  const anonymous = new ToolContext();
  assert.equal(await reg.call("get_task_result", { task_id: taskId }, { ctx: anonymous }), `No task with id '${taskId}'.`);
  assert.deepEqual(JSON.parse(await reg.call("list_tasks", {}, { ctx: anonymous })), []);
  await reg.close();
});

test("a store that fails the first write of a task still gets its time limit and its outcome", async () => {
  /** Fails the first put (a Redis blip), then works. */
  class FlakyStore extends MemoryTaskStore {
    failed = false;
    override put(record: TaskRecord, ttlSeconds: number): Promise<void> {
      if (!this.failed) {
        this.failed = true;
        return Promise.reject(new Error("connection lost"));
      }
      return super.put(record, ttlSeconds);
    }
  }
  const logger = new RecordingLogger();
  const config = staticConfig(defineConfig({ backgroundThreshold: 0.05, taskTimeout: 0.3 }));
  const manager = new TaskManager({ config, logger, store: new FlakyStore() });
  const reg = new ToolRegistry({ config, logger, taskManager: manager });
  let aborted = false;
  reg.register(
    defineTool({
      name: "waits",
      description: "",
      parameters: z.object({}),
      handler: (_a, ctx) =>
        new Promise<string>((resolve) =>
          ctx.signal.addEventListener("abort", () => {
            aborted = true;
            resolve("stopped");
          }),
        ),
    }),
  );
  const { taskId } = await reg.execute("waits", {});
  assert.ok(taskId);
  await eventually(() => assert.equal(aborted, true), 3000);
  // Stopped by its time limit, and its outcome stored though the first record never was.
  await eventually(async () => assert.equal((await manager.getTaskResult(taskId))?.result, "stopped"), 3000);
  assert.equal(manager.runningCount, 0);
  assert.ok(logger.at("error").some((r) => r.msg === "background task record could not be written; its outcome is stored when it ends"));
  await reg.close();
});

test("close() leaves no timer behind for a task deaf to its abort", async () => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  const reg = registry({ taskTimeout: 600 });
  reg.register(defineTool({ name: "deaf", description: "", parameters: z.object({}), handler: () => new Promise<string>(() => undefined) }));
  const before = timers();
  const { taskId } = await reg.execute("deaf", {});
  assert.ok(taskId);
  assert.ok(timers() > before, "the task's time limit is armed");
  await reg.close();
  assert.equal(timers(), before, "close() leaves nothing that keeps the process alive");
});

test("a background task's handler that first asks for its signal late does not follow the caller's signal", async () => {
  const reg = registry({ taskTimeout: 60 });
  const caller = new AbortController();
  let signal: AbortSignal | undefined;
  reg.register(
    defineTool({
      name: "late_signal",
      description: "",
      parameters: z.object({}),
      handler: async (_a, ctx) => {
        await sleep(150); // past the threshold: now a background task
        signal = ctx.signal;
        await sleep(100);
        return signal.aborted ? "aborted" : "finished";
      },
    }),
  );
  const { taskId, kind } = await reg.execute("late_signal", {}, { ctx: new ToolContext({ userId: "u", signal: caller.signal }) });
  assert.equal(kind, "background");
  assert.ok(taskId);
  await eventually(() => assert.ok(signal), 2000);
  // The chat that started it ends: the task, handed to the task manager, has limits of its own.
  caller.abort(new Error("chat turn over"));
  await eventually(async () => assert.equal((await reg.taskManager?.getTaskResult(taskId))?.status, "done"), 3000);
  assert.equal((await reg.taskManager?.getTaskResult(taskId))?.result, "finished");
  await reg.close();
});
