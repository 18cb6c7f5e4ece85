import assert from "node:assert/strict";
import { test } from "node:test";
import { exampleTools } from "../../examples/tools.js";
import { staticConfig } from "../../src/config/live.js";
import { defineConfig } from "../../src/config/schema.js";
import { ToolRegistry } from "../../src/core/registry.js";
import { ChatBridge } from "../../src/gateway/bridge.js";
import { ChatResponder } from "../../src/inference/chat-responder.js";
import { ChatConsumer } from "../../src/inference/chat-consumer.js";
import { ProxyPlatformAdapter } from "../../src/inference/proxy-adapter.js";
import { ToolsClient } from "../../src/tool-exec/client.js";
import { createGatewayToolServer } from "../../src/gateway/tool-server.js";
import { encodeInbound } from "../../src/chat/codec.js";
import { closeRedis } from "../../src/redis/client.js";
import { RecordingPlatform, identity, localResponder } from "../support/chat.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";
import { BODY_FIELD } from "../../src/redis/entry-codec.js";

test(
  "gateway and inference over Redis: an answer comes back with its file; no inference worker means a clear apology; poison is dead-lettered",
  { timeout: 30_000 },
  async () => {
    const k = testKeys();
    const logger = new RecordingLogger();
    const redis = await connect();
    const config = staticConfig(defineConfig({ namespace: k.namespace, chatTimeout: 0.5 }));
    const platform = new RecordingPlatform();
    const bridge = new ChatBridge({ redis, redisUrl: REDIS_URL, keys: k, config, logger, gatewayId: "g1", platform });
    const service = new ChatConsumer({
      redis,
      redisUrl: REDIS_URL,
      keys: k,
      logger,
      workerId: "i1",
      responder: localResponder(logger),
      adapterFor: () => platform,
      worker: { blockMs: 100 },
    });
    try {
      await bridge.start();
      // No inference worker yet: the user hears so at the chat timeout, not never.
      platform.user?.({ identity, text: '/echo {"text":"anyone?"}' });
      await eventually(() => assert.match(platform.sent[0]?.message.text ?? "", /^Sorry — no answer came back within 0\.5 s/), 3000);
      // A message too long to carry is refused with the reason, not a crash.
      platform.user?.({ identity, text: "x".repeat(16_001) });
      assert.equal(platform.sent[1]?.message.text, "Sorry — A chat message can be at most 16000 characters; this one has 16001.");
      platform.sent.length = 1;

      await service.start();
      // The message that timed out is still in the stream: the worker answers "expired" and the gateway drops it.
      await eventually(() => assert.ok(logger.records.some((r) => r.msg === "chat message expired before an inference worker took it")), 3000);
      platform.user?.({ identity: { ...identity, messageId: "m2" }, text: '/send_image {"width":4,"height":4}' });
      await eventually(() => assert.equal(platform.sent.length, 2), 5000);
      const answer = platform.sent[1]?.message;
      assert.equal(answer?.text, "send_image → Sent gradient.png (4x4, 95 bytes).");
      assert.equal(answer?.inReplyTo, "m2");
      assert.equal(answer?.files[0]?.contentType, "image/png");

      // Poison, and a message naming an answer stream that is not a gateway's: dead-lettered, nothing written there.
      await redis.sendCommand(["XADD", k.chatStream, "*", BODY_FIELD, "{not json"]);
      const stray = encodeInbound({
        id: "chat-x",
        replyTo: `${k.namespace}:tools:catalog`,
        identity,
        text: "hi",
        history: [],
        sentAtMs: Date.now(),
        deadlineMs: Date.now() + 60_000,
      });
      await redis.sendCommand(["XADD", k.chatStream, "*", BODY_FIELD, stray[BODY_FIELD] as string]);
      await eventually(async () => assert.equal(Number(await redis.sendCommand(["XLEN", k.deadLetter(k.chatStream)])), 2), 5000);
      assert.equal(await redis.exists(`${k.namespace}:tools:catalog`), 0);
    } finally {
      await service.stop();
      await bridge.stop();
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  },
);

test("with two gateways, a chat's gateway-pinned call runs on the gateway (shard) that holds the chat", { timeout: 30_000 }, async () => {
  const k = testKeys();
  const logger = new RecordingLogger();
  const redis = await connect();
  const config = staticConfig(defineConfig({ namespace: k.namespace, toolsServiceMode: "remote", backgroundThreshold: 0 }));
  const gatewayTools = () => new ToolRegistry({ config, logger }).register(...exampleTools.filter((t) => t.name === "discord_react"));
  const mine = new RecordingPlatform();
  const other = new RecordingPlatform();
  const options = { redis, redisUrl: REDIS_URL, keys: k, config, logger, worker: { blockMs: 100 } };
  // Gateway A holds the chat and serves shard "gw-a"; gateway B serves the shared stream.
  const a = createGatewayToolServer({ ...options, registry: gatewayTools(), workerId: "gw-a", adapter: mine, shard: "gw-a" });
  const b = createGatewayToolServer({ ...options, registry: gatewayTools(), workerId: "gw-b", adapter: other });
  const bridge = new ChatBridge({ redis, redisUrl: REDIS_URL, keys: k, config, logger, gatewayId: "gw-a", platform: mine, shard: "gw-a" });
  const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "inf-1", logger });
  const inference = new ChatConsumer({
    redis,
    redisUrl: REDIS_URL,
    keys: k,
    logger,
    workerId: "inf-1",
    // The inference side knows the tool (as from a catalog) but never runs it: gateway-pinned calls are delegated.
    responder: new ChatResponder({ registry: gatewayTools(), config, logger, disclosedTools: () => ["discord_react"] }),
    adapterFor: (platform, shard) => new ProxyPlatformAdapter(platform, () => client, k, config, shard),
    worker: { blockMs: 100 },
  });
  try {
    await Promise.all([a.start(), b.start(), client.start()]);
    await bridge.start();
    await inference.start();
    mine.user?.({ identity, text: '/discord_react {"emoji":"👍"}' });
    await eventually(() => assert.equal(mine.sent.length, 1), 5000);
    assert.equal(mine.sent[0]?.message.text, "discord_react → Reacted with 👍 on test.");
    assert.deepEqual(mine.reactions, ["m1:👍"]);
    assert.deepEqual(other.reactions, []);
  } finally {
    await inference.stop();
    await bridge.stop();
    await client.stop();
    await Promise.all([a.stop(), b.stop()]);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
