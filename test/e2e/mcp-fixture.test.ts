// An in-repo MCP server (test/support/fixtures/mcp-server.ts, the SDK's McpServer) as a tools worker's
// source, called from a caller over the real Redis: progress and cancellation pass through, results keep
// their structure, list_changed republishes, a call in flight when the server dies fails clearly, and a
// Streamable HTTP server is reconnected after it comes back.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import {
  createCaller,
  createToolsWorker,
  defineConfig,
  silentLogger,
  staticConfig,
  type Caller,
  type ProgressUpdate,
  type ToolsWorker,
} from "../../src/index.js";
import { ChatResponder } from "../../src/inference/chat-responder.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { loadCatalog } from "../../src/tool-exec/catalog-parts.js";
import { eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, exited, freePort, testKeys } from "../support/redis-helpers.js";

const FIXTURE = fileURLToPath(new URL("../support/fixtures/mcp-server.js", import.meta.url));
const TIMING = { restartMinMs: 100, restartMaxMs: 500, connectTimeoutMs: 5000, pingEveryMs: 200 };

describe("an MCP server as a tools worker's source", () => {
  let k: Keys;
  let redis: RedisNode;
  let caller: Caller;
  let worker: ToolsWorker;
  let dir: string;
  const marks = (): string => readFileSync(join(dir, "marks"), { encoding: "utf8", flag: "a+" });
  const catalogNames = async (): Promise<string[]> => ((await loadCatalog(redis, k))?.tools ?? []).map((t) => t.name);

  before(async () => {
    k = testKeys();
    redis = await connect();
    dir = mkdtempSync(join(tmpdir(), "toolfleet-mcp-"));
    process.env.MCP_FIXTURE_MARKS = join(dir, "marks"); // the server inherits the worker's environment
    const config = staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false }));
    worker = createToolsWorker({
      config,
      logger: silentLogger,
      workerId: "mcp-fx",
      mcp: [{ command: `${process.execPath} ${FIXTURE}`, prefix: "fx_" }],
      mcpTiming: TIMING,
    });
    await worker.start();
    caller = createCaller({ config, logger: silentLogger, workerId: "mcp-fx-caller" });
    await caller.start();
  });

  after(async () => {
    await caller.stop();
    const pid = worker.mcp.sources[0]?.pid;
    await worker.stop();
    if (pid !== undefined) assert.throws(() => process.kill(pid, 0), /ESRCH/, "the MCP server ended with the worker");
    delete process.env.MCP_FIXTURE_MARKS;
    rmSync(dir, { recursive: true, force: true });
    await dropNamespace(redis, k);
    await closeRedis(redis);
  });

  test("its tools are published with the prefix, hints and output schema", async () => {
    const catalog = await loadCatalog(redis, k);
    const names = (catalog?.tools ?? [])
      .map((t) => t.name)
      .filter((n) => n.startsWith("fx_"))
      .sort();
    assert.deepEqual(names, ["fx_add_tool", "fx_fail", "fx_pid", "fx_remove_tool", "fx_slow_steps", "fx_weather"]);
    const weather = catalog?.tools.find((t) => t.name === "fx_weather");
    assert.deepEqual(weather?.annotations, { readOnlyHint: true, idempotentHint: true, readOnly: true, idempotent: true });
    assert.ok(weather?.outputSchema, "the output schema is published");
  });

  test("progress reaches the caller as the MCP server reports it", async () => {
    const updates: ProgressUpdate[] = [];
    const outcome = await caller.registry.execute("fx_slow_steps", { steps: 3, ms: 200 }, { userId: "u", onProgress: (u) => updates.push(u) });
    assert.equal(outcome.kind, "ok", outcome.text);
    assert.equal(outcome.text, "done after 3 steps");
    // The last report races the result (the reply may overtake it): the first two arrive, in order, as sent.
    const sent = [1, 2, 3].map((i) => ({ progress: i, total: 3, message: `step ${i}` }));
    assert.deepEqual(updates.slice(0, 2), sent.slice(0, 2));
    assert.deepEqual(updates, sent.slice(0, updates.length));
  });

  test("a call cancelled by its caller is cancelled on the MCP server: the tool sees the abort and never finishes", async () => {
    const controller = new AbortController();
    let first: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (first = resolve));
    const running = caller.registry.execute("fx_slow_steps", { steps: 50, ms: 100 }, { userId: "u", signal: controller.signal, onProgress: () => first() });
    await started;
    controller.abort(new Error("the user gave up"));
    assert.equal((await running).kind, "cancelled");
    await eventually(() => assert.match(marks(), /^aborted /m), 5000);
    assert.doesNotMatch(marks(), /^finished 50$/m);
  });

  test("structured content and isError keep their shape; bad arguments are refused before the server sees them", async () => {
    const weather = await caller.registry.execute("fx_weather", { city: "Oslo", at: [1, 2] }, { userId: "u" });
    assert.equal(weather.kind, "ok", weather.text);
    assert.deepEqual(weather.result?.structuredContent, { city: "Oslo", celsius: 21 });
    const fail = await caller.registry.execute("fx_fail", {}, { userId: "u" });
    assert.equal(fail.kind, "error");
    assert.match(fail.text, /it broke/);
    assert.equal(fail.result?.isError, true);
    const bad = await caller.registry.execute("fx_weather", { city: 3, at: [1] }, { userId: "u" });
    assert.equal(bad.kind, "invalid_args", bad.text);
    assert.match(bad.text, /city: must be string/);
  });

  test("a chat's slash command calls an MCP tool like any fleet tool (the inference tier's responder, no LLM)", async () => {
    const config = staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, chatCommands: true }));
    const responder = new ChatResponder({ registry: caller.registry, config, logger: silentLogger });
    const identity = { platform: "test", channelId: "c1", userId: "alice", userName: "Alice", guildId: "", messageId: "m1" };
    const reply = await responder.answer({ id: "chat-mcp", identity, text: '/fx_weather {"city":"Oslo"}', history: [] }, null);
    assert.equal(reply.text, 'fx_weather → {"city":"Oslo","celsius":21}');
  });

  test("list_changed: a tool the server adds is published and callable; one it removes leaves the catalog", async () => {
    assert.equal((await caller.registry.execute("fx_add_tool", { name: "late" }, { userId: "u" })).text, "added late");
    await eventually(async () => assert.ok((await catalogNames()).includes("fx_late")), 5000);
    const late = await eventually(async () => {
      const outcome = await caller.registry.execute("fx_late", {}, { userId: "u" });
      assert.equal(outcome.kind, "ok", outcome.text);
      return outcome;
    }, 5000);
    assert.equal(late.text, "late");
    await caller.registry.execute("fx_remove_tool", { name: "late" }, { userId: "u" });
    await eventually(async () => assert.ok(!(await catalogNames()).includes("fx_late")), 5000);
  });

  test("the server dying under a call: the call fails clearly, the server is restarted, its tools answer again", async () => {
    const source = worker.mcp.sources[0];
    const pid = source?.pid;
    assert.ok(pid);
    let first: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (first = resolve));
    const running = caller.registry.execute("fx_slow_steps", { steps: 50, ms: 100 }, { userId: "u", onProgress: () => first() });
    await started;
    process.kill(pid, "SIGKILL");
    const outcome = await running;
    assert.equal(outcome.kind, "error");
    assert.match(outcome.text, /went away during the call to 'slow_steps'/);
    await eventually(async () => assert.ok((await catalogNames()).includes("fx_pid")), 10_000);
    const again = await eventually(async () => {
      const o = await caller.registry.execute("fx_pid", {}, { userId: "u" });
      assert.equal(o.kind, "ok", o.text);
      return o;
    }, 5000);
    assert.notEqual(Number(again.text), pid);
    assert.equal(source?.pid, Number(again.text));
  });
});

describe("a Streamable HTTP MCP server as a source", () => {
  test("connected by URL; when it goes away its tools leave, and come back once it is up again", async () => {
    const k = testKeys();
    const redis = await connect();
    const port = await freePort();
    const serve = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, [FIXTURE, "--http", String(port)], { stdio: ["ignore", "pipe", "inherit"] });
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on("data", (d: Buffer) => d.toString().includes("listening") && resolve());
        child.once("exit", () => reject(new Error("the HTTP fixture exited")));
      });
      return child;
    };
    let server = await serve();
    const config = staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false }));
    const worker = createToolsWorker({
      config,
      logger: silentLogger,
      workerId: "mcp-http",
      mcp: [{ url: `http://127.0.0.1:${port}/mcp`, prefix: "h_" }],
      mcpTiming: TIMING,
    });
    const caller = createCaller({ config, logger: silentLogger, workerId: "mcp-http-caller" });
    const names = async (): Promise<string[]> => ((await loadCatalog(redis, k))?.tools ?? []).map((t) => t.name);
    try {
      await worker.start();
      await caller.start();
      const pidOf = async (): Promise<string> => {
        const o = await caller.registry.execute("h_pid", {}, { userId: "u" });
        assert.equal(o.kind, "ok", o.text);
        return o.text;
      };
      assert.equal(await pidOf(), String(server.pid));
      server.kill("SIGKILL");
      await exited(server);
      await eventually(async () => assert.ok(!(await names()).includes("h_pid")), 5000);
      server = await serve();
      await eventually(async () => assert.ok((await names()).includes("h_pid")), 10_000);
      assert.equal(await eventually(pidOf, 5000), String(server.pid));
    } finally {
      await caller.stop();
      await worker.stop();
      server.kill("SIGKILL");
      await exited(server);
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  });
});
