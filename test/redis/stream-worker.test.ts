// The stream engine's delivery edges, against the real Redis: what happens
// when a reclaim and a read overlap, when Redis refuses a reply, and when an
// inbox is restarted (when the process itself stalls: e2e/stream-worker.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { ReplyInbox } from "../../src/redis/reply-inbox.js";
import { StreamWorker, type Disposition, type EntryHandler } from "../../src/redis/stream-worker.js";
import { ensureGroup, type StreamEntry } from "../../src/redis/streams.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { OwnRedis, REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

/** A handler whose entries finish when the test says so, or at once once `hold` is off. */
class GatedHandler implements EntryHandler {
  hold = true;
  readonly handled: string[] = [];
  private readonly gates: (() => void)[] = [];
  constructor(private readonly disposition: (id: string) => Disposition = () => ({ kind: "ack" })) {}

  get waiting(): number {
    return this.gates.length;
  }

  handle(entry: { id: string }): Promise<Disposition> {
    return new Promise((resolve) => {
      const finish = (): void => {
        this.handled.push(entry.id);
        resolve(this.disposition(entry.id));
      };
      if (this.hold) this.gates.push(finish);
      else finish();
    });
  }

  release(): void {
    this.gates.shift()?.();
  }

  releaseAll(): void {
    this.hold = false;
    while (this.gates.length > 0) this.release();
  }

  deadLetterReply(): null {
    return null;
  }
}

async function withWorker(
  handler: EntryHandler,
  options: { concurrency?: number; leaseMs?: number; claimEveryMs?: number; blockMs?: number },
  body: (w: { worker: StreamWorker; redis: RedisNode; keys: Keys; logger: RecordingLogger; stream: string }) => Promise<void>,
): Promise<void> {
  const redis = await connect();
  const k = testKeys();
  const logger = new RecordingLogger();
  const stream = k.toolsStream;
  const worker = new StreamWorker({
    redis,
    redisUrl: REDIS_URL,
    logger,
    keys: k,
    service: "tools",
    stream,
    consumer: "w1",
    handler,
    heartbeatMs: 1000,
    ...options,
  });
  try {
    await body({ worker, redis, keys: k, logger, stream });
  } finally {
    if (handler instanceof GatedHandler) handler.releaseAll();
    await worker.stop(2000);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
}

const pending = async (redis: RedisNode, stream: string, group: string): Promise<number> =>
  Number((await redis.sendCommand<unknown[]>(["XPENDING", stream, group]))[0]);

test("a reclaim that overlaps a waiting read never stops the read loop", async () => {
  const handler = new GatedHandler();
  await withWorker(handler, { concurrency: 2, leaseMs: 200, claimEveryMs: 100, blockMs: 2000 }, async ({ worker, redis, keys, stream }) => {
    // A consumer that died holding two entries.
    const group = keys.group(stream);
    await ensureGroup(redis, stream, group);
    for (const n of [1, 2]) await redis.sendCommand(["XADD", stream, "*", "n", `ghost-${n}`]);
    await redis.sendCommand(["XREADGROUP", "GROUP", group, "ghost", "COUNT", "2", "STREAMS", stream, ">"]);
    await worker.start();
    // The reclaim takes both while the worker's read (sized for two) waits in Redis …
    await eventually(() => assert.equal(handler.waiting, 2), 3000);
    // … which then brings one more: three in flight, one over the limit, for a moment.
    await redis.sendCommand(["XADD", stream, "*", "n", "new-1"]);
    await eventually(() => assert.equal(handler.waiting, 3), 3000);
    await sleep(50); // the read loop now waits for room
    handler.release(); // two in flight: still no room
    await sleep(50);
    handler.releaseAll();
    // The loop is still reading: later entries are handled.
    for (const n of [2, 3, 4]) await redis.sendCommand(["XADD", stream, "*", "n", `new-${n}`]);
    await eventually(() => assert.equal(handler.handled.length, 6), 5000);
    assert.equal(worker.healthy, true);
    await eventually(async () => assert.equal(await pending(redis, stream, group), 0));
  });
});

test("an entry whose reply Redis refuses for now (OOM) is not acked, and is acked once the reply goes in", async () => {
  // Its own Redis: running out of memory is set with CONFIG, which must not touch the shared one.
  const own = await OwnRedis.start();
  const redis = await connect(own.url);
  const k = testKeys();
  const stream = k.toolsStream;
  const replyStream = k.toolsReplyStream("caller");
  const handler = new GatedHandler(() => ({ kind: "ack", reply: { stream: replyStream, fields: { body: "the reply" } } }));
  const worker = new StreamWorker({
    redis,
    redisUrl: own.url,
    logger: new RecordingLogger(),
    keys: k,
    service: "tools",
    stream,
    consumer: "w1",
    handler,
    blockMs: 200,
  });
  try {
    await ensureGroup(redis, replyStream, k.group(replyStream), "$");
    await worker.start();
    await redis.sendCommand(["XADD", stream, "*", "n", "1"]);
    await eventually(() => assert.equal(handler.waiting, 1), 3000);
    // Every write that may use memory now fails with `OOM command not allowed …`, the reply's XADD too.
    await redis.sendCommand(["CONFIG", "SET", "maxmemory", "1"]);
    handler.releaseAll();
    await eventually(() => assert.equal(handler.handled.length, 1), 3000);
    await sleep(150); // a few commit attempts, all refused
    assert.equal(await pending(redis, stream, k.group(stream)), 1, "not acked while its reply is refused");
    await redis.sendCommand(["CONFIG", "SET", "maxmemory", "0"]);
    await eventually(async () => assert.equal(await pending(redis, stream, k.group(stream)), 0), 5000);
    const replies = await redis.sendCommand<[string, string[]][]>(["XRANGE", replyStream, "-", "+"]);
    assert.equal(replies.length, 1);
    assert.deepEqual(replies[0]?.[1], ["body", "the reply"]);
    assert.equal(Number(await redis.sendCommand(["XLEN", k.deadLetter(stream)])), 0);
  } finally {
    await worker.stop(1000);
    await closeRedis(redis);
    await own.stop();
  }
});

test("an entry whose reply Redis refuses for good (WRONGTYPE) is dead-lettered at once, not retried", async () => {
  let replyStream = "";
  const handler = new GatedHandler(() => ({ kind: "ack", reply: { stream: replyStream, fields: { body: "the reply" } } }));
  handler.hold = false;
  await withWorker(handler, { blockMs: 200 }, async ({ worker, redis, keys, stream }) => {
    replyStream = keys.toolsReplyStream("caller");
    // The reply "stream" is a plain string: XADD fails with WRONGTYPE, and would on every retry.
    await redis.set(replyStream, "not a stream");
    await worker.start();
    const id = await redis.sendCommand<string>(["XADD", stream, "*", "n", "1"]);
    const dead = await eventually(async () => {
      const entries = await redis.sendCommand<[string, string[]][]>(["XRANGE", keys.deadLetter(stream), "-", "+"]);
      assert.equal(entries.length, 1);
      return entries[0]?.[1] ?? [];
    }, 3000);
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < dead.length; i += 2) fields.set(dead[i] as string, dead[i + 1] as string);
    assert.equal(fields.get("entry_id"), id);
    assert.equal(fields.get("deliveries"), "1");
    assert.match(fields.get("reason") ?? "", /^reply refused by Redis: WRONGTYPE/);
    assert.equal(await pending(redis, stream, keys.group(stream)), 0);
    assert.equal(handler.handled.length, 1);
    assert.equal(await redis.get(replyStream), "not a stream");
  });
});

test("a dead letter whose reply stream is of another type is copied once and acked, not sent again", async () => {
  let replyStream = "";
  const poison: EntryHandler = {
    handle: () => Promise.resolve({ kind: "dead", reason: "poison", reply: { stream: replyStream, fields: { body: "refused" } } }),
    deadLetterReply: () => null,
  };
  await withWorker(poison, { blockMs: 200 }, async ({ worker, redis, keys, stream, logger }) => {
    replyStream = keys.toolsReplyStream("evil");
    await redis.set(replyStream, "not a stream");
    await worker.start();
    await redis.sendCommand(["XADD", stream, "*", "n", "1"]);
    // On one node the error reply is in the dead letter's MULTI (docs/protocol.md): its failure is the transaction's.
    await eventually(() => assert.ok(logger.at("warn").some((r) => r.msg === "dead letter stored, but part of its transaction failed; not sent again")), 3000);
    await sleep(300); // time for retries, had there been any
    assert.equal(await redis.xLen(keys.deadLetter(stream)), 1, "one copy");
    assert.equal(await pending(redis, stream, keys.group(stream)), 0, "acked");
  });
});

test("a reply inbox stopped and started again still deletes what it has read", async () => {
  const redis = await connect();
  const k = testKeys();
  const stream = k.toolsReplyStream("restarts");
  const got: StreamEntry[] = [];
  const inbox = new ReplyInbox({
    redis,
    redisUrl: REDIS_URL,
    keys: k,
    logger: new RecordingLogger(),
    stream,
    consumer: "restarts",
    blockMs: 200,
    onEntries: (e) => got.push(...e),
  });
  try {
    await inbox.start();
    await redis.sendCommand(["XADD", stream, "*", "body", "first"]);
    await eventually(() => assert.equal(got.length, 1), 3000);
    // Stopped before its batched delete ran, then started again.
    await inbox.stop();
    await inbox.start();
    for (let i = 0; i < 5; i++) await redis.sendCommand(["XADD", stream, "*", "body", `again-${i}`]);
    await eventually(() => assert.equal(got.length, 6), 3000);
    await eventually(async () => assert.equal(await redis.xLen(stream), 0), 2000);
  } finally {
    await inbox.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
