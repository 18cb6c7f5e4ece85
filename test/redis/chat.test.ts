import assert from "node:assert/strict";
import { test } from "node:test";
import { exampleTools } from "../../examples/tools.js";
import { staticConfig } from "../../src/config/live.js";
import { defineConfig } from "../../src/config/schema.js";
import { ToolRegistry } from "../../src/core/registry.js";
import { ChatBridge } from "../../src/gateway/bridge.js";
import { RedisChatHistory, type HistoryEntry } from "../../src/gateway/chat-history.js";
import { ChatResponder } from "../../src/inference/chat-responder.js";
import { ChatConsumer } from "../../src/inference/chat-consumer.js";
import { ProxyPlatformAdapter } from "../../src/inference/proxy-adapter.js";
import { ToolsClient } from "../../src/tool-exec/client.js";
import { createGatewayToolServer } from "../../src/gateway/tool-server.js";
import { encodeInbound } from "../../src/chat/codec.js";
import { closeRedis } from "../../src/redis/client.js";
import { RecordingPlatform, identity, localResponder } from "../support/chat.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, aliveButIdleWorker, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";
import { BODY_FIELD } from "../../src/redis/entry-codec.js";
import { packageVersion } from "../../src/core/version.js";

test(
  "gateway and inference over Redis: an answer comes back with its file; no inference worker, or none that answers, means a clear apology; poison is dead-lettered",
  { timeout: 30_000 },
  async () => {
    const k = testKeys();
    const logger = new RecordingLogger();
    const redis = await connect();
    const config = staticConfig(defineConfig({ namespace: k.namespace, chatTimeout: 0.5 }));
    const platform = new RecordingPlatform();
    const bridge = new ChatBridge({ redis, redisUrl: REDIS_URL, keys: k, config, logger, gatewayId: "g1", platform });
    // What the inference tier is shown of the channel with each message.
    const responder = localResponder(logger);
    const shown: string[][] = [];
    const answer = responder.answer.bind(responder);
    responder.answer = (turn, adapter, signal) => {
      shown.push(turn.history.map((h) => `${h.role}: ${h.text}`));
      return answer(turn, adapter, signal);
    };
    const service = new ChatConsumer({
      redis,
      redisUrl: REDIS_URL,
      keys: k,
      logger,
      workerId: "i1",
      responder,
      adapterFor: () => platform,
      worker: { blockMs: 100 },
    });
    try {
      await bridge.start();
      // No inference worker at all: the user hears so at once, and nothing is published for nobody to take.
      const asked = Date.now();
      platform.user?.({ identity, text: '/echo {"text":"anybody there?"}' });
      await eventually(
        () => assert.match(platform.sent[0]?.message.text ?? "", /^Sorry — the bot's answering side \(its inference tier\) is not running/),
        3000,
      );
      assert.ok(Date.now() - asked < 500, "before the chat timeout");
      assert.equal(await redis.exists(k.chatStream), 0);
      // One that looks alive and never answers: the user hears so at the chat timeout, not never.
      await aliveButIdleWorker(redis, k, k.chatStream, "inference", "idle");
      platform.user?.({ identity, text: '/echo {"text":"anyone?"}' });
      await eventually(() => assert.match(platform.sent[1]?.message.text ?? "", /^Sorry — no answer came back within 0\.5 s/), 3000);
      // A message too long to carry is refused with the reason, not a crash.
      platform.user?.({ identity, text: "x".repeat(16_001) });
      await eventually(() => assert.equal(platform.sent[2]?.message.text, "Sorry — A chat message can be at most 16000 characters; this one has 16001."));
      platform.sent.length = 1;

      await service.start();
      // Its heartbeat names its version, for the dashboard's worker list.
      assert.equal((JSON.parse((await redis.get(k.heartbeat("inference", "i1"))) ?? "{}") as { version?: string }).version, packageVersion());
      // The message that timed out is still in the stream: the worker answers "expired" and the gateway drops it.
      await eventually(() => assert.ok(logger.records.some((r) => r.msg === "chat message expired before an inference worker took it")), 3000);
      platform.user?.({ identity: { ...identity, messageId: "m2" }, text: '/send_image {"width":4,"height":4}' });
      await eventually(() => assert.equal(platform.sent.length, 2), 5000);
      const answer = platform.sent[1]?.message;
      assert.equal(answer?.text, "send_image → Sent gradient.png (4x4, 95 bytes).");
      assert.equal(answer?.inReplyTo, "m2");
      assert.equal(answer?.files[0]?.contentType, "image/png");
      // The answer says which tool ran where (this responder's registry is local), and which worker answered.
      assert.deepEqual(
        answer?.toolCalls?.map((c) => [c.name, c.route, c.kind, c.args]),
        [["send_image", "local", "ok", '{"width":4,"height":4}']],
      );
      assert.equal(answer?.answeredBy, "i1");
      assert.match(answer?.answerId ?? "", /^chat-/);

      // The conversation is in Redis: the apologies are kept for the page, and the model is shown only the answered turn.
      platform.user?.({ identity: { ...identity, messageId: "m3" }, text: '/echo {"text":"again"}' });
      await eventually(() => assert.equal(platform.sent.length, 3), 5000);
      assert.deepEqual(shown.at(-1), ['user: /send_image {"width":4,"height":4}', "assistant: send_image → Sent gradient.png (4x4, 95 bytes)."]);
      // A gateway started afresh (a restart, or another one behind the load balancer) reads the same conversation.
      const again = new ChatBridge({ redis, redisUrl: REDIS_URL, keys: k, config, logger, gatewayId: "g2", platform: new RecordingPlatform() });
      const kept = await again.historyOf(identity.channelId);
      assert.deepEqual(
        kept.map((e) => [e.role, e.messageId, e.failed === true, e.text.slice(0, 24)]),
        [
          ["user", "m1", false, '/echo {"text":"anybody t'],
          ["assistant", "m1", true, "Sorry — the bot's answer"],
          ["user", "m1", false, '/echo {"text":"anyone?"}'],
          ["assistant", "m1", true, "Sorry — no answer came b"],
          ["user", "m1", false, "x".repeat(24)],
          ["assistant", "m1", true, "Sorry — A chat message c"],
          ["user", "m2", false, '/send_image {"width":4,"'],
          ["assistant", "m2", false, "send_image → Sent gradie"],
          ["user", "m3", false, '/echo {"text":"again"}'],
          ["assistant", "m3", false, "echo → again"],
        ],
      );
      assert.deepEqual(kept[7]?.files, [{ name: "gradient.png", contentType: "image/png", size: 95 }]);
      assert.equal(kept[7]?.toolCalls?.[0]?.route, "local");

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

test("the chat history in Redis: a list per channel, capped and expiring; what does not read back as an entry is skipped", { timeout: 30_000 }, async () => {
  const k = testKeys();
  const redis = await connect();
  const store = new RedisChatHistory({ redis, keys: k, ttlSeconds: 60, maxEntries: 4 });
  const entry = (i: number): HistoryEntry => ({ role: i % 2 ? "assistant" : "user", text: `line ${i}`, messageId: `m${i >> 1}`, atMs: i });
  try {
    for (let i = 0; i < 6; i++) await store.append("dm-web-0123456789ab", entry(i));
    assert.deepEqual(await store.read("dm-web-0123456789ab"), [2, 3, 4, 5].map(entry));
    const key = k.chatHistory("dm-web-0123456789ab");
    assert.equal(key, `${k.namespace}:chat:history:dm-web-0123456789ab`);
    const ttl = Number(await redis.sendCommand(["PTTL", key]));
    assert.ok(ttl > 0 && ttl <= 60_000, `TTL ${ttl} ms`);
    // Something else in the list (an older format, a hand edit): skipped, the rest still read.
    await redis.sendCommand(["RPUSH", key, "{not json", JSON.stringify({ role: "robot", text: 1 })]);
    assert.deepEqual(await store.read("dm-web-0123456789ab"), [2, 3, 4, 5].map(entry));
    // A channel id that cannot be part of a key is named by its hash; each channel keeps its own.
    const odd = "room 42/ü*";
    assert.match(k.chatHistory(odd), new RegExp(`^${k.namespace}:chat:history:#[0-9a-f]{32}$`));
    await store.append(odd, entry(0));
    assert.deepEqual(await store.read(odd), [entry(0)]);
    assert.deepEqual(await store.read("another"), []);
  } finally {
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
