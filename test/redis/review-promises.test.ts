// Review of the `promises` branch (plain functions returning `.then` chains instead of async
// functions): what main did and the branch must still do, against the real Redis.
import assert from "node:assert/strict";
import { test } from "node:test";
import { closeRedis } from "../../src/redis/client.js";
import { StreamWorker, type Disposition, type EntryHandler } from "../../src/redis/stream-worker.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

test("a handler that answers with a plain disposition (not a promise) still has its entry acked, as on main", async () => {
  // StreamWorker and EntryHandler are public (src/protocol.ts). main's process() awaited handle(), which
  // takes a plain value as well as a promise; a JS handler, or one that returns its answer at once, did work.
  const redis = await connect();
  const k = testKeys();
  const logger = new RecordingLogger();
  const stream = k.toolsStream;
  const handler: EntryHandler = {
    handle: () => ({ kind: "ack" }) as Disposition as unknown as Promise<Disposition>,
    deadLetterReply: () => null,
  };
  const worker = new StreamWorker({ redis, redisUrl: REDIS_URL, logger, keys: k, service: "tools", stream, consumer: "w1", handler, blockMs: 200 });
  try {
    await worker.start();
    await redis.sendCommand(["XADD", stream, "*", "n", "1"]);
    await eventually(() => assert.equal(worker.heartbeat().processed, 1), 3000);
    assert.deepEqual(
      logger.at("error").map((r) => r.msg),
      [],
    );
  } finally {
    await worker.stop(2000);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
