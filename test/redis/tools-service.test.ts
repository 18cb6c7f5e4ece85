import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { loadToolModule } from "../../src/fleet/load-tools.js";
import { registryFor } from "../../src/fleet/local.js";
import { defineConfig, defineTool, staticConfig } from "../../src/index.js";
import { SESSION_REUSE_SECONDS, ToolsClient, type ToolCall } from "../../src/tool-exec/client.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import { cancelRequest, storeReplyArgs } from "../../src/tool-exec/idempotency.js";
import type { Keys } from "../../src/redis/keys.js";
import { sessionRecord, writeSession } from "../../src/tool-exec/session.js";
import { ensureGroup, xaddArgs } from "../../src/redis/streams.js";
import { decodeReply, emptyWriteBack, encodeReply, encodeRequest, type ToolReply, type ToolRequest } from "../../src/tool-exec/codec.js";
import { ToolExecServer } from "../../src/tool-exec/server.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, namespaceKeys, testKeys } from "../support/redis-helpers.js";
import { identity, wireCtx } from "../support/wire-samples.js";

/** A tool whose runs are counted, to prove what ran once. */
function countingTool(counter: { runs: number }) {
  return defineTool({
    name: "count_me",
    description: "Counts its runs.",
    parameters: z.object({ ms: z.number().default(0) }),
    handler: async ({ ms }) => {
      await sleep(ms);
      counter.runs++;
      return `run ${counter.runs}`;
    },
  });
}

/** A tool that runs (counted) and then sends a rich message JSON cannot encode. */
function unencodableTool(counter: { runs: number }) {
  return defineTool({
    name: "unencodable",
    description: "Runs, then writes back what cannot be sent.",
    parameters: z.object({}),
    handler: (_args, ctx) => {
      counter.runs++;
      ctx.sendRichMessage({ amount: 10n } as unknown as Record<string, never>);
      return "ran";
    },
  });
}

/** Who the worker says the caller is: the identity it took from the session record. */
const whoami = defineTool({
  name: "whoami",
  description: "Returns the user id the call runs as.",
  parameters: z.object({}),
  annotations: { readOnly: true },
  handler: (_args, ctx) => ctx.userId,
});

interface Fleet {
  redis: RedisNode;
  keys: Keys;
  logger: RecordingLogger;
  service: ToolExecServer;
  client: ToolsClient;
  counter: { runs: number };
  stop(): Promise<void>;
}

async function fleet(
  options: { workerId?: string; leaseMs?: number; maxDeliveries?: number; maxLen?: number; replyTtlSeconds?: number; concurrency?: number; keys?: Keys } = {},
): Promise<Fleet> {
  const logger = new RecordingLogger();
  const redis = await connect(REDIS_URL, logger);
  const k = options.keys ?? testKeys();
  const config = staticConfig(defineConfig({ backgroundThreshold: 0 }));
  const counter = { runs: 0 };
  const module = await loadToolModule();
  const registry = registryFor(
    { tools: [...module.tools, countingTool(counter), unencodableTool(counter), whoami], permissions: module.permissions },
    config,
    logger,
  );
  const service = new ToolExecServer({
    redis,
    redisUrl: REDIS_URL,
    keys: k,
    registry,
    config,
    logger,
    workerId: options.workerId ?? "w1",
    worker: {
      blockMs: 200,
      leaseMs: options.leaseMs ?? 5000,
      maxDeliveries: options.maxDeliveries ?? 5,
      maxLen: options.maxLen ?? 10_000,
      concurrency: options.concurrency ?? 16,
    },
    replyTtlSeconds: options.replyTtlSeconds ?? 120,
  });
  await service.start();
  const client = new ToolsClient({
    redis,
    redisUrl: REDIS_URL,
    keys: k,
    workerId: "caller-1",
    logger,
    blockMs: 200,
    ...(options.maxLen ? { maxLen: options.maxLen } : {}),
  });
  await client.start();
  return {
    redis,
    keys: k,
    logger,
    service,
    client,
    counter,
    stop: async () => {
      await client.stop();
      await service.stop();
      await dropNamespace(redis, k);
      await closeRedis(redis);
    },
  };
}

function call(toolName: string, toolArgs: ToolCall["toolArgs"], userId = "alice", timeoutMs = 5000): ToolCall {
  return { toolName, toolArgs, userId, schemaHash: "", ctx: wireCtx(userId), identity: identity(userId), timeoutMs };
}

/** A request written by hand, as an attacker or a buggy caller could. */
function request(f: Fleet, over: Partial<ToolRequest> = {}): ToolRequest {
  const correlationId = over.correlationId ?? `c${Math.random().toString(36).slice(2)}`;
  const traceId = over.traceId ?? `t${Math.random().toString(36).slice(2)}`;
  return {
    type: "tool_exec",
    toolName: "echo",
    toolArgs: { text: "x" },
    userId: "alice",
    correlationId,
    traceId,
    idemKey: `${traceId}:${correlationId}`,
    replyTo: f.keys.toolsReplyStream("by-hand"),
    schemaHash: "",
    deadlineMs: Date.now() + 5000,
    // Names alice's record, which the tests write.
    sessionTag: sessionRecord(identity("alice")).tag,
    ...over,
    ctx: { ...wireCtx(), ...over.ctx },
  };
}

async function publish(f: Fleet, fields: Record<string, string | Buffer>): Promise<void> {
  // A caller makes its reply stream before publishing: workers never create one (NOMKSTREAM).
  const byHand = f.keys.toolsReplyStream("by-hand");
  await ensureGroup(f.redis, byHand, f.keys.group(byHand), "$");
  await f.redis.sendCommand(xaddArgs(f.keys.toolsStream, fields, 10_000));
}

/** Publishes one request twice (as a redelivery would), with alice's session record, and returns its two replies. */
async function deliveredTwice(f: Fleet, req: ToolRequest): Promise<ToolReply[]> {
  await writeSession(f.redis, f.keys, req.traceId, identity("alice"), 30);
  const fields = encodeRequest(req);
  await publish(f, fields);
  await publish(f, fields);
  return eventually(async () => {
    const mine = (await replies(f)).filter((r) => r.correlationId === req.correlationId);
    assert.equal(mine.length, 2);
    return mine;
  }, 15_000);
}

/** Waits for the reply to one request on a hand-made reply stream. */
function replyTo(f: Fleet, correlationId: string, stream?: string): Promise<ToolReply> {
  return eventually(async () => {
    const got = (await replies(f, stream)).find((r) => r.correlationId === correlationId);
    assert.ok(got, `no reply to ${correlationId} yet`);
    return got;
  }, 15_000);
}

/** Replies on a hand-made reply stream, read without a group. */
async function replies(f: Fleet, stream = f.keys.toolsReplyStream("by-hand")): Promise<ToolReply[]> {
  const raw = await f.redis.sendCommand<unknown[]>(["XRANGE", stream, "-", "+"]);
  return raw.map((entry) => {
    const [, flat] = entry as [string, string[]];
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
    const decoded = decodeReply(fields);
    assert.ok(decoded.ok, JSON.stringify(decoded));
    return decoded.value;
  });
}

async function pendingCount(f: Fleet): Promise<number> {
  const summary = await f.redis.sendCommand<[number, ...unknown[]]>(["XPENDING", f.keys.toolsStream, f.keys.group(f.keys.toolsStream)]);
  return Number(summary[0]);
}

describe("tools service", () => {
  let f: Fleet;
  before(async () => {
    f = await fleet();
  });
  after(async () => {
    await f.stop();
  });

  test("a call round-trips with its result and write-back, the PNG byte-identical", async () => {
    const echoed = await f.client.call(call("echo", { text: "hello", repeat: 2 }));
    assert.equal(echoed.status, "ok");
    assert.equal(echoed.result, "hellohello");
    assert.equal(echoed.outcome, "ok");
    assert.equal(echoed.workerId, "w1");

    const image = await f.client.call(call("send_image", { width: 300, height: 200 }));
    assert.equal(image.writeBack.sentFiles.length, 1);
    const file = image.writeBack.sentFiles[0];
    assert.equal(file?.name, "gradient.png");
    assert.equal(file?.contentType, "image/png");
    // The same tool run locally draws the same bytes: the remote copy must be identical.
    const { sendImage } = await import("../../examples/tools.js");
    const { ToolContext } = await import("../../src/index.js");
    const local = new ToolContext();
    await (sendImage.handler as (a: unknown, c: InstanceType<typeof ToolContext>) => unknown)({ width: 300, height: 200 }, local);
    assert.ok(Buffer.from(local.sentFiles[0]?.data ?? []).equals(Buffer.from(file?.data ?? [])));

    const injected = await f.client.call(call("inject_tool", { tool: "calculator" }));
    assert.deepEqual(injected.writeBack.injectedTools, ["calculator"]);
    const reacted = await f.client.call(call("echo", { text: 5 }));
    assert.match(reacted.result, /^Invalid arguments for tool 'echo': text:/);
    assert.equal(reacted.outcome, "invalid_args");
  });

  test("identity comes from the session record: a forged user id in the envelope gains nothing", async () => {
    // The session says alice; the envelope claims admin for a tool only admin may run.
    const forged = request(f, { toolName: "admin_stats", toolArgs: {}, userId: "admin", traceId: "trace-forged", ctx: wireCtx("admin") });
    await writeSession(f.redis, f.keys, "trace-forged", identity("alice"), 30);
    await publish(f, encodeRequest(forged));
    const [denied] = await eventually(async () => {
      const got = (await replies(f)).filter((r) => r.correlationId === forged.correlationId);
      assert.equal(got.length, 1);
      return got;
    });
    assert.equal(denied?.result, "Permission denied: user 'alice' is not allowed to run tool 'admin_stats'.");
    assert.equal(denied?.outcome, "denied");

    // The reverse: the record says admin, so admin's tool runs whatever the envelope says.
    const honest = request(f, {
      toolName: "admin_stats",
      toolArgs: {},
      userId: "nobody",
      sessionTag: sessionRecord(identity("admin")).tag,
      traceId: "trace-admin",
      ctx: wireCtx("nobody"),
    });
    await writeSession(f.redis, f.keys, "trace-admin", identity("admin"), 30);
    await publish(f, encodeRequest(honest));
    const ok = await replyTo(f, honest.correlationId);
    assert.equal(ok.outcome, "ok");
    assert.match(ok.result, /"pid":\d+/);
  });

  test("without a session record the request is refused", async () => {
    const orphan = request(f, { traceId: "trace-without-session" });
    await publish(f, encodeRequest(orphan));
    const reply = await replyTo(f, orphan.correlationId);
    assert.equal(reply.status, "error");
    assert.equal(reply.error?.code, "UNAUTHENTICATED");
    assert.equal(reply.error?.message, "Request refused: no session record for trace 'trace-without-session' (missing or expired).");
    assert.equal(reply.result, "");
  });

  test("the calls of one trace share one session record: written once, read once, each user's kept apart", async () => {
    const traceId = "turn-shared";
    const inTrace = (tool: string, args: ToolCall["toolArgs"], user = "alice"): ToolCall => ({ ...call(tool, args, user), traceId });
    assert.equal((await f.client.call(inTrace("whoami", {}))).result, "alice");
    const aliceKey = f.keys.toolSession(traceId, sessionRecord(identity("alice")).tag);
    const ttl = await f.redis.ttl(aliceKey);
    // The call's 5 s + 5 s margin + the reuse time of a shared trace's record.
    assert.ok(ttl > 15 && ttl <= 5 + 5 + SESSION_REUSE_SECONDS, `ttl ${ttl}`);
    // Had the next calls written it again, the TTL would be back to about 20 s.
    await f.redis.expire(aliceKey, 1000);
    assert.equal((await f.client.call(inTrace("whoami", {}))).result, "alice");
    assert.match((await f.client.call(inTrace("count_me", {}))).result, /^run \d+$/);
    assert.ok((await f.redis.ttl(aliceKey)) > 900, "the record was not written again");

    // The worker keeps what it read until the record's own expiry: deleted under it, the record still serves
    // (and the caller, which wrote it, does not write it again).
    await f.redis.del(aliceKey);
    assert.equal((await f.client.call(inTrace("whoami", {}))).result, "alice");
    assert.equal(await f.redis.exists(aliceKey), 0);

    // Two users under one trace id, interleaved: each call runs as its own user.
    const mixed = await Promise.all(Array.from({ length: 20 }, (_, i) => f.client.call(inTrace("whoami", {}, i % 2 ? "bob" : "alice"))));
    assert.deepEqual(
      mixed.map((r) => r.result),
      Array.from({ length: 20 }, (_, i) => (i % 2 ? "bob" : "alice")),
    );
  });

  test("a session record the caller wrote but Redis lost is written again and the call retried once", async () => {
    const traceId = "turn-lost";
    // A stale call writes the record, and is refused before the worker reads it: the worker never saw it.
    const stale = await f.client.call({ ...call("whoami", {}), schemaHash: "0".repeat(64), traceId });
    assert.equal(stale.status, "CATALOG_STALE");
    const key = f.keys.toolSession(traceId, sessionRecord(identity("alice")).tag);
    assert.equal(await f.redis.exists(key), 1);
    await f.redis.del(key); // as an eviction or a restart would
    const warningsBefore = f.logger.at("warn").length;
    const reply = await f.client.call({ ...call("whoami", {}), traceId });
    assert.equal(reply.status, "ok", JSON.stringify(reply.error));
    assert.equal(reply.result, "alice");
    assert.equal(await f.redis.exists(key), 1, "written again");
    assert.deepEqual(
      f.logger
        .at("warn")
        .slice(warningsBefore)
        .map((r) => r.msg),
      ["session record missing; writing it again and retrying the call"],
    );
  });

  test("the same request delivered twice runs once, and both deliveries get the stored reply", async () => {
    const before = f.counter.runs;
    const req = request(f, { toolName: "count_me", toolArgs: { ms: 50 } });
    const got = await deliveredTwice(f, req);
    assert.equal(f.counter.runs, before + 1);
    assert.equal(got[0]?.result, got[1]?.result, JSON.stringify(got));
    await eventually(async () => assert.equal(await pendingCount(f), 0));
  });

  test("a call that fails after its claim (a write-back that cannot be encoded) is answered with an error and never run again", async () => {
    const before = f.counter.runs;
    const req = request(f, { toolName: "unencodable", toolArgs: {} });
    const got = await deliveredTwice(f, req);
    assert.equal(f.counter.runs, before + 1, "ran once: the redelivery got the stored error");
    for (const reply of got) {
      assert.equal(reply.status, "error");
      assert.equal(reply.error?.code, "INTERNAL");
      assert.match(reply.error?.message ?? "", /^Tool 'unencodable' failed on the tools service after it started, and is not run again: .*BigInt/);
    }
    await eventually(async () => assert.equal(await pendingCount(f), 0));
    assert.ok(f.logger.at("error").some((r) => r.msg === "call failed after it started; answering with an error, not running it again"));
  });

  test("a trace id of 128 characters, the longest an id may be, still gets its call claimed and run", async () => {
    const before = f.counter.runs;
    const req = request(f, { toolName: "count_me", toolArgs: {}, traceId: "t".repeat(128) });
    await writeSession(f.redis, f.keys, req.traceId, identity("alice"), 30);
    await publish(f, encodeRequest(req));
    const reply = await replyTo(f, req.correlationId);
    assert.equal(reply.status, "ok", JSON.stringify(reply));
    assert.equal(f.counter.runs, before + 1);
    assert.equal(await f.redis.exists(f.keys.idempotency(req.idemKey)), 1, "its reply is stored under the long key");
  });

  test("a tool annotated idempotent is neither claimed nor stored: a duplicate just runs again", async () => {
    const req = request(f, { toolName: "echo", toolArgs: { text: "twice" } });
    const got = await deliveredTwice(f, req);
    assert.deepEqual(
      got.map((r) => r.result),
      ["twice", "twice"],
    );
    assert.equal(await f.redis.exists(f.keys.idempotency(req.idemKey)), 0, "no claim or stored reply for a repeat-safe tool");
    // The identity check still applies: no session record, no run.
    const anonymous = request(f, { toolName: "echo", toolArgs: { text: "who?" } });
    await publish(f, encodeRequest(anonymous));
    const refused = await replyTo(f, anonymous.correlationId);
    assert.equal(refused.error?.code, "UNAUTHENTICATED");
  });

  test("a reply whose stream is missing (Redis restarted, or the caller died) re-creates it with a TTL", async () => {
    const stream = f.keys.toolsReplyStream("gone-caller");
    const req = request(f, { toolName: "echo", toolArgs: { text: "anyone?" }, replyTo: stream });
    await writeSession(f.redis, f.keys, req.traceId, identity("alice"), 30);
    await f.redis.sendCommand(xaddArgs(f.keys.toolsStream, encodeRequest(req), 10_000));
    const got = await replyTo(f, req.correlationId, stream);
    assert.equal(got.result, "anyone?");
    const ttl = await f.redis.ttl(stream);
    assert.ok(ttl > 0 && ttl <= 600, `the re-created stream expires (ttl ${ttl})`);
  });

  test("an expired request is not run", async () => {
    const before = f.counter.runs;
    const req = request(f, { toolName: "count_me", toolArgs: {}, deadlineMs: Date.now() - 1 });
    await writeSession(f.redis, f.keys, req.traceId, identity("alice"), 30);
    await publish(f, encodeRequest(req));
    const reply = await replyTo(f, req.correlationId);
    assert.equal(reply.status, "EXPIRED");
    assert.equal(reply.error?.code, "EXPIRED");
    assert.equal(f.counter.runs, before);
  });

  test("a stale hash for one tool gets CATALOG_STALE while other tools keep working", async () => {
    const catalog = await f.service.publishCatalog();
    const echoHash = catalog.tools.find((t) => t.name === "echo")?.schemaHash;
    assert.ok(echoHash);
    const stale = await f.client.call({ ...call("calculator", { a: 1, op: "add", b: 2 }), schemaHash: "0".repeat(64) });
    assert.equal(stale.status, "CATALOG_STALE");
    assert.equal(stale.error?.code, "CATALOG_STALE");
    assert.equal(stale.error?.retryable, true);
    const fresh = await f.client.call({ ...call("echo", { text: "still fine" }), schemaHash: echoHash });
    assert.equal(fresh.status, "ok");
    assert.equal(fresh.result, "still fine");
  });

  test("a request its caller cancelled before any worker claimed it is skipped", async () => {
    const before = f.counter.runs;
    const req = request(f, { toolName: "count_me", toolArgs: {} });
    await writeSession(f.redis, f.keys, req.traceId, identity("alice"), 30);
    assert.equal(await cancelRequest(f.redis, f.keys, req.idemKey, 60), true);
    await publish(f, encodeRequest(req));
    await eventually(async () => assert.equal(await pendingCount(f), 0));
    await sleep(100);
    assert.equal(f.counter.runs, before);
    assert.equal((await replies(f)).filter((r) => r.correlationId === req.correlationId).length, 0);
    assert.ok(f.logger.at("info").some((r) => r.msg.includes("cancelled by its caller")));
  });

  test("garbage is dead-lettered and acked, with an error reply where one can be sent, and the worker keeps serving", async () => {
    const good = request(f);
    const wrongTypes = JSON.stringify({ v: 1, type: "tool_exec", tool_name: 42, correlation_id: "corr-wrong-types", reply_to: good.replyTo });
    const cases: Record<string, string | Buffer>[] = [
      { body: "this is not json" },
      { body: Buffer.from([0xff, 0xfe, 0x00, 0x01]) },
      { nobody: "x" },
      { body: "[1,2,3]" },
      { body: wrongTypes },
      { body: JSON.stringify({ ...JSON.parse(encodeRequest(good).body as string), v: 99 }) },
      { body: JSON.stringify({ v: 1, type: "tool_exec", pad: "x".repeat(1024 * 1024 + 10) }) },
      // A reply stream outside the namespace would let a request write anywhere: refused, no reply.
      { body: encodeRequest({ ...good, correlationId: "corr-escape", idemKey: `${good.traceId}:corr-escape`, replyTo: "victim:stream" }).body as string },
      // An idempotency key that is not <trace>:<correlation> could name another request's stored reply.
      { body: encodeRequest({ ...good, correlationId: "corr-steal", idemKey: "someone-else:corr-1" }).body as string },
    ];
    for (const fields of cases) await publish(f, fields);
    const dead = f.keys.deadLetter(f.keys.toolsStream);
    await eventually(async () => assert.equal(Number(await f.redis.sendCommand(["XLEN", dead])), cases.length));
    await eventually(async () => assert.equal(await pendingCount(f), 0));

    const deadEntries = await f.redis.sendCommand<unknown[]>(["XRANGE", dead, "-", "+"]);
    const reasons = deadEntries.map((e) => {
      const flat = (e as [string, string[]])[1];
      return flat[flat.indexOf("reason") + 1] ?? "";
    });
    assert.ok(reasons.some((r) => r.startsWith("INVALID_REQUEST: entry body is not JSON")));
    assert.ok(reasons.some((r) => r.startsWith("INVALID_REQUEST: entry has no 'body' field")));
    assert.ok(reasons.some((r) => r.startsWith("UNSUPPORTED_VERSION")));
    assert.ok(reasons.some((r) => r.startsWith("PAYLOAD_TOO_LARGE")));
    assert.ok(reasons.some((r) => r.includes("is not a reply stream of this namespace")));
    assert.ok(reasons.some((r) => r.includes("idem_key must be <ctx.trace_id>:<correlation_id>")));
    assert.equal(Number(await f.redis.exists("victim:stream")), 0);

    const errorReplies = await replies(f);
    const wrong = errorReplies.find((r) => r.correlationId === "corr-wrong-types");
    assert.equal(wrong?.status, "error");
    assert.equal(wrong?.error?.code, "INVALID_REQUEST");
    assert.match(wrong?.error?.message ?? "", /tool_name/);
    const version = errorReplies.find((r) => r.correlationId === good.correlationId);
    assert.equal(version?.error?.code, "UNSUPPORTED_VERSION");

    const still = await f.client.call(call("echo", { text: "alive" }));
    assert.equal(still.result, "alive");
  });
});

test("an entry delivered more than the limit is dead-lettered with an error reply", async () => {
  const f = await fleet({ workerId: "w-dl", leaseMs: 100, maxDeliveries: 2 });
  try {
    // Claimed by a worker that then "died": it never replies and never acks.
    const req = request(f, { toolName: "count_me", toolArgs: {} });
    await writeSession(f.redis, f.keys, req.traceId, identity("alice"), 30);
    await f.redis.sendCommand(["SET", f.keys.idempotency(req.idemKey), JSON.stringify({ state: "running", worker: "ghost", at: Date.now() }), "PX", "60000"]);
    await publish(f, encodeRequest(req));
    const reply = await replyTo(f, req.correlationId);
    assert.equal(reply.error?.code, "DEAD_LETTER");
    assert.match(reply.error?.message ?? "", /delivered 3 times \(limit 2\)/);
    assert.equal(f.counter.runs, 0);
    await eventually(async () => assert.equal(await pendingCount(f), 0));
  } finally {
    await f.stop();
  }
});

test("an entry over the delivery limit whose reply was stored gets that reply, not DEAD_LETTER", async () => {
  const k = testKeys();
  const redis = await connect();
  const req = {
    type: "tool_exec" as const,
    toolName: "count_me",
    toolArgs: {},
    userId: "alice",
    correlationId: "stored-corr",
    traceId: "stored-trace",
    idemKey: "stored-trace:stored-corr",
    replyTo: k.toolsReplyStream("by-hand"),
    schemaHash: "",
    deadlineMs: Date.now() + 30_000,
    sessionTag: sessionRecord(identity("alice")).tag,
    ctx: wireCtx(),
  };
  try {
    // A worker ran it and stored its reply, but died before the ack; it was then delivered past the
    // limit (3 deliveries to a "ghost" consumer, limit 2) before a live worker reclaims it.
    await ensureGroup(redis, k.toolsStream, k.group(k.toolsStream));
    await ensureGroup(redis, req.replyTo, k.group(req.replyTo), "$");
    const id = await redis.sendCommand<string>(xaddArgs(k.toolsStream, encodeRequest(req), 10_000));
    await redis.sendCommand(["XREADGROUP", "GROUP", k.group(k.toolsStream), "ghost", "COUNT", "1", "STREAMS", k.toolsStream, ">"]);
    for (let i = 0; i < 2; i++) await redis.sendCommand(["XCLAIM", k.toolsStream, k.group(k.toolsStream), "ghost", "0", id]);
    const stored: ToolReply = {
      correlationId: req.correlationId,
      workerId: "ghost",
      status: "ok",
      result: "the stored result",
      outcome: "ok",
      writeBack: emptyWriteBack(),
      durationMs: 1,
    };
    await redis.sendCommand(storeReplyArgs(k, req.idemKey, encodeReply(stored), 60));
  } finally {
    await closeRedis(redis);
  }
  const f = await fleet({ keys: k, workerId: "w-stored", leaseMs: 100, maxDeliveries: 2 });
  try {
    const reply = await replyTo(f, req.correlationId);
    assert.equal(reply.error, undefined, JSON.stringify(reply.error));
    assert.equal(reply.result, "the stored result");
    assert.equal(f.counter.runs, 0);
    await eventually(async () => assert.equal(await pendingCount(f), 0));
    assert.equal(Number(await f.redis.sendCommand(["XLEN", f.keys.deadLetter(f.keys.toolsStream)])), 0);
  } finally {
    await f.stop();
  }
});

test("a reply_to that is a key of another type is dead-lettered at once, and the call behind it is answered", async () => {
  // One slot: a call queued behind the bad entry waits for as long as the worker holds it.
  const f = await fleet({ workerId: "w-wrongtype", concurrency: 1 });
  try {
    const hashed = f.keys.toolsReplyStream("hashed");
    await f.redis.sendCommand(["HSET", hashed, "not", "a stream"]);
    const bad = request(f, { toolName: "count_me", toolArgs: {}, replyTo: hashed });
    await writeSession(f.redis, f.keys, bad.traceId, identity("alice"), 30);
    const badId = await f.redis.sendCommand<string>(xaddArgs(f.keys.toolsStream, encodeRequest(bad), 10_000));

    const next = await f.client.call(call("echo", { text: "right behind" }));
    assert.equal(next.result, "right behind");

    // By the time the next call was answered the bad entry was already dead-lettered, on its first
    // delivery (before the fix it was retried ~21 times per delivery, for up to 6 deliveries).
    const dead = (await f.redis.sendCommand<[string, string[]][]>(["XRANGE", f.keys.deadLetter(f.keys.toolsStream), "-", "+"])).map(([, flat]) => {
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
      return fields;
    });
    assert.equal(dead.length, 1, JSON.stringify(dead));
    assert.equal(dead[0]?.entry_id, badId);
    assert.equal(dead[0]?.deliveries, "1");
    assert.match(dead[0]?.reason ?? "", /^reply refused by Redis: WRONGTYPE/);
    // The echo's ack goes out batched, a moment later.
    await eventually(async () => assert.equal(await pendingCount(f), 0));
    assert.equal(await f.redis.type(hashed), "hash");
  } finally {
    await f.stop();
  }
});

test("a graceful stop under load loses nothing", async () => {
  const a = await fleet({ workerId: "w-a" });
  const logger = new RecordingLogger();
  // A second worker on the same namespace takes over what A does not start.
  const { ToolExecServer: Service } = await import("../../src/tool-exec/server.js");
  const config = staticConfig(defineConfig({ backgroundThreshold: 0 }));
  const module = await loadToolModule();
  const b = new Service({
    redis: a.redis,
    redisUrl: REDIS_URL,
    keys: a.keys,
    registry: registryFor({ tools: [...module.tools, countingTool(a.counter)], permissions: module.permissions }, config, logger),
    config,
    logger,
    workerId: "w-b",
    worker: { blockMs: 200 },
  });
  await b.start();
  try {
    const calls = Array.from({ length: 300 }, (_, i) => a.client.call(call("count_me", { ms: 20 + (i % 5) }, "alice", 20_000)));
    await sleep(150);
    await a.service.stop();
    const settled = await Promise.allSettled(calls);
    const failed = settled.filter((s) => s.status === "rejected");
    assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
    assert.equal(a.counter.runs, 300);
    const byWorker = new Map<string, number>();
    for (const s of settled) if (s.status === "fulfilled") byWorker.set(s.value.workerId, (byWorker.get(s.value.workerId) ?? 0) + 1);
    assert.ok((byWorker.get("w-a") ?? 0) > 0, "worker A served some before it stopped");
    assert.ok((byWorker.get("w-b") ?? 0) > 0, "worker B served the rest");
    // A stopped cleanly: no heartbeat, no consumer left behind.
    assert.equal(await a.redis.exists(a.keys.heartbeat("tools", "w-a")), 0);
    const consumers = await a.redis.sendCommand<unknown[]>(["XINFO", "CONSUMERS", a.keys.toolsStream, a.keys.group(a.keys.toolsStream)]);
    assert.ok(!JSON.stringify(consumers).includes("w-a"));
  } finally {
    await b.stop();
    await a.client.stop();
    await dropNamespace(a.redis, a.keys);
    await closeRedis(a.redis);
  }
});

test("after 100k calls, stream lengths and key counts stay bounded", { timeout: 300_000 }, async (t) => {
  const f = await fleet({ workerId: "w-bulk", maxLen: 1000, replyTtlSeconds: 1, concurrency: 64 });
  try {
    const total = 100_000;
    const inFlight = 128;
    let next = 0;
    const samples: { done: number; keys: number; requestLen: number; replyLen: number }[] = [];
    const sample = async (done: number): Promise<void> => {
      samples.push({
        done,
        keys: (await namespaceKeys(f.redis, f.keys)).length,
        requestLen: Number(await f.redis.sendCommand(["XLEN", f.keys.toolsStream])),
        replyLen: Number(await f.redis.sendCommand(["XLEN", f.client.replyStream])),
      });
    };
    let done = 0;
    const started = Date.now();
    const lane = async (): Promise<void> => {
      while (next < total) {
        next++;
        // Distinct trace ids, as distinct chat turns would have: one session record each. Half the calls
        // go to a tool that is claimed and whose reply is stored (inject_tool), half to one that is not (echo).
        const tool = next % 2 === 0 ? call("inject_tool", { tool: "echo" }, "alice", 2000) : call("echo", { text: "x".repeat(100) }, "alice", 2000);
        const reply = await f.client.call({ ...tool, traceId: `bulk-${next}` });
        assert.equal(reply.status, "ok");
        done++;
        if (done === 10_000 || done === total) await sample(done);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
    const seconds = (Date.now() - started) / 1000;
    t.diagnostic(`100k calls in ${seconds.toFixed(1)} s (${Math.round(total / seconds)} calls/s); samples ${JSON.stringify(samples)}`);
    const [at10k, at100k] = samples;
    assert.ok(at10k && at100k);
    // MAXLEN ~ trims in whole nodes of 100 entries, so allow one node of slack.
    assert.ok(at100k.requestLen <= 1000 + 100, `request stream ${at100k.requestLen}`);
    // Read replies are deleted in batches every 50 ms: what is left is at most that long of replies.
    assert.ok(at100k.replyLen <= 1000, `reply stream ${at100k.replyLen}`);
    // Session records (call timeout 2 s + 5 s margin + the reuse time of a shared trace's record)
    // and stored replies (1 s) live seconds: the count tracks the call rate times those TTLs, not the
    // total number of calls. Redis reclaims expired keys lazily and by sampling, so up to about a
    // third more may linger.
    const rate = total / seconds;
    assert.ok(
      at100k.keys <= rate * (2 + 5 + SESSION_REUSE_SECONDS + 1) * 1.5 + 100,
      `keys: ${at10k.keys} at 10k, ${at100k.keys} at 100k, at ${Math.round(rate)} calls/s`,
    );
    // Once the TTLs run out, only the fixed keys are left.
    await eventually(
      async () => {
        const left = await namespaceKeys(f.redis, f.keys);
        // The fixed keys: the request and reply streams, the worker's own stream, its catalog part and the parts' index, its heartbeats …
        assert.ok(left.length <= 8, `${left.length} keys left: ${left.slice(0, 5).join(" ")} …`);
      },
      (2 + 5 + SESSION_REUSE_SECONDS) * 1000 + 10_000,
      500,
    );
  } finally {
    await f.stop();
  }
});
