import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { examplePermissions, exampleTools } from "../../examples/tools.js";
import { z } from "zod";
import { ToolContext, ToolRegistry, defineConfig, defineTool, staticConfig } from "../../src/index.js";
import { LOOP_TOOLS, openAIModel, runToolLoop } from "../../src/inference/llm-loop.js";
import { startScriptedLLM, type Received, type Scripted, type ScriptedLLM } from "../support/fixtures/scripted-llm.js";
import { RecordingLogger } from "../support/helpers.js";

const script: Scripted[] = [];
let llm: ScriptedLLM;
let received: Received[] = [];
let baseURL = "";

before(async () => {
  llm = await startScriptedLLM(() => script.shift() ?? { content: "(script ran out)" });
  received = llm.received;
  baseURL = llm.baseURL;
});

after(() => llm.close());

function setup(active: string[], timeoutMs = 5000) {
  script.length = 0;
  received.length = 0;
  const logger = new RecordingLogger();
  const registry = new ToolRegistry({ config: staticConfig(defineConfig({ backgroundThreshold: 0, toolsExecTimeout: 10 })), logger }).register(
    ...exampleTools,
    ...LOOP_TOOLS,
  );
  registry.setPermissions(examplePermissions);
  const ctx = new ToolContext({ platform: "test", userId: "alice" });
  const model = openAIModel({ baseURL, apiKey: "test-key", model: "scripted", maxRetries: 0, timeoutMs });
  const run = (text: string, extra: { maxIterations?: number } = {}) =>
    runToolLoop([{ role: "user", content: text }], { model, registry, logger, userId: "alice", ctx, activeTools: active, ...extra });
  return { run, ctx, logger, registry };
}

test("the tool calls of one turn run concurrently, and the answer comes back", async () => {
  const { run, registry } = setup(["rendezvous", "echo"]);
  // Each call waits until the other has started: run one after the other, the first would wait
  // until the registry's 10 s timeout fails it, and the answers below would differ. No clock is read.
  let arrived = 0;
  let bothArrived: () => void = () => undefined;
  const together = new Promise<void>((resolve) => (bothArrived = resolve));
  registry.register(
    defineTool({
      name: "rendezvous",
      description: "Waits for the other call of its turn.",
      parameters: z.object({ label: z.string() }),
      handler: async ({ label }) => {
        if (++arrived === 2) bothArrived();
        await together;
        return `${label} met the other call`;
      },
    }),
  );
  script.push(
    {
      calls: [
        { name: "rendezvous", args: { label: "a" } },
        { name: "rendezvous", args: { label: "b" } },
      ],
    },
    { content: "both done" },
  );
  const out = await run("do two things");
  assert.equal(out.text, "both done");
  assert.equal(out.toolCalls, 2);
  const toolMessages = received[1]?.messages.filter((m) => m.role === "tool").map((m) => m.content);
  assert.deepEqual(toolMessages, ["a met the other call", "b met the other call"]);
});

test("an identical repeated call is refused unless the tool allows repeats", async () => {
  const { run } = setup(["calculator", "echo"]);
  const calc = { name: "calculator", args: { a: 1, op: "add", b: 2 } };
  const echo = { name: "echo", args: { text: "hi" } };
  script.push({ calls: [calc, echo] }, { calls: [calc, echo] }, { content: "ok" });
  await run("add twice");
  const tools = received[2]?.messages.filter((m) => m.role === "tool").map((m) => m.content);
  assert.deepEqual(tools, [
    '{"result":3}',
    "hi",
    "Refused: 'calculator' was already called with these exact arguments in this conversation turn; use its earlier result.",
    "hi", // echo allows repeats
  ]);
});

test("an injected tool is offered to the model from the next turn", async () => {
  const { run, ctx } = setup(["inject_tool"]);
  script.push(
    { calls: [{ name: "inject_tool", args: { tool: "calculator" } }] },
    { calls: [{ name: "calculator", args: { a: 6, op: "multiply", b: 7 } }] },
    { content: "42" },
  );
  const out = await run("multiply");
  assert.equal(out.text, "42");
  assert.deepEqual(
    received[0]?.tools?.map((t) => t.function.name),
    ["inject_tool"],
  );
  assert.deepEqual(received[1]?.tools?.map((t) => t.function.name).sort(), ["calculator", "inject_tool"]);
  assert.deepEqual(ctx.injectedTools, ["calculator"]);
  assert.ok(received[2]?.messages.some((m) => m.role === "tool" && m.content === '{"result":42}'));
});

test("an image a tool sent is passed back to the model as an image part", async () => {
  const { run, ctx } = setup(["send_image"]);
  script.push({ calls: [{ name: "send_image", args: { width: 8, height: 8 } }] }, { content: "a gradient" });
  await run("draw");
  const last = received[1]?.messages.at(-1);
  assert.equal(last?.role, "user");
  const parts = last?.content as { type: string; image_url?: { url: string } }[];
  assert.equal(parts[0]?.type, "image_url");
  assert.equal(parts[0]?.image_url?.url, `data:image/png;base64,${Buffer.from(ctx.sentFiles[0]?.data ?? []).toString("base64")}`);
});

test("call_subagent runs a nested loop and returns its answer; extend_tool_loop raises the limit", async () => {
  const { run } = setup(["call_subagent", "extend_tool_loop", "echo"]);
  script.push(
    { calls: [{ name: "extend_tool_loop", args: { turns: 2 } }] },
    { calls: [{ name: "call_subagent", args: { task: "say inner" } }] },
    { calls: [{ name: "echo", args: { text: "from inside" } }] }, // the inner loop's first turn
    { content: "inner answer" }, // the inner loop's answer
    { content: "outer answer" },
  );
  const out = await run("delegate", { maxIterations: 2 });
  assert.equal(out.text, "outer answer");
  assert.equal(out.iterations, 3, "a third turn only because the limit was raised");
  assert.deepEqual(received[2]?.messages[0], { role: "user", content: "say inner" });
  assert.ok(received[4]?.messages.some((m) => m.role === "tool" && m.content === "inner answer"));
  assert.ok(received[1]?.messages.some((m) => m.role === "tool" && m.content === "The tool loop now allows 4 turns (was 2)."));
  // Every call is reported with how it ended and where it ran, the subagent's own calls right after its call_subagent.
  assert.deepEqual(
    out.calls.map((c) => [c.name, c.arguments, c.outcome.kind, c.outcome.route, c.outcome.text, c.nested]),
    [
      ["extend_tool_loop", '{"turns":2}', "ok", "local", "The tool loop now allows 4 turns (was 2).", false],
      ["call_subagent", '{"task":"say inner"}', "ok", "local", "inner answer", false],
      ["echo", '{"text":"from inside"}', "ok", "local", "from inside", true],
    ],
  );
});

test("a subagent cannot start another subagent, and is not offered one", async () => {
  const { run } = setup(["call_subagent", "echo"]);
  script.push(
    { calls: [{ name: "call_subagent", args: { task: "go deeper" } }] },
    { calls: [{ name: "call_subagent", args: { task: "deeper still" } }] }, // the inner loop tries to nest
    { content: "inner gave up nesting" },
    { content: "outer answer" },
  );
  const out = await run("delegate");
  assert.equal(out.text, "outer answer");
  assert.deepEqual(
    received[1]?.tools?.map((t) => t.function.name),
    ["echo"],
    "the inner loop is offered no call_subagent",
  );
  assert.ok(
    received[2]?.messages.some(
      (m) => m.role === "tool" && m.content === "Refused: 'call_subagent' cannot be called from inside a subagent; do the task with the other tools.",
    ),
  );
  assert.equal(received.length, 4, "no third level");
});

test("the iteration limit ends a loop that never answers", async () => {
  const { run } = setup(["echo"]);
  for (let i = 0; i < 3; i++) script.push({ calls: [{ name: "echo", args: { text: `t${i}` } }] });
  const out = await run("loop", { maxIterations: 3 });
  assert.equal(out.ended, "limit");
  assert.match(out.text, /^I stopped after 3 rounds of tool calls/);
});

test("LLM errors and rate limits give the user a clear answer", async () => {
  const { run, logger } = setup(["echo"]);
  script.push({ status: 500 });
  const failed = await run("hello");
  assert.equal(failed.ended, "llm_error");
  assert.equal(failed.text, "Sorry — the language model returned an error (500). Please try again.");
  script.push({ status: 429 });
  assert.equal((await run("hello")).text, "Sorry — the language model is rate-limited right now. Please try again in a moment.");
  assert.equal(logger.at("error").length, 2);
});

test("a model that does not answer in time gives the user a clear answer, not a hang", async () => {
  const { run } = setup(["echo"], 300);
  script.push({ delayMs: 5000, content: "too late" });
  // The model would answer after 5 s; the client's 300 ms timeout ends the wait, and the user hears why.
  const out = await run("hello");
  assert.equal(out.ended, "llm_error");
  assert.equal(out.text, "Sorry — the language model did not answer in time. Please try again.");
});
