import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { loadToolModule } from "../../src/fleet/load-tools.js";
import { registryFor } from "../../src/fleet/local.js";
import { defineConfig, defineTool, staticConfig } from "../../src/index.js";
import { ToolsClient, type ToolCall } from "../../src/tool-exec/client.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { sessionRecord, writeSession } from "../../src/tool-exec/session.js";
import { ensureGroup, xaddArgs } from "../../src/redis/streams.js";
import { encodeReply, encodeRequest, type ToolRequest } from "../../src/tool-exec/codec.js";
import { signEntry } from "../../src/tool-exec/signing.js";
import { ToolExecServer } from "../../src/tool-exec/server.js";
import type { EntryFields } from "../../src/redis/entry-codec.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";
import { identity, wireCtx } from "../support/wire-samples.js";

// docs/security.md: the fleet secret, and the session check on stored replies.

const SECRET = "a-fleet-secret-of-at-least-32-characters";

interface Fleet {
  redis: RedisNode;
  keys: Keys;
  logger: RecordingLogger;
  client: ToolsClient;
  runs: string[];
  stop(): Promise<void>;
}

async function fleet(fleetSecret: string): Promise<Fleet> {
  const logger = new RecordingLogger();
  const redis = await connect(REDIS_URL, logger);
  const k = testKeys();
  const config = staticConfig(defineConfig(fleetSecret ? { backgroundThreshold: 0, fleetSecret } : { backgroundThreshold: 0 }));
  const runs: string[] = [];
  // Not idempotent: claimed, and its reply stored for duplicates.
  const record = defineTool({
    name: "record",
    description: "Records that it ran, as whom.",
    parameters: z.object({ tag: z.string(), ms: z.number().default(0) }),
    handler: async ({ tag, ms }, ctx) => {
      await sleep(ms);
      runs.push(tag);
      return `ran ${tag} for ${ctx.userId}`;
    },
  });
  const module = await loadToolModule();
  const registry = registryFor({ tools: [...module.tools, record], permissions: module.permissions }, config, logger);
  const service = new ToolExecServer({
    redis,
    redisUrl: REDIS_URL,
    keys: k,
    registry,
    config,
    logger,
    workerId: "w1",
    worker: { blockMs: 200, leaseMs: 5000, maxDeliveries: 5, maxLen: 10_000 },
  });
  await service.start();
  const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "caller-1", logger, blockMs: 200, ...(fleetSecret ? { fleetSecret } : {}) });
  await client.start();
  return {
    redis,
    keys: k,
    logger,
    client,
    runs,
    stop: async () => {
      await client.stop();
      await service.stop();
      await dropNamespace(redis, k);
      await closeRedis(redis);
    },
  };
}

function call(tag: string, ms = 0, userId = "alice"): ToolCall {
  return { toolName: "record", toolArgs: { tag, ms }, userId, schemaHash: "", ctx: wireCtx(userId), identity: identity(userId), timeoutMs: 10_000 };
}

/** A request written by hand for alice's session (whose record is written): all an attacker who read the stream knows. */
async function forgedRequest(f: Fleet, tag: string, replyStream: string, over: Partial<ToolRequest> = {}): Promise<ToolRequest> {
  const correlationId = over.correlationId ?? `c${Math.random().toString(36).slice(2)}`;
  const traceId = over.traceId ?? `t${Math.random().toString(36).slice(2)}`;
  await writeSession(f.redis, f.keys, traceId, identity("alice"), 30);
  await ensureGroup(f.redis, replyStream, f.keys.group(replyStream), "$");
  return {
    type: "tool_exec",
    toolName: "record",
    toolArgs: { tag, ms: 0 },
    userId: "alice",
    correlationId,
    traceId,
    idemKey: `${traceId}:${correlationId}`,
    replyTo: replyStream,
    schemaHash: "",
    deadlineMs: Date.now() + 10_000,
    sessionTag: sessionRecord(identity("alice")).tag,
    ctx: wireCtx("alice"),
    ...over,
  };
}

async function publish(f: Fleet, fields: EntryFields): Promise<string> {
  return f.redis.sendCommand<string>(xaddArgs(f.keys.toolsStream, fields, 10_000));
}

async function streamLength(f: Fleet, stream: string): Promise<number> {
  return Number(await f.redis.sendCommand(["XLEN", stream]));
}

/** Waits until the worker has read and acked every entry up to `entryId` (nothing pending, last delivered past it). */
async function handled(f: Fleet, entryId: string): Promise<void> {
  const stream = f.keys.toolsStream;
  await eventually(
    async () => {
      const [info] = await f.redis.sendCommand<Record<string, unknown>[]>(["XINFO", "GROUPS", stream]);
      assert.ok(info, "no group yet");
      const [ms, seq] = String(info["last-delivered-id"]).split("-").map(Number);
      const [wantMs, wantSeq] = entryId.split("-").map(Number);
      assert.ok(ms! > wantMs! || (ms === wantMs && seq! >= wantSeq!), "not delivered yet");
      assert.equal(Number(info.pending), 0, "still pending");
    },
    15_000,
    20,
  );
}

describe("with a fleet secret", () => {
  let f: Fleet;
  before(async () => {
    f = await fleet(SECRET);
  });
  after(async () => {
    await f.stop();
  });

  test("a signed call from a caller with the secret runs and its signed reply is taken", async () => {
    const reply = await f.client.call(call("real"));
    assert.equal(reply.status, "ok");
    assert.equal(reply.result, "ran real for alice");
  });

  test("a request XADDed by hand with a valid trace and session tag but no or a wrong signature is dead-lettered, not run, not answered", async () => {
    const replyStream = f.keys.toolsReplyStream("thief");
    const unsigned = await forgedRequest(f, "unsigned", replyStream);
    const missigned = await forgedRequest(f, "missigned", replyStream);
    await publish(f, encodeRequest(unsigned));
    const last = await publish(f, signEntry("another-secret-of-at-least-32-characters!", "request", encodeRequest(missigned)));
    await handled(f, last);
    assert.deepEqual(
      f.runs.filter((t) => t !== "real"),
      [],
    );
    assert.equal(await streamLength(f, f.keys.deadLetter(f.keys.toolsStream)), 2);
    assert.equal(await streamLength(f, replyStream), 0);
    // The same request signed with the fleet's secret does run: the refusal was the signature's.
    await publish(f, signEntry(SECRET, "request", encodeRequest({ ...unsigned, correlationId: "signed1", idemKey: `${unsigned.traceId}:signed1` })));
    await eventually(() => assert.ok(f.runs.includes("unsigned")), 15_000);
  });

  test("a forged reply XADDed to a caller's reply stream with the right correlation id is not taken: the real one is", async () => {
    const pending = f.client.call(call("slow", 700));
    // The correlation id, as anyone reading the request stream sees it.
    const correlationId = await eventually(async () => {
      const entries = await f.redis.sendCommand<[string, string[]][]>(["XRANGE", f.keys.toolsStream, "-", "+"]);
      for (const [, flat] of entries) {
        const body = JSON.parse(flat[flat.indexOf("body") + 1]!) as { correlation_id: string; tool_args: { tag?: string } };
        if (body.tool_args.tag === "slow") return body.correlation_id;
      }
      assert.fail("request not published yet");
    }, 5000);
    const forged = (text: string) => ({
      correlationId,
      status: "ok" as const,
      result: text,
      outcome: "ok" as const,
      writeBack: { sentFiles: [], injectedTools: null, sentRichMessages: [] },
      workerId: "w1",
      durationMs: 1,
    });
    await f.redis.sendCommand(xaddArgs(f.client.replyStream, encodeReply(forged("forged, unsigned")), 1000));
    await f.redis.sendCommand(
      xaddArgs(f.client.replyStream, signEntry("another-secret-of-at-least-32-characters!", "reply", encodeReply(forged("forged, mis-signed"))), 1000),
    );
    const reply = await pending;
    assert.equal(reply.result, "ran slow for alice");
    assert.ok(f.logger.records.some((r) => r.msg.startsWith("malformed reply dropped")));
  });
});

describe("stored replies", () => {
  let f: Fleet;
  before(async () => {
    f = await fleet("");
  });
  after(async () => {
    await f.stop();
  });

  test("a redelivered request naming another session does not receive the stored reply; one naming the same session does", async () => {
    const owner = f.keys.toolsReplyStream("owner");
    const req = await forgedRequest(f, "once", owner);
    const first = await publish(f, encodeRequest(req));
    await handled(f, first);
    assert.equal(await streamLength(f, owner), 1);
    // Mallory's own valid session record for the same trace, and a copy of the request that names it.
    await writeSession(f.redis, f.keys, req.traceId, identity("mallory"), 30);
    const thief = f.keys.toolsReplyStream("thief");
    await ensureGroup(f.redis, thief, f.keys.group(thief), "$");
    const copy = await publish(f, encodeRequest({ ...req, replyTo: thief, sessionTag: sessionRecord(identity("mallory")).tag }));
    await handled(f, copy);
    assert.equal(await streamLength(f, thief), 0);
    assert.deepEqual(f.runs, ["once"]);
    // A true redelivery (same session) still gets the stored reply.
    const again = await publish(f, encodeRequest(req));
    await handled(f, again);
    assert.equal(await streamLength(f, owner), 2);
    assert.deepEqual(f.runs, ["once"]);
  });

  test("without a secret nothing is signed and nothing is required: an unsigned request runs", async () => {
    const reply = await f.client.call(call("plain"));
    assert.equal(reply.result, "ran plain for alice");
  });
});
