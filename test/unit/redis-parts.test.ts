import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { z } from "zod";
import { calculator, echo, exampleTools } from "../../examples/tools.js";
import { defineTool } from "../../src/index.js";
import { buildCatalog, CatalogError, loadCatalog, publishCatalog, toolSchemaHash, watchCatalog } from "../../src/tool-exec/catalog.js";
import { closeRedis, type RedisClient } from "../../src/redis/client.js";
import { keys } from "../../src/redis/keys.js";
import { WrittenSessions, readSession, sessionRecord, writeSession } from "../../src/tool-exec/session.js";
import { ensureGroup, readGroup, xaddArgs } from "../../src/redis/streams.js";
import { RedisTaskStore } from "../../src/tool-exec/task-store.js";
import {
  DEFAULT_MAX_REQUEST_BYTES,
  WireFormatError,
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  type ToolReply,
  type ToolRequest,
} from "../../src/tool-exec/codec.js";
import { ToolCallError, ToolsClient } from "../../src/tool-exec/client.js";
import { ID_PATTERN } from "../../src/redis/keys.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, echoCall, testKeys } from "../support/redis-helpers.js";

test("keys: the names of DESIGN §2, from the namespace", () => {
  const k = keys();
  assert.equal(k.toolsStream, "sg:stream:tools");
  assert.equal(k.toolsReplyStream("inf-1"), "sg:stream:tools:reply:inf-1");
  assert.equal(k.group(k.toolsReplyStream("inf-1")), "sg:stream:tools:reply:inf-1:grp");
  assert.equal(k.catalog, "sg:tools:catalog");
  assert.equal(k.catalogChanged, "sg:tools:catalog:changed");
  assert.equal(k.toolSession("trace-9", "0123456789abcdef"), "sg:tool_session:trace-9:0123456789abcdef");
  assert.equal(k.idempotency("t:c"), "sg:tools:idem:t:c");
  assert.equal(k.deadLetter(k.toolsStream), "sg:stream:tools:dead");
  assert.equal(k.gatewayStream(), "sg:stream:gateway");
  assert.equal(keys("prod").catalog, "prod:tools:catalog");
  assert.throws(() => keys("a b"), /invalid key namespace/);
  assert.throws(() => k.toolSession("x*", "0123456789abcdef"), /invalid trace id/);
  assert.throws(() => k.toolSession("x", "0123456789ABCDEF"), /invalid session tag/);
  assert.throws(() => k.toolsReplyStream("a".repeat(129)), /invalid worker id/);
});

function sampleRequest(over: Partial<ToolRequest> = {}): ToolRequest {
  return {
    type: "tool_exec",
    toolName: "echo",
    toolArgs: { text: "héllo ✓", nested: { list: [1, null, true] } },
    userId: "u1",
    correlationId: "corr-1",
    traceId: "trace-1",
    idemKey: "trace-1:corr-1",
    replyTo: "sg:stream:tools:reply:w1",
    schemaHash: "ab".repeat(32),
    deadlineMs: 1_900_000_000_000,
    sessionTag: "0123456789abcdef",
    ctx: {
      platform: "discord",
      channelId: "c",
      userId: "u1",
      userName: "Ann",
      guildId: "g",
      messageId: "m",
      observabilityRequestId: "obs",
      disclosedSkillIds: ["s1"],
      roomContext: { topic: "x" },
    },
    ...over,
  };
}

function sampleReply(data: Uint8Array): ToolReply {
  return {
    correlationId: "corr-1",
    status: "ok",
    result: "done",
    outcome: "ok",
    writeBack: { sentFiles: [{ name: "big.bin", contentType: "application/octet-stream", data }], injectedTools: ["calculator"], sentRichMessages: [{ kind: "embed", n: 1 }] },
    workerId: "w1",
    durationMs: 1.5,
  };
}

describe("wire format", () => {
  test("a request round-trips through encode and decode", () => {
    const req = sampleRequest();
    const decoded = decodeRequest(encodeRequest(req));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, req);
  });

  test("a request over the size limit is refused with a clear error", () => {
    const big = sampleRequest({ toolArgs: { text: "x".repeat(DEFAULT_MAX_REQUEST_BYTES) } });
    assert.throws(
      () => encodeRequest(big),
      (err: unknown) => err instanceof WireFormatError && err.code === "PAYLOAD_TOO_LARGE" && /The request for tool 'echo' is 1\.0 MiB, over the 1\.0 MiB limit/.test(err.message),
    );
  });

  test("decoding names what is wrong, and salvages where to reply", () => {
    const bad = decodeRequest({ body: JSON.stringify({ v: 1, type: "tool_exec", correlation_id: "c9", reply_to: "sg:stream:tools:reply:w", tool_name: "no spaces allowed" }) });
    assert.equal(bad.ok, false);
    if (bad.ok) return;
    assert.equal(bad.error.code, "INVALID_REQUEST");
    assert.match(bad.error.message, /tool_name/);
    assert.equal(bad.correlationId, "c9");
    assert.equal(bad.replyTo, "sg:stream:tools:reply:w");
    const version = decodeRequest({ body: JSON.stringify({ v: 2 }) });
    assert.equal(!version.ok && version.error.code, "UNSUPPORTED_VERSION");
    const notJson = decodeRequest({ body: "{" });
    assert.equal(!notJson.ok && notJson.error.code, "INVALID_REQUEST");
    const huge = decodeRequest({ body: "x".repeat(100) }, 10);
    assert.equal(!huge.ok && huge.error.code, "PAYLOAD_TOO_LARGE");
  });

  test("a field's length limit counts UTF-16 code units, as the zod schema does", () => {
    // user_name allows 200: 100 emoji are 200 code units (but only 100 code points).
    const at = (userName: string) => decodeRequest(encodeRequest(sampleRequest({ ctx: { ...sampleRequest().ctx, userName } })));
    assert.equal(at("😀".repeat(100)).ok, true);
    const over = at("😀".repeat(100) + "x");
    assert.equal(!over.ok && over.error.code, "INVALID_REQUEST");
    assert.match(!over.ok ? over.error.message : "", /ctx\.user_name/);
  });

  test("a reply over the limit becomes an error reply the caller can still read", () => {
    const fields = encodeReply(sampleReply(new Uint8Array(2048)), 1024);
    assert.deepEqual(Object.keys(fields), ["body"]);
    const decoded = decodeReply(fields);
    assert.ok(decoded.ok);
    assert.equal(decoded.value.status, "error");
    assert.equal(decoded.value.error?.code, "PAYLOAD_TOO_LARGE");
    // Even a limit smaller than the error reply itself ends (no recursion).
    assert.equal(decodeReply(encodeReply(sampleReply(new Uint8Array(10)), 5)).ok, true);
    const nameless = encodeReply({ ...sampleReply(new Uint8Array(1)), writeBack: { sentFiles: [{ name: "", contentType: "x", data: new Uint8Array(1) }], injectedTools: null, sentRichMessages: [] } });
    const decodedNameless = decodeReply(nameless);
    assert.equal(decodedNameless.ok && decodedNameless.value.error?.code, "INTERNAL");
  });

  test("a 10 MiB file round-trips byte-identical through Redis", async () => {
    const redis = await connect();
    const k = testKeys();
    try {
      const data = randomBytes(10 * 1024 * 1024);
      const stream = k.toolsReplyStream("bin");
      await ensureGroup(redis, stream, k.group(stream), "0");
      await redis.sendCommand(xaddArgs(stream, encodeReply(sampleReply(data)), 10));
      const [entry] = await readGroup(redis, { group: k.group(stream), consumer: "c", stream, id: ">", count: 1 });
      assert.ok(entry?.fields);
      const decoded = decodeReply(entry.fields);
      assert.ok(decoded.ok);
      const file = decoded.value.writeBack.sentFiles[0];
      assert.equal(file?.data.byteLength, data.byteLength);
      assert.ok(Buffer.from(file?.data ?? []).equals(data));
      assert.deepEqual(decoded.value.writeBack.injectedTools, ["calculator"]);
      assert.deepEqual(decoded.value.writeBack.sentRichMessages, [{ kind: "embed", n: 1 }]);
    } finally {
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  });
});

describe("catalog", () => {
  test("the same tools give the same hashes, in any order", () => {
    const a = buildCatalog(exampleTools, { admin_stats: ["b", "a"] }, 1);
    const b = buildCatalog([...exampleTools].reverse(), { admin_stats: ["a", "b"] }, 2);
    assert.equal(a.schemaHash, b.schemaHash);
    assert.deepEqual(a.tools, b.tools);
    assert.match(a.schemaHash, /^[0-9a-f]{64}$/);
    assert.deepEqual(a.permissions, { admin_stats: ["a", "b"] });
    const tool = a.tools.find((t) => t.name === "echo");
    assert.deepEqual(tool?.annotations, { readOnly: true, idempotent: true });
    assert.equal(tool?.allowRepeat, true);
  });

  test("a schema written in another key order hashes the same; a changed tool changes only its own hash", () => {
    const one = defineTool({ name: "t", description: "d", parameters: { type: "object", properties: { a: { type: "string" }, b: { type: "number" } } }, handler: () => "" });
    const two = defineTool({ name: "t", description: "d", parameters: { properties: { b: { type: "number" }, a: { type: "string" } }, type: "object" }, handler: () => "" });
    assert.equal(toolSchemaHash(one), toolSchemaHash(two));
    const changedEcho = defineTool({ ...echo, parameters: z.object({ text: z.string(), extra: z.boolean() }), handler: () => "" });
    const before = buildCatalog([echo, calculator], {});
    const afterChange = buildCatalog([changedEcho, calculator], {});
    assert.notEqual(before.schemaHash, afterChange.schemaHash);
    assert.notEqual(before.tools[1]?.schemaHash, afterChange.tools[1]?.schemaHash);
    assert.equal(before.tools[0]?.schemaHash, afterChange.tools[0]?.schemaHash, "calculator's hash is untouched");
    assert.notEqual(buildCatalog([echo], { echo: ["x"] }).schemaHash, buildCatalog([echo], {}).schemaHash);
  });

  describe("in Redis", () => {
    let redis: RedisClient;
    const k = testKeys();
    before(async () => {
      redis = await connect();
    });
    after(async () => {
      await dropNamespace(redis, k);
      await closeRedis(redis);
    });

    test("publish then load gives the same document; none published is null; corrupt is a clear error", async () => {
      assert.equal(await loadCatalog(redis, k), null);
      const catalog = buildCatalog(exampleTools, { admin_stats: ["admin"] });
      await publishCatalog(redis, k, catalog);
      assert.deepEqual(await loadCatalog(redis, k), catalog);
      await redis.set(k.catalog, "{not json");
      await assert.rejects(loadCatalog(redis, k), (err: unknown) => err instanceof CatalogError && /is invalid: not JSON/.test(err.message));
      await redis.set(k.catalog, JSON.stringify({ ...catalog, tools: [{ name: "bad name" }] }));
      await assert.rejects(loadCatalog(redis, k), /is invalid: tools\.0/);
    });

    test("watch reloads on each notice, and again after its connection comes back", async () => {
      const logger = new RecordingLogger();
      let reloads = 0;
      const watch = await watchCatalog(redis, k, { url: REDIS_URL, logger, onChange: () => void reloads++ });
      try {
        await publishCatalog(redis, k, buildCatalog([echo], {}));
        await eventually(() => assert.equal(reloads, 1));
        await publishCatalog(redis, k, buildCatalog([echo, calculator], {}));
        await eventually(() => assert.equal(reloads, 2));

        // Cut the subscriber's connection, as a network blip or a Redis failover would.
        const clients = (await redis.sendCommand<string>(["CLIENT", "LIST", "TYPE", "pubsub"])).split("\n");
        const ids = clients.filter((l) => l.includes("name=catalog-watch ")).map((l) => /id=(\d+)/.exec(l)?.[1]);
        assert.equal(ids.length, 1, clients.join("\n"));
        await redis.sendCommand(["CLIENT", "KILL", "ID", ids[0] as string]);
        // The reconnect itself triggers a reload (a notice may have been missed) …
        await eventually(() => assert.ok(reloads >= 3), 5000);
        const afterReconnect = reloads;
        // … and the subscription is back: a new notice arrives.
        await publishCatalog(redis, k, buildCatalog([calculator], {}));
        await eventually(() => assert.equal(reloads, afterReconnect + 1), 5000);
      } finally {
        await watch.close();
      }
    });
  });
});

describe("session records", () => {
  test("written with a TTL, read back; missing and malformed ones are refusals with reasons", async () => {
    const redis = await connect();
    const k = testKeys();
    try {
      const u1 = { userId: "u1", guildId: "g", channelId: "c", platform: "discord" };
      const tag = await writeSession(redis, k, "tr-1", u1, 30);
      assert.equal(tag, sessionRecord(u1).tag);
      assert.deepEqual(await readSession(redis, k, "tr-1", tag), { ok: true, identity: u1 });
      const ttl = await redis.ttl(k.toolSession("tr-1", tag));
      assert.ok(ttl > 25 && ttl <= 30, String(ttl));
      // Another identity under the same trace is another record: neither overwrites the other.
      const u2 = { ...u1, userId: "u2" };
      const tag2 = await writeSession(redis, k, "tr-1", u2, 30);
      assert.notEqual(tag2, tag);
      assert.deepEqual(await readSession(redis, k, "tr-1", tag2), { ok: true, identity: u2 });
      assert.deepEqual(await readSession(redis, k, "tr-1", tag), { ok: true, identity: u1 });
      assert.deepEqual(await readSession(redis, k, "tr-2", tag), { ok: false, reason: "no session record for trace 'tr-2' (missing or expired)" });
      // A key holding something other than what its tag names is not trusted, even when it parses.
      await redis.set(k.toolSession("tr-3", tag), sessionRecord(u2).json);
      assert.deepEqual(await readSession(redis, k, "tr-3", tag), { ok: false, reason: "the session record for trace 'tr-3' does not match its key" });
      const bad = { json: JSON.stringify({ user_id: 5 }), tag: "" };
      bad.tag = createHash("sha256").update(bad.json).digest("hex").slice(0, 16);
      await redis.set(k.toolSession("tr-3", bad.tag), bad.json);
      assert.deepEqual(await readSession(redis, k, "tr-3", bad.tag), { ok: false, reason: "the session record for trace 'tr-3' is malformed (user_id: Invalid input: expected string, received number)" });
      const shortTag = await writeSession(redis, k, "tr-4", { userId: "u", guildId: "", channelId: "", platform: "" }, 1);
      await eventually(async () => assert.equal((await readSession(redis, k, "tr-4", shortTag)).ok, false), 3000, 100);
    } finally {
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  });
  test("a caller writes a trace's record again only for another identity or a call that would outlive it", () => {
    const written = new WrittenSessions();
    const alice = { userId: "alice", guildId: "g", channelId: "c", platform: "discord" };
    const first = written.plan("turn-1", alice, 10_000);
    assert.deepEqual(first, { rec: sessionRecord(alice), write: true });
    written.wrote("turn-1", alice, first.rec, 20); // Redis keeps it 20 s; the caller counts on 19
    assert.deepEqual(written.plan("turn-1", { ...alice }, 10_000), { rec: first.rec, write: false });
    assert.equal(written.plan("turn-1", alice, 19_500).write, true, "a call needing it past its expiry writes it again");
    for (const other of [{ ...alice, userId: "bob" }, { ...alice, guildId: "h" }, { ...alice, channelId: "d" }, { ...alice, platform: "slack" }]) {
      assert.deepEqual(written.plan("turn-1", other, 1000), { rec: sessionRecord(other), write: true });
    }
    assert.equal(written.plan("turn-2", alice, 1000).write, true, "another trace");
    written.forget("turn-1");
    assert.equal(written.plan("turn-1", alice, 1000).write, true, "forgotten");
  });
});

describe("Redis task store", () => {
  test("any process can read a task another stored; records expire; listing is per user, newest first", async () => {
    const redis = await connect();
    const other = await connect();
    const k = testKeys();
    try {
      const writer = new RedisTaskStore(redis, k);
      const reader = new RedisTaskStore(other, k);
      const now = Date.now();
      await writer.put({ id: "t1", tool: "slow_task", userId: "alice", status: "running", startedAt: now - 3000 }, 60);
      await writer.put({ id: "t2", tool: "echo", userId: "bob", status: "done", result: "ok", startedAt: now - 2000, finishedAt: now - 1999 }, 60);
      await writer.put({ id: "t3", tool: "echo", userId: "alice", status: "error", result: "boom", startedAt: now - 1000, finishedAt: now - 999 }, 1);
      assert.equal((await reader.get("t2"))?.result, "ok");
      assert.deepEqual((await reader.list()).map((t) => t.id), ["t3", "t2", "t1"]);
      assert.deepEqual((await reader.list("alice")).map((t) => t.id), ["t3", "t1"]);
      await eventually(async () => assert.equal(await reader.get("t3"), null), 3000, 100);
      assert.deepEqual((await reader.list("alice")).map((t) => t.id), ["t1"]);
      assert.equal(await redis.zScore(k.taskIndex, "t3"), null, "expired ids are pruned from the index");
      assert.ok((await redis.ttl(k.taskIndex)) > 0);
      assert.equal(await reader.get("missing"), null);
    } finally {
      await dropNamespace(redis, k);
      await closeRedis(redis);
      await closeRedis(other);
    }
  });

  test("a namespace key builder refuses ids that could escape it", () => {
    const k = keys(`ns${randomBytes(2).toString("hex")}`);
    assert.throws(() => k.task("a b"), /invalid task id/);
  });
});

describe("tools client", () => {
  test("with no worker, each call times out at its own deadline (a short one after a long one is not held up) with distinct short ids", async () => {
    const redis = await connect();
    const k = testKeys();
    const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "caller", logger: new RecordingLogger(), blockMs: 100 });
    try {
      await client.start();
      const long = client.call(echoCall("long", 5000));
      const longSettled = long.then(
        () => "replied",
        (err: unknown) => (err instanceof ToolCallError ? err.code : "other"),
      );
      const short = await client.call(echoCall("short", 150)).then(
        () => assert.fail("no worker: no reply"),
        (err: unknown) => err,
      );
      assert.ok(short instanceof ToolCallError);
      assert.equal(short.code, "TIMEOUT");
      assert.equal(short.message, "No reply within 150 ms.");
      // The long call is still waiting when the short one has timed out.
      assert.equal(client.pendingCount, 1);
      // stop() ends it at once rather than at its deadline.
      await client.stop();
      assert.equal(await longSettled, "STOPPED");
      assert.equal(client.pendingCount, 0);
      // Both requests are in the stream, each under its own correlation id, which names a key.
      const entries = await redis.sendCommand<[string, string[]][]>(["XRANGE", k.toolsStream, "-", "+"]);
      const ids = entries.map(([, fields]) => (JSON.parse(fields[1] ?? "{}") as { correlation_id: string }).correlation_id);
      assert.equal(ids.length, 2);
      assert.notEqual(ids[0], ids[1]);
      for (const id of ids) assert.match(id, ID_PATTERN);
      assert.ok(ids.every((id) => id.length < 36), `shorter than a UUID: ${ids.join(", ")}`);
    } finally {
      await client.stop();
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  });
});
