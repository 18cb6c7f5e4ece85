import assert from "node:assert/strict";
import { test } from "node:test";
import { defineConfig, staticConfig } from "../../src/index.js";
import { registryFor } from "../../src/fleet/local.js";
import { loadToolModule } from "../../src/fleet/load-tools.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { LiveWorkers, forgetDepartedConsumers } from "../../src/redis/live-workers.js";
import { ensureGroup, readGroup, xaddArgs } from "../../src/redis/streams.js";
import { setTimeout as sleep } from "node:timers/promises";
import { ToolExecServer } from "../../src/tool-exec/server.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

/** A tools worker with the example tools, in namespace `k`. */
async function exampleWorker(
  redis: RedisNode,
  k: Keys,
  logger: RecordingLogger,
  workerId: string,
  worker: { blockMs: number; heartbeatMs?: number },
): Promise<ToolExecServer> {
  const config = staticConfig(defineConfig({ namespace: k.namespace }));
  return new ToolExecServer({
    redis,
    redisUrl: REDIS_URL,
    keys: k,
    registry: registryFor(await loadToolModule(), config, logger),
    config,
    logger,
    workerId,
    worker,
  });
}

test("LiveWorkers: a stream is served while a consumer of its group has a live heartbeat; a no is asked again, a yes believed for a while", async () => {
  const logger = new RecordingLogger();
  const redis = await connect();
  const k = testKeys();
  const server = await exampleWorker(redis, k, logger, "w1", { blockMs: 200 });
  try {
    const live = new LiveWorkers({ redis, keys: k, logger });
    assert.equal(await live.has(k.toolsStream, "tools"), false, "no stream, no group: nobody");
    assert.ok(
      logger.at("info").some((r) => r.msg.startsWith("no live tools worker reads")),
      "the first no is logged (info)",
    );
    await server.start();
    assert.equal(await live.has(k.toolsStream, "tools"), true, "a no is not kept: the worker is seen at once");
    // A consumer with no heartbeat (a worker that died long ago) does not count.
    await redis.sendCommand(["XGROUP", "CREATECONSUMER", k.toolsStream, k.group(k.toolsStream), "gone"]);
    await server.stop();
    assert.equal(await live.has(k.toolsStream, "tools"), true, "a yes is believed for a while (2 s)");
    const fresh = new LiveWorkers({ redis, keys: k, logger });
    assert.equal(await fresh.has(k.toolsStream, "tools"), false, "its heartbeat gone, the worker is gone");
    const quick = new LiveWorkers({ redis, keys: k, logger, trustMs: 0 });
    await server.start();
    assert.equal(await quick.has(k.toolsStream, "tools"), true);
    await server.stop();
    assert.equal(await quick.has(k.toolsStream, "tools"), false);
    assert.ok(
      logger.at("warn").some((r) => r.msg.startsWith("no live tools worker reads") && r.msg.includes("any more")),
      "a worker going away is logged once, as a warning",
    );
    // Another service's heartbeat under the same consumer name is not this service's.
    await redis.set(k.heartbeat("gateway", "gone"), "{}", { expiration: { type: "PX", value: 60_000 } });
    assert.equal(await quick.has(k.toolsStream, "tools"), false);
    // Just after a reconnect (Redis may have restarted empty) a no cannot be told from workers not back yet.
    quick.reconnected();
    assert.equal(await quick.has(k.toolsStream, "tools"), undefined);
  } finally {
    await server.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("LiveWorkers: with the connection down it cannot tell, and says so by answering undefined", async () => {
  const redis = await connect();
  const k = testKeys();
  const live = new LiveWorkers({ redis, keys: k, logger: new RecordingLogger() });
  await closeRedis(redis);
  assert.equal(await live.has(k.toolsStream, "tools"), undefined);
});

test("LiveWorkers: concurrent questions about one stream share one answer", async () => {
  const redis = await connect();
  const k = testKeys();
  const live = new LiveWorkers({ redis, keys: k, logger: new RecordingLogger() });
  try {
    // Redis 7 counts XINFO CONSUMERS on its own line, 6.2 all of XINFO on one.
    const xinfoCalls = async (): Promise<number> => Number(/cmdstat_xinfo(?:\|consumers)?:calls=(\d+)/.exec(await redis.info("commandstats"))?.[1] ?? NaN);
    const before = await xinfoCalls();
    const answers = await Promise.all(Array.from({ length: 20 }, () => live.has(k.toolsStream, "tools")));
    const after = await xinfoCalls();
    assert.deepEqual(new Set(answers), new Set([false]));
    // Other tests may ask at the same time on the shared Redis; 20 questions of our own would show.
    assert.ok(after - before >= 1 && after - before < 20, `XINFO CONSUMERS called ${after - before} times for 20 concurrent questions`);
  } finally {
    await closeRedis(redis);
  }
});

test("departed consumers: one with nothing pending, idle long enough and no heartbeat is forgotten; a live, a busy and a recent one stay", async () => {
  const redis = await connect();
  const k = testKeys();
  const stream = k.toolsStream;
  const group = k.group(stream);
  try {
    await ensureGroup(redis, stream, group, "0");
    for (const name of ["departed", "live", "holder", "recent"]) await redis.sendCommand(["XGROUP", "CREATECONSUMER", stream, group, name]);
    await redis.set(k.heartbeat("tools", "live"), "{}", { expiration: { type: "PX", value: 60_000 } });
    // `holder` holds an entry it read and never acked (a worker that died mid-call): it must stay for a reclaim to find it.
    await redis.sendCommand(xaddArgs(stream, { body: "{}" }, 1000));
    await readGroup(redis, { group, consumer: "holder", stream, id: ">", count: 1 });
    await sleep(300);
    // `recent` takes an entry and acks it: its idle time starts over, and it holds nothing.
    const id = await redis.sendCommand<string>(["XADD", stream, "*", "body", "{}"]);
    await readGroup(redis, { group, consumer: "recent", stream, id: ">", count: 1 });
    await redis.sendCommand(["XACK", stream, group, id]);
    assert.deepEqual(await forgetDepartedConsumers(redis, k, stream, "tools", 250), ["departed"]);
    const left = (await redis.xInfoConsumers(stream, group)).map((c) => String(c.name)).sort();
    assert.deepEqual(left, ["holder", "live", "recent"]);
    // No stream at all: nothing to forget, and no error.
    assert.deepEqual(await forgetDepartedConsumers(redis, k, k.poolStream("nobody"), "tools", 250), []);
  } finally {
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("a live worker whose consumer was lost (swept, or its group gone with the stream) joins again within a heartbeat, and is seen", async () => {
  const logger = new RecordingLogger();
  const redis = await connect();
  const k = testKeys();
  const server = await exampleWorker(redis, k, logger, "w-quiet", { blockMs: 200, heartbeatMs: 300 });
  const live = new LiveWorkers({ redis, keys: k, logger, trustMs: 0 });
  const stream = k.toolsStream;
  try {
    await server.start();
    assert.equal(await live.has(stream, "tools"), true);
    // Swept while alive but quiet: no entry comes to make it again, so it must make itself.
    await redis.sendCommand(["XGROUP", "DELCONSUMER", stream, k.group(stream), "w-quiet"]);
    assert.equal(await live.has(stream, "tools"), false);
    await eventually(async () => assert.equal(await live.has(stream, "tools"), true), 3000, 50);
    // The stream and its group gone (Redis lost them): the reader makes the group again, the heartbeat the consumer.
    await redis.del(stream);
    await eventually(async () => assert.equal(await live.has(stream, "tools"), true), 5000, 50);
  } finally {
    await server.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
