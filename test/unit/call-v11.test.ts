// Protocol v1.1 on the local registry: cancellation, progress, structured results, per-tool policy
// (docs/protocol.md §9). The cross-process halves are in test/redis/v11.test.ts and test/e2e/v11.test.ts.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { z } from "zod";
import {
  ToolContext,
  ToolRegistry,
  ToolfleetError,
  defineConfig,
  defineTool,
  progressLine,
  resultText,
  staticConfig,
  toolResult,
  type PlatformAdapter,
  type ProgressUpdate,
} from "../../src/index.js";
import { ProgressSender, decodeProgress, encodeProgress } from "../../src/redis/progress-entry.js";
import { decodeReply, decodeRequest, encodeReply, encodeRequest, emptyWriteBack, type ToolReply, type ToolRequest } from "../../src/tool-exec/codec.js";
import { RecordingLogger } from "../support/helpers.js";
import { runToolLoop, type ChatMessage, type ChatModel } from "../../src/inference/llm-loop.js";
import { progressPrinter } from "../../src/cli/call.js";
import { AbandonWatch } from "../../src/gateway/abandon-watch.js";

const PNG = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex").toString("base64");

function registry(...tools: ReturnType<typeof defineTool>[]): ToolRegistry {
  const reg = new ToolRegistry({ config: staticConfig(defineConfig({ backgroundThreshold: 0 })), logger: new RecordingLogger() });
  reg.register(...tools);
  return reg;
}

/** Waits on its signal until aborted, reporting whether the abort reached it. */
function waiter(seen: { aborted?: unknown; key?: string }): ReturnType<typeof defineTool> {
  return defineTool({
    name: "waits",
    description: "",
    parameters: z.object({}),
    handler: async (_a, ctx) => {
      seen.key = ctx.idempotencyKey;
      await new Promise<never>((_r, reject) =>
        ctx.signal.addEventListener("abort", () => {
          seen.aborted = ctx.signal.reason;
          reject(ctx.signal.reason as Error);
        }),
      );
      return "never";
    },
  });
}

describe("cancellation", () => {
  test("aborting the call's signal aborts ctx.signal with the reason and settles the call as cancelled", async () => {
    const seen: { aborted?: unknown } = {};
    const reg = registry(waiter(seen));
    const controller = new AbortController();
    const running = reg.execute("waits", {}, { signal: controller.signal, timeoutMs: 60_000 });
    await sleep(5);
    controller.abort(new Error("the user left"));
    const outcome = await running;
    assert.equal(outcome.kind, "cancelled");
    assert.match(outcome.text, /cancelled: the user left/);
    assert.equal((seen.aborted as Error).message, "the user left");
  });

  test("a handler that ignores its signal still settles at once as cancelled", async () => {
    const reg = registry(defineTool({ name: "deaf", description: "", parameters: z.object({}), handler: () => sleep(300).then(() => "late") }));
    const controller = new AbortController();
    const running = reg.execute("deaf", {}, { signal: controller.signal });
    controller.abort("stop");
    const outcome = await running;
    assert.equal(outcome.kind, "cancelled");
  });

  test("a call whose signal is already aborted never runs", async () => {
    let ran = false;
    const reg = registry(defineTool({ name: "t", description: "", parameters: z.object({}), handler: () => ((ran = true), "x") }));
    const outcome = await reg.execute("t", {}, { signal: AbortSignal.abort("gone") });
    assert.equal(outcome.kind, "cancelled");
    assert.equal(ran, false);
  });
});

describe("progress", () => {
  test("reports reach onProgress in order, and each one moves the deadline on", async () => {
    const reg = registry(
      defineTool({
        name: "steps",
        description: "",
        parameters: z.object({}),
        // 8 steps of 30 ms: 240 ms in all, against a 100 ms timeout that each report renews.
        handler: async (_a, ctx) => {
          for (let i = 1; i <= 8; i++) {
            await sleep(30);
            ctx.progress({ progress: i, total: 8, message: `step ${i}` });
          }
          return "done";
        },
      }),
    );
    const updates: ProgressUpdate[] = [];
    const outcome = await reg.execute("steps", {}, { timeoutMs: 100, onProgress: (u) => updates.push(u) });
    assert.equal(outcome.kind, "ok", outcome.text);
    assert.deepEqual(
      updates.map((u) => u.progress),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.equal(progressLine(updates[7]!), "100% (8/8) step 8");
  });

  test("a tool that stops reporting still times out, and the total is bounded", async () => {
    const silent = defineTool({
      name: "stalls",
      description: "",
      parameters: z.object({}),
      handler: async (_a, ctx) => {
        ctx.progress({ progress: 1 });
        await sleep(10_000, undefined, { signal: ctx.signal });
        return "never";
      },
    });
    const chatty = defineTool({
      name: "chatty",
      description: "",
      parameters: z.object({}),
      handler: async (_a, ctx) => {
        for (let i = 0; ; i++) {
          ctx.progress({ progress: i });
          await sleep(10, undefined, { signal: ctx.signal });
        }
      },
    });
    const reg = registry(silent, chatty);
    const stalled = await reg.execute("stalls", {}, { timeoutMs: 60 });
    assert.equal(stalled.kind, "timeout");
    const bounded = await reg.execute("chatty", {}, { timeoutMs: 50, maxTotalTimeoutMs: 150 });
    assert.equal(bounded.kind, "timeout");
    assert.match(bounded.text, /past its 0\.15s in all/);
  });

  test("a bad report is a clear error in the handler", async () => {
    const reg = registry(
      defineTool({ name: "bad", description: "", parameters: z.object({}), handler: (_a, ctx) => (ctx.progress({ progress: Number.NaN }), "x") }),
    );
    const outcome = await reg.execute("bad", {});
    assert.equal(outcome.kind, "error");
    assert.match(outcome.text, /progress must be a finite number/);
  });

  test("the sender coalesces: the first at once, then only the latest, and the held one before the end", () => {
    const sent: ProgressUpdate[] = [];
    const sender = new ProgressSender((u) => sent.push(u), 50);
    for (let i = 1; i <= 20; i++) sender.report({ progress: i });
    assert.deepEqual(
      sent.map((u) => u.progress),
      [1],
    );
    sender.close();
    assert.deepEqual(
      sent.map((u) => u.progress),
      [1, 20],
    );
    sender.report({ progress: 21 });
    assert.equal(sent.length, 2, "nothing after close()");
    const fields = encodeProgress("abc.1", { progress: 3, total: 4, message: "m" });
    assert.deepEqual(decodeProgress(fields), { correlationId: "abc.1", update: { progress: 3, total: 4, message: "m" } });
  });
});

describe("structured results", () => {
  const weather = defineTool({
    name: "weather",
    description: "",
    parameters: z.object({ city: z.string() }),
    outputSchema: z.object({ city: z.string(), celsius: z.number() }),
    handler: ({ city }) => (city === "bad" ? { city, celsius: "warm" } : { city, celsius: 21.5 }),
  });
  const chart = defineTool({
    name: "chart",
    description: "",
    parameters: z.object({}),
    handler: () =>
      toolResult({
        content: [
          { type: "text", text: "the chart" },
          { type: "image", data: PNG, mimeType: "image/png" },
          { type: "resource", resource: { uri: "file:///c.csv", mimeType: "text/csv", text: "a,b" } },
        ],
      }),
  });

  test("a plain object from a tool with an outputSchema is its structured content, checked against it", async () => {
    const reg = registry(weather);
    const ok = await reg.execute("weather", { city: "Oslo" });
    assert.equal(ok.kind, "ok");
    assert.deepEqual(ok.result?.structuredContent, { city: "Oslo", celsius: 21.5 });
    assert.equal(ok.text, '{"city":"Oslo","celsius":21.5}');
    const bad = await reg.execute("weather", { city: "bad" });
    assert.equal(bad.kind, "error");
    assert.match(bad.text, /does not match its outputSchema: celsius/);
    assert.deepEqual(weather.outputSchema?.required, ["city", "celsius"]);
  });

  test("content parts: the model reads the text, execute() has every part, isError makes an error", async () => {
    const failing = defineTool({
      name: "fails_softly",
      description: "",
      parameters: z.object({}),
      handler: () => toolResult({ content: [{ type: "text", text: "quota used up" }], isError: true }),
    });
    const reg = registry(chart, failing);
    const outcome = await reg.execute("chart", {});
    assert.equal(outcome.kind, "ok");
    assert.equal(outcome.text, "the chart\na,b");
    assert.equal(outcome.result?.content.length, 3);
    const soft = await reg.execute("fails_softly", {});
    assert.equal(soft.kind, "error");
    assert.equal(soft.text, "quota used up");
    assert.equal(resultText({ content: [], structuredContent: { a: 1 } }), '{"a":1}');
  });

  test("a bad part is refused where it is made", () => {
    assert.throws(
      () => toolResult({ content: [{ type: "image", data: "not base64!", mimeType: "image/png" }] }),
      (err: unknown) => err instanceof ToolfleetError && err.code === "RESULT_INVALID",
    );
  });

  test("a structured reply round-trips through the wire codec byte for byte", () => {
    const structured = { content: [{ type: "image" as const, data: PNG, mimeType: "image/png" }], structuredContent: { n: 1, s: "ü" }, isError: false };
    const reply: ToolReply = {
      correlationId: "c.1",
      status: "ok",
      result: "x",
      outcome: "ok",
      writeBack: emptyWriteBack(),
      workerId: "w",
      durationMs: 1,
      structured,
    };
    const decoded = decodeReply(encodeReply(reply));
    assert.ok(decoded.ok);
    assert.equal(JSON.stringify(decoded.value.structured), JSON.stringify(structured));
    assert.equal(
      Buffer.from(decoded.value.structured!.content[0]!.type === "image" ? decoded.value.structured!.content[0]!.data : "", "base64").toString("hex"),
      Buffer.from(PNG, "base64").toString("hex"),
    );
  });

  test("a request's v1.1 members round-trip, and a request without them decodes as before", () => {
    const req: ToolRequest = {
      type: "tool_exec",
      toolName: "t",
      toolArgs: {},
      userId: "u",
      correlationId: "c.1",
      traceId: "c.1",
      idemKey: "c.1:c.1",
      replyTo: "ns:stream:tools:reply:w",
      schemaHash: "",
      deadlineMs: Date.now() + 1000,
      sessionTag: "0123456789abcdef",
      ctx: {
        platform: "",
        channelId: "",
        userId: "u",
        userName: "",
        guildId: "",
        messageId: "",
        observabilityRequestId: "",
        disclosedSkillIds: [],
        roomContext: null,
      },
    };
    const plain = decodeRequest(encodeRequest(req));
    assert.ok(plain.ok);
    assert.equal(plain.value.progress, undefined);
    const withProgress = decodeRequest(encodeRequest({ ...req, progress: true, maxDeadlineMs: req.deadlineMs + 5000 }));
    assert.ok(withProgress.ok);
    assert.equal(withProgress.value.progress, true);
    assert.equal(withProgress.value.maxDeadlineMs, req.deadlineMs + 5000);
  });
});

describe("per-tool policy", () => {
  test("a tool's own timeoutMs applies, and a call's option overrides it", async () => {
    const slow = defineTool({ name: "slow", description: "", parameters: z.object({}), timeoutMs: 40, handler: () => sleep(150).then(() => "done") });
    const reg = registry(slow);
    assert.equal((await reg.execute("slow", {})).kind, "timeout");
    assert.equal((await reg.execute("slow", {}, { timeoutMs: 5000 })).kind, "ok");
  });

  test("pin: a tool pinned to the gateway by its definition is delegated like a configured one", async () => {
    const delegated: string[] = [];
    const adapter: PlatformAdapter = {
      platform: "test",
      delegateToGateway: (_op, params) => {
        delegated.push(params.toolName);
        return Promise.resolve({ text: "from the gateway", kind: "ok" });
      },
    };
    const reg = registry(defineTool({ name: "my_gateway_tool", description: "", parameters: z.object({}), pin: "gateway", handler: () => "ran here" }));
    const outcome = await reg.execute("my_gateway_tool", {}, { ctx: new ToolContext({ adapter }) });
    assert.equal(outcome.text, "from the gateway");
    assert.deepEqual(delegated, ["my_gateway_tool"]);
  });

  test("a definition's pin that disagrees with the configured sets is refused", () => {
    const reg = new ToolRegistry({ config: staticConfig(defineConfig({ inferencePinned: ["mine"] })) });
    assert.throws(
      () => reg.register(defineTool({ name: "mine", description: "", parameters: z.object({}), pin: "gateway", handler: () => "" })),
      (err: unknown) => err instanceof ToolfleetError && err.code === "PIN_SETS_OVERLAP",
    );
  });

  test("MCP annotation names are read as toolfleet's; a disagreement is refused", () => {
    const t = defineTool({
      name: "ro",
      description: "",
      parameters: z.object({}),
      annotations: { readOnlyHint: true, openWorldHint: false },
      handler: () => "",
    });
    assert.equal(t.annotations.readOnly, true);
    assert.equal(t.annotations.openWorldHint, false);
    assert.throws(
      () => defineTool({ name: "x", description: "", parameters: z.object({}), annotations: { idempotent: false, idempotentHint: true }, handler: () => "" }),
      (err: unknown) => err instanceof ToolfleetError && err.code === "TOOL_DEFINITION_INVALID",
    );
  });

  test("ctx.idempotencyKey: a key of its own per local call, the given one when there is one", async () => {
    const keys: string[] = [];
    const reg = registry(defineTool({ name: "k", description: "", parameters: z.object({}), handler: (_a, ctx) => (keys.push(ctx.idempotencyKey), "x") }));
    const shared = new ToolContext({ userId: "u" });
    await reg.execute("k", {}, { ctx: shared });
    await reg.execute("k", {}, { ctx: shared });
    await reg.execute("k", {}, { ctx: new ToolContext({ idempotencyKey: "trace:corr" }) });
    assert.equal(keys.length, 3);
    assert.notEqual(keys[0], keys[1]);
    assert.equal(keys[2], "trace:corr");
  });
});

describe("the LLM loop", () => {
  /** A model that asks for one tool call, then answers; it keeps what it was sent. */
  function oneCall(tool: string, args: object): ChatModel & { seen: ChatMessage[][] } {
    const seen: ChatMessage[][] = [];
    return {
      seen,
      complete: (messages) => {
        seen.push(structuredClone(messages));
        return Promise.resolve(
          seen.length === 1 ? { content: null, toolCalls: [{ id: "c1", name: tool, arguments: JSON.stringify(args) }] } : { content: "done", toolCalls: [] },
        );
      },
    };
  }

  test("a structured result reaches the model as its text and its images as image parts", async () => {
    const reg = registry(
      defineTool({
        name: "pic",
        description: "",
        parameters: z.object({}),
        handler: () =>
          toolResult({
            content: [
              { type: "text", text: "a picture" },
              { type: "image", data: PNG, mimeType: "image/png" },
            ],
            structuredContent: { n: 1 },
          }),
      }),
    );
    const model = oneCall("pic", {});
    const result = await runToolLoop([{ role: "user", content: "go" }], {
      model,
      registry: reg,
      logger: new RecordingLogger(),
      userId: "u",
      ctx: new ToolContext(),
      activeTools: ["pic"],
    });
    assert.equal(result.text, "done");
    const second = model.seen[1] ?? [];
    assert.deepEqual(second.find((m) => m.role === "tool")?.content, "a picture");
    const images = second.filter((m) => m.role === "user").flatMap((m) => (Array.isArray(m.content) ? m.content : []));
    assert.deepEqual(images, [{ type: "image_url", image_url: { url: `data:image/png;base64,${PNG}` } }]);
  });

  test("the chat's signal cancels the tool the loop is running", async () => {
    const seen: { aborted?: unknown } = {};
    const reg = registry(waiter(seen));
    const controller = new AbortController();
    const model = oneCall("waits", {});
    const running = runToolLoop([{ role: "user", content: "go" }], {
      model,
      registry: reg,
      logger: new RecordingLogger(),
      userId: "u",
      ctx: new ToolContext(),
      activeTools: ["waits"],
      signal: controller.signal,
    });
    await sleep(20);
    controller.abort(new Error("chat over"));
    const result = await running;
    assert.equal(result.calls[0]?.outcome.kind, "cancelled");
    assert.equal((seen.aborted as Error).message, "chat over");
    assert.equal(result.ended, "stopped");
  });
});

describe("toolfleet call's progress line", () => {
  test("on a terminal, one line rewritten in place and cleared at the end; nothing on a pipe", () => {
    let written = "";
    const tty = { isTTY: true, columns: 40, write: (s: string) => ((written += s), true) } as unknown as NodeJS.WriteStream;
    const live = progressPrinter(tty);
    assert.ok(live);
    live.show({ progress: 1, total: 4, message: "one" });
    live.show({ progress: 2, total: 4, message: "two" });
    live.clear();
    assert.equal(written, "\r\x1b[2K⏳ 25% (1/4) one\r\x1b[2K⏳ 50% (2/4) two\r\x1b[2K");
    assert.equal(progressPrinter({ isTTY: false } as unknown as NodeJS.WriteStream), undefined);
  });
});

describe("the web chat's abandon watch", () => {
  test("a channel is abandoned only when its pages stay closed past the grace, and never after stop()", async () => {
    const abandoned: string[] = [];
    const watch = new AbandonWatch(30, (channel) => abandoned.push(channel));
    watch.allClosed("reloaded");
    watch.opened("reloaded"); // a reload: a page is back before the grace ends
    watch.allClosed("left");
    await sleep(80);
    assert.deepEqual(abandoned, ["left"]);
    watch.stop();
    watch.allClosed("after-stop");
    await sleep(80);
    assert.deepEqual(abandoned, ["left"]);
  });
});
