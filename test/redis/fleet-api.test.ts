// The fleet assembly API against the real Redis: a tools worker, a gateway and an inference
// worker made with createToolsWorker / createGateway / createInferenceWorker in one namespace,
// a call made with createCaller, and a chat message from a platform to its answer.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { z } from "zod";
import {
  ToolContext,
  ToolfleetError,
  createCaller,
  createGateway,
  createInferenceWorker,
  createToolsWorker,
  defineConfig,
  defineTool,
  staticConfig,
} from "../../src/index.js";
import type { Caller, Gateway, InferenceWorker, ToolsWorker } from "../../src/index.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import { RecordingPlatform, identity } from "../support/chat.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, namespaceKeys, testKeys } from "../support/redis-helpers.js";

const greet = defineTool({
  name: "greet",
  description: "Greets someone.",
  parameters: z.object({ name: z.string().min(1) }),
  handler: ({ name }, ctx) => `Hello, ${name}, from ${ctx.userId}`,
});

// A gateway-pinned name (the default pin set) with a handler that needs the live platform.
const react = defineTool({
  name: "discord_react",
  description: "Reacts to the message.",
  parameters: z.object({ emoji: z.string().min(1) }),
  handler: async ({ emoji }, ctx) => {
    const platform = ctx.adapter as RecordingPlatform;
    await platform.react(ctx.channelId, ctx.messageId, emoji);
    return `reacted ${emoji}`;
  },
});

describe("a fleet assembled with the fleet API", () => {
  const k = testKeys();
  const logger = new RecordingLogger();
  const config = staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", chatTimeout: 20 }));
  const platform = new RecordingPlatform();
  let redis: RedisNode;
  let tools: ToolsWorker;
  let gateway: Gateway;
  let inference: InferenceWorker;
  let caller: Caller;

  before(async () => {
    redis = await connect();
    tools = createToolsWorker({ config, logger, tools: [greet], permissions: { greet: ["alice", "bob"] }, workerId: "tools-1" });
    gateway = createGateway({ config, logger, platform, tools: [react], workerId: "gateway-1" });
    inference = createInferenceWorker({ config, logger, workerId: "inference-1" });
    caller = createCaller({ config, logger, workerId: "caller-1" });
    // Tools first: they publish the catalog the inference side reads.
    await tools.start();
    await gateway.start();
    await inference.start();
    await caller.start();
  });

  after(async () => {
    await caller.stop();
    await inference.stop();
    await gateway.stop();
    await tools.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  });

  test("a registry exists only once started, and says so clearly before", () => {
    const early = createToolsWorker({ config, logger, tools: [greet] });
    assert.throws(
      () => early.registry,
      (err: unknown) =>
        err instanceof ToolfleetError && err.code === "NOT_STARTED" && /tools worker: registry exists once start\(\) has resolved/.test(err.message),
    );
    assert.equal(tools.registry.size, 3); // greet, plus the task tools
    assert.match(tools.description, /^3 tools in pool default$/);
  });

  test("a call from code runs on the tools worker, with the caller's identity and the outcome's kind", async () => {
    const ctx = new ToolContext({ platform: "cli", userId: "alice", adapter: caller.gatewayAdapter("cli") });
    const ok = await caller.registry.execute("greet", { name: "Ada" }, { userId: "alice", ctx });
    assert.deepEqual([ok.kind, ok.route, ok.text], ["ok", "remote", "Hello, Ada, from alice"]);
    const bad = await caller.registry.execute("greet", { name: "" }, { userId: "alice", ctx });
    assert.deepEqual([bad.kind, bad.route], ["invalid_args", "remote"]);
    const denied = await caller.registry.execute("greet", { name: "Ada" }, { userId: "mallory", ctx: new ToolContext({ userId: "mallory" }) });
    assert.equal(denied.kind, "denied");
  });

  test("a gateway-pinned call goes to the gateway, which runs it on its live platform, and its kind comes back", async () => {
    const ctx = new ToolContext({ ...identity, adapter: caller.gatewayAdapter("test") });
    const ok = await caller.registry.execute("discord_react", { emoji: "👍" }, { userId: "alice", ctx });
    assert.deepEqual([ok.kind, ok.route, ok.text], ["ok", "gateway", "reacted 👍"]);
    assert.deepEqual(platform.reactions, ["m1:👍"]);
    const bad = await caller.registry.execute("discord_react", { emoji: "" }, { userId: "alice", ctx });
    assert.deepEqual([bad.kind, bad.route], ["invalid_args", "gateway"]);
  });

  test("a chat message from the platform is answered through the inference worker", async () => {
    platform.user?.({ identity: { ...identity, messageId: "m2" }, text: '/greet {"name":"Bo"}' });
    await eventually(() => assert.equal(platform.sent.length, 1), 10_000);
    assert.equal(platform.sent[0]?.message.inReplyTo, "m2");
    assert.match(platform.sent[0]?.message.text ?? "", /Hello, Bo, from alice/);
  });

  test("stop() leaves no reply stream of the caller behind", async () => {
    const extra = createCaller({ config, logger, workerId: "caller-2" });
    await extra.start();
    await extra.registry.execute("greet", { name: "Cy" }, { userId: "bob" });
    assert.ok((await namespaceKeys(redis, k)).includes(k.toolsReplyStream("caller-2")));
    await extra.stop();
    assert.ok(!(await namespaceKeys(redis, k)).includes(k.toolsReplyStream("caller-2")));
  });
});

test("an inference worker refuses the in_process mode before it opens anything", () => {
  const config = staticConfig(defineConfig({ toolsServiceMode: "in_process" }));
  assert.throws(
    () => createInferenceWorker({ config }),
    (err: unknown) => err instanceof ToolfleetError && err.code === "CONFIG_INVALID" && /TOOLFLEET_TOOLS_SERVICE_MODE=remote/.test(err.message),
  );
});
