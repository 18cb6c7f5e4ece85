// Trimming what every group has acknowledged from a request stream, against the real Redis:
// acked entries go, while an entry still pending and one not yet delivered stay.
import assert from "node:assert/strict";
import { test } from "node:test";
import { closeRedis } from "../../src/redis/client.js";
import { StreamWorker, type Disposition, type EntryHandler, type DeliveredEntry } from "../../src/redis/stream-worker.js";
import { ensureGroup, readGroup, trimAcknowledged } from "../../src/redis/streams.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

/** Acks every entry at once, except one with a `hold` field, which it holds until `release`. */
class HoldingHandler implements EntryHandler {
  readonly handled: string[] = [];
  holding: string | undefined;
  private releaseHeld: (() => void) | undefined;

  handle(entry: DeliveredEntry): Promise<Disposition> {
    if (!entry.fields.hold) {
      this.handled.push(entry.id);
      return Promise.resolve({ kind: "ack" });
    }
    this.holding = entry.id;
    return new Promise((resolve) => {
      this.releaseHeld = () => {
        this.handled.push(entry.id);
        resolve({ kind: "ack" });
      };
    });
  }

  release(): void {
    this.releaseHeld?.();
    this.releaseHeld = undefined;
  }

  deadLetterReply(): null {
    return null;
  }
}

const ids = async (redis: Awaited<ReturnType<typeof connect>>, stream: string): Promise<string[]> =>
  ((await redis.sendCommand<[string, unknown][]>(["XRANGE", stream, "-", "+"])) ?? []).map(([id]) => id);

test("a worker's trim tick leaves no acknowledged entries, and keeps an entry still pending and one not yet delivered", async () => {
  const redis = await connect();
  const k = testKeys();
  const stream = k.toolsStream;
  const handler = new HoldingHandler();
  // One slot: while the held entry runs, the next one cannot be delivered.
  const worker = new StreamWorker({
    redis,
    redisUrl: REDIS_URL,
    logger: new RecordingLogger(),
    keys: k,
    service: "tools",
    stream,
    consumer: "w1",
    handler,
    concurrency: 1,
    leaseMs: 60_000,
    claimEveryMs: 100,
    heartbeatMs: 1000,
  });
  try {
    await worker.start();
    const xadd = (fields: string[]) => redis.sendCommand<string>(["XADD", stream, "*", ...fields]);
    for (let i = 0; i < 30; i++) await xadd(["body", `call ${i}`]);
    await eventually(() => assert.equal(handler.handled.length, 30));
    const held = await xadd(["body", "held", "hold", "1"]);
    await eventually(() => assert.equal(handler.holding, held));
    const undelivered = await xadd(["body", "waiting"]);

    // A tick or two later: the 30 acked calls are gone, the held and the waiting entries are kept.
    await eventually(async () => assert.deepEqual(await ids(redis, stream), [held, undelivered]));
    assert.deepEqual(handler.handled.length, 30, "the waiting entry was not delivered meanwhile");

    // Both are still there to run: released, the held one is acked and the waiting one delivered; then nothing is left.
    handler.release();
    await eventually(() => assert.deepEqual(handler.handled.slice(-2), [held, undelivered]));
    await eventually(async () => assert.deepEqual(await ids(redis, stream), []));
  } finally {
    handler.release();
    await worker.stop(2000);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("trimming keeps what any group still needs: a lagging group's undelivered entries, another's pending ones; a stream without groups is left alone", async () => {
  const redis = await connect();
  const k = testKeys();
  const stream = k.toolsStream;
  try {
    const added: string[] = [];
    for (let i = 0; i < 10; i++) added.push(await redis.sendCommand<string>(["XADD", stream, "*", "n", String(i)]));
    assert.equal(await trimAcknowledged(redis, stream), 0, "no group: nothing is known to be done with");
    assert.equal((await ids(redis, stream)).length, 10);

    // Group a read everything and acked all but entry 6; group b has been delivered only the first 3, all acked.
    await ensureGroup(redis, stream, "a");
    await ensureGroup(redis, stream, "b");
    const read = async (group: string, count: number) => (await readGroup(redis, { group, consumer: "c", stream, id: ">", count })).map((e) => e.id);
    const byA = await read("a", 10);
    await redis.sendCommand(["XACK", stream, "a", ...byA.filter((id) => id !== added[6])]);
    const byB = await read("b", 3);
    await redis.sendCommand(["XACK", stream, "b", ...byB]);

    assert.equal(await trimAcknowledged(redis, stream), 3);
    assert.deepEqual(await ids(redis, stream), added.slice(3));
    // b catches up: now a's pending entry 6 is the oldest one needed.
    await redis.sendCommand(["XACK", stream, "b", ...(await read("b", 10))]);
    assert.equal(await trimAcknowledged(redis, stream), 3);
    assert.deepEqual(await ids(redis, stream), added.slice(6));
  } finally {
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
