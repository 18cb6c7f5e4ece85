// The remote call's paths, written as `.then` chains rather than async functions (fewer promises per call:
// docs/observability.md, "What it costs"), against the real Redis: plain-value answers, resend bounds, counters.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ToolfleetError, wireError } from "../../src/core/errors.js";
import { decodeRequest, emptyWriteBack, encodeReply, errorReply, type ToolReply } from "../../src/tool-exec/codec.js";
import { ensureGroup, xaddArgs } from "../../src/redis/streams.js";
import { closeRedis } from "../../src/redis/client.js";
import { ToolsClient } from "../../src/tool-exec/client.js";
import { StreamWorker, type Disposition, type EntryHandler } from "../../src/redis/stream-worker.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { OwnRedis, REDIS_URL, connect, dropNamespace, echoCall, testKeys } from "../support/redis-helpers.js";

test("a handler that answers with a plain disposition (not a promise) still has its entry acked", async () => {
  // StreamWorker and EntryHandler are public (src/protocol.ts): a handler in plain JavaScript may return its
  // answer itself, which an await took and a bare .then would not.
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

/** ToolsClient's handler of a Redis restart (private): ends every pending call whose request another Redis took. */
const restartSeen = (client: ToolsClient): void => (client as unknown as { lostInRestart(runId: string): void }).lostInRestart("a-redis-that-never-was");

test("a call whose request keeps being lost is sent 4 times (3 resends, each logged with the time left), then fails with REQUEST_LOST", async () => {
  // The resend bound and the time left, as ToolsClient.call() has them; nothing else tests REQUEST_LOST.
  const redis = await connect();
  const k = testKeys();
  const logger = new RecordingLogger();
  const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "caller", logger, blockMs: 100 });
  const lostLines = (): number => logger.at("warn").filter((r) => r.msg === "Redis restarted (a new run_id): calls in flight lost their requests").length;
  try {
    await client.start();
    const call = client.call({ ...echoCall("x", 5000), resendIfLost: true });
    const outcome = call.then(
      () => "replied",
      (err: unknown) => err,
    );
    for (let sends = 1; sends <= 4; sends++) {
      await eventually(async () => assert.equal(await redis.xLen(k.toolsStream), sends), 3000);
      // Retried until the XADD's answer has reached the call (its entry id known: only then is it "lost").
      await eventually(() => {
        restartSeen(client);
        assert.equal(lostLines(), sends);
      }, 3000);
    }
    const err = await outcome;
    assert.ok(err instanceof ToolfleetError, String(err));
    assert.equal(err.code, "REQUEST_LOST");
    const resends = logger.at("warn").filter((r) => r.msg === "request lost in a Redis restart; sending it again (the tool may run twice)");
    assert.equal(resends.length, 3);
    const left = resends.map((r) => r.fields.leftMs as number);
    for (const ms of left) assert.ok(ms > 0 && ms <= 5000, `leftMs ${ms}`);
    assert.equal(await redis.xLen(k.toolsStream), 4, "no fifth send");
    assert.equal(client.pendingCount, 0);
  } finally {
    await client.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("a call not marked resendIfLost fails at once with REQUEST_LOST, sent once", async () => {
  const redis = await connect();
  const k = testKeys();
  const logger = new RecordingLogger();
  const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "caller", logger, blockMs: 100 });
  try {
    await client.start();
    const outcome = client.call(echoCall("x", 5000)).then(
      () => "replied",
      (err: unknown) => err,
    );
    await eventually(async () => assert.equal(await redis.xLen(k.toolsStream), 1), 3000);
    await eventually(() => {
      restartSeen(client);
      assert.equal(client.pendingCount, 0);
    }, 3000);
    const err = await outcome;
    assert.ok(err instanceof ToolfleetError && err.code === "REQUEST_LOST", String(err));
    assert.equal(logger.at("warn").filter((r) => r.msg.startsWith("request lost in a Redis restart")).length, 0);
    assert.equal(await redis.xLen(k.toolsStream), 1);
  } finally {
    await client.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

/** A stand-in worker: the request at `index` (0-based) of the tools stream, answered with `reply`. */
async function answer(
  redis: Awaited<ReturnType<typeof connect>>,
  k: ReturnType<typeof testKeys>,
  index: number,
  reply: (correlationId: string) => ToolReply,
): Promise<void> {
  const entries = await eventually(async () => {
    const got = await redis.sendCommand<[string, string[]][]>(["XRANGE", k.toolsStream, "-", "+"]);
    assert.ok(got.length > index, `request ${index + 1} not sent yet`);
    return got;
  }, 3000);
  const flat = entries[index]![1];
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
  const req = decodeRequest(fields);
  assert.ok(req.ok);
  await redis.sendCommand(xaddArgs(req.value.replyTo, encodeReply(reply(req.value.correlationId)), 1000, true));
}

const okReply = (correlationId: string): ToolReply => ({
  correlationId,
  workerId: "stand-in",
  status: "ok",
  result: "fine",
  outcome: "ok",
  writeBack: emptyWriteBack(),
  durationMs: 1,
});

test("a session retry whose request is then lost is sent again within the call's time (the retry's REQUEST_LOST resends)", async () => {
  const redis = await connect();
  const k = testKeys();
  const logger = new RecordingLogger();
  const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "caller", logger, blockMs: 100 });
  const traceId = `review-trace-${Date.now()}`;
  try {
    await client.start();
    // A first call of the trace writes its session record; the client then takes it to be there.
    const first = client.call({ ...echoCall("a", 5000), traceId });
    await answer(redis, k, 0, okReply);
    assert.equal((await first).result, "fine");
    // The second does not write it, and the "worker" says it is missing: the client writes it and asks again …
    const second = client.call({ ...echoCall("b", 5000), traceId, resendIfLost: true });
    await answer(redis, k, 1, (id) => errorReply(id, "stand-in", wireError("UNAUTHENTICATED", "Request refused: no session record.")));
    await eventually(async () => assert.equal(await redis.xLen(k.toolsStream), 3), 3000);
    // … and that retry's request is lost in a "restart": sent once more, within the call's time.
    await eventually(() => {
      restartSeen(client);
      assert.equal(logger.at("warn").filter((r) => r.msg.startsWith("Redis restarted (a new run_id)")).length, 1);
    }, 3000);
    await answer(redis, k, 3, okReply);
    assert.equal(logger.at("warn").filter((r) => r.msg.startsWith("request lost in a Redis restart")).length, 1);
    const reply = await second;
    assert.equal(reply.status, "ok");
    assert.equal(reply.result, "fine");
    assert.equal(logger.at("warn").filter((r) => r.msg === "session record missing; writing it again and retrying the call").length, 1);
    assert.equal(await redis.xLen(k.toolsStream), 4);
  } finally {
    await client.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

/** A worker on its own namespace whose replies go to `good`, or to `refused` (a string key: WRONGTYPE) for `to=refused`. */
async function counted(
  options: { leaseMs?: number; claimEveryMs?: number; maxDeliveries?: number },
  body: (w: {
    worker: StreamWorker;
    redis: Awaited<ReturnType<typeof connect>>;
    k: ReturnType<typeof testKeys>;
    logger: RecordingLogger;
    good: string;
  }) => Promise<void>,
): Promise<void> {
  const redis = await connect();
  const k = testKeys();
  const logger = new RecordingLogger();
  const refused = k.toolsReplyStream("refused");
  const good = k.toolsReplyStream("good");
  await redis.set(refused, "not a stream");
  await redis.sendCommand(["XADD", good, "*", "seed", "1"]);
  const handler: EntryHandler = {
    handle: (entry) => Promise.resolve({ kind: "ack", reply: { stream: String(entry.fields.to) === "refused" ? refused : good, fields: { body: "ran" } } }),
    deadLetterReply: () => null,
    storedReply: (entry) => Promise.resolve(String(entry.fields.to) === "stored" ? { stream: good, fields: { body: "stored" } } : null),
  };
  const worker = new StreamWorker({
    redis,
    redisUrl: REDIS_URL,
    logger,
    keys: k,
    service: "tools",
    stream: k.toolsStream,
    consumer: "w1",
    handler,
    blockMs: 200,
    ...options,
  });
  try {
    await ensureGroup(redis, k.toolsStream, k.group(k.toolsStream));
    await body({ worker, redis, k, logger, good });
    await eventually(async () => assert.equal(Number((await redis.sendCommand<unknown[]>(["XPENDING", k.toolsStream, k.group(k.toolsStream)]))[0]), 0), 3000);
    assert.equal(logger.at("error").length, 0);
  } finally {
    await worker.stop(2000);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
}

const deadReasons = async (redis: Awaited<ReturnType<typeof connect>>, k: ReturnType<typeof testKeys>): Promise<(string | undefined)[]> =>
  (await redis.sendCommand<[string, string[]][]>(["XRANGE", k.deadLetter(k.toolsStream), "-", "+"])).map(([, f]) => f[f.indexOf("reason") + 1]);

test("counters: a reply Redis refuses for good is dead-lettered at once (deadLettered, not processed); a good one is processed", async () => {
  await counted({}, async ({ worker, redis, k, logger }) => {
    await worker.start();
    await redis.sendCommand(["XADD", k.toolsStream, "*", "to", "refused"]);
    await redis.sendCommand(["XADD", k.toolsStream, "*", "to", "good"]);
    await eventually(() => assert.deepEqual([worker.heartbeat().processed, worker.heartbeat().deadLettered], [1, 1]), 5000);
    const reasons = await deadReasons(redis, k);
    assert.equal(reasons.length, 1);
    assert.match(reasons[0] ?? "", /^reply refused by Redis: WRONGTYPE/);
    assert.equal(logger.at("warn").filter((r) => r.msg === "entry dead-lettered").length, 1);
  });
});

test("counters: over the delivery limit, a stored reply is sent and counted processed; without one, the entry is dead-lettered", async () => {
  await counted({ leaseMs: 200, claimEveryMs: 100, maxDeliveries: 1 }, async ({ worker, redis, k, logger, good }) => {
    // Taken by a consumer that died: their redeliveries are over the limit of 1.
    await redis.sendCommand(["XADD", k.toolsStream, "*", "to", "stored"]);
    await redis.sendCommand(["XADD", k.toolsStream, "*", "to", "none"]);
    await redis.sendCommand(["XREADGROUP", "GROUP", k.group(k.toolsStream), "ghost", "COUNT", "2", "STREAMS", k.toolsStream, ">"]);
    await worker.start();
    await eventually(() => assert.deepEqual([worker.heartbeat().processed, worker.heartbeat().deadLettered], [1, 1]), 5000);
    assert.deepEqual(await deadReasons(redis, k), ["delivered 2 times (limit 1)"]);
    const bodies = (await redis.sendCommand<[string, string[]][]>(["XRANGE", good, "-", "+"])).map(([, f]) => f[1]);
    assert.deepEqual(bodies, ["1", "stored"]);
    assert.equal(logger.at("info").filter((r) => r.msg === "over the delivery limit, but its reply was stored; sent that").length, 1);
  });
});

test("stop() past its timeout ends a commit still retrying (OOM): the entry stays pending, logged, not counted", async () => {
  // Its own Redis: running out of memory is set with CONFIG, which must not touch the shared one.
  const own = await OwnRedis.start();
  const redis = await connect(own.url);
  const k = testKeys();
  const logger = new RecordingLogger();
  const replyStream = k.toolsReplyStream("caller");
  let handled = 0;
  let refuse = (): void => undefined;
  const refusing = new Promise<void>((resolve) => (refuse = resolve));
  const handler: EntryHandler = {
    // Answers once the test has made Redis refuse the reply.
    handle: () => {
      handled++;
      return refusing.then(() => ({ kind: "ack", reply: { stream: replyStream, fields: { body: "the reply" } } }));
    },
    deadLetterReply: () => null,
  };
  const worker = new StreamWorker({
    redis,
    redisUrl: own.url,
    logger,
    keys: k,
    service: "tools",
    stream: k.toolsStream,
    consumer: "w1",
    handler,
    blockMs: 200,
  });
  let stopped = false;
  try {
    await ensureGroup(redis, replyStream, k.group(replyStream), "$");
    await worker.start();
    await redis.sendCommand(["XADD", k.toolsStream, "*", "n", "1"]);
    await eventually(() => assert.equal(handled, 1), 3000);
    // Every write that may use memory now fails (`OOM command not allowed …`), the reply's XADD too.
    await redis.sendCommand(["CONFIG", "SET", "maxmemory", "1"]);
    refuse();
    await eventually(() => assert.ok(logger.at("debug").some((r) => r.msg === "commit failed; retrying, the entry not acked")), 3000);
    await worker.stop(200);
    stopped = true;
    await eventually(() => assert.ok(logger.at("error").some((r) => r.msg === "entry left pending after an error; it will be retried")), 3000);
    await redis.sendCommand(["CONFIG", "SET", "maxmemory", "0"]);
    assert.equal(Number((await redis.sendCommand<unknown[]>(["XPENDING", k.toolsStream, k.group(k.toolsStream)]))[0]), 1);
    assert.deepEqual([worker.heartbeat().processed, worker.heartbeat().deadLettered, worker.heartbeat().inFlight], [0, 0, 0]);
  } finally {
    if (!stopped) await worker.stop(200);
    await closeRedis(redis);
    await own.stop();
  }
});
