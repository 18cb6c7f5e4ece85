import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { exampleTools } from "../../examples/tools.js";
import { buildCatalog } from "../../src/tool-exec/catalog.js";
import { PRESENCE_REFRESH_MS, loadCatalog, publishCatalog, readLiveParts, refreshPresence } from "../../src/tool-exec/catalog-parts.js";
import { CatalogPresence } from "../../src/tool-exec/catalog-presence.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import { readSession, sessionRecord, writeSession } from "../../src/tool-exec/session.js";
import { ensureGroup, readGroup, xaddArgs } from "../../src/redis/streams.js";
import { BlockingReader } from "../../src/redis/blocking-reader.js";
import { setTimeout as sleep } from "node:timers/promises";
import { RedisTaskStore } from "../../src/tool-exec/task-store.js";
import { decodeReply, encodeReply } from "../../src/tool-exec/codec.js";
import { ToolsClient, publishedRequestOf } from "../../src/tool-exec/client.js";
import { ID_PATTERN } from "../../src/redis/keys.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { OwnRedis, REDIS_URL, connect, dropNamespace, echoCall, testKeys } from "../support/redis-helpers.js";
import { sampleReply } from "../support/wire-samples.js";
import { ToolfleetError } from "../../src/core/errors.js";

describe("wire format", () => {
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
  describe("in Redis", () => {
    let redis: RedisNode;
    const k = testKeys();
    before(async () => {
      redis = await connect();
    });
    after(async () => {
      await dropNamespace(redis, k);
      await closeRedis(redis);
    });

    test("parts: published, merged, kept alive, gone when their life runs out; a corrupt part is reported and left out", async () => {
      assert.equal(await loadCatalog(redis, k), null);
      const catalog = buildCatalog(exampleTools, { admin_stats: ["admin"] });
      const member = await publishCatalog(redis, k, catalog, { pool: "default", workerId: "w1" }, { ttlMs: 400 });
      const merged = await loadCatalog(redis, k);
      assert.deepEqual(merged?.tools, catalog.tools);
      assert.deepEqual(merged?.permissions, catalog.permissions);
      assert.equal(merged?.schemaHash, catalog.schemaHash, "one part: the merged hash is the part's");
      assert.deepEqual(
        merged?.publishers.map((p) => `${p.pool}/${p.workerId}`),
        ["default/w1"],
      );
      // Kept alive past its first life …
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(await refreshPresence(redis, k, { pool: "default", workerId: "w1" }, member, 400), true);
      }
      assert.equal((await readLiveParts(redis, k)).parts.length, 1);
      // … and gone once no one refreshes it, by Redis's clock; a refresh then says to publish again.
      await eventually(async () => assert.equal(await loadCatalog(redis, k), null), 2000, 50);
      assert.equal(await refreshPresence(redis, k, { pool: "default", workerId: "w1" }, member, 400), false);

      // A corrupt part: left out of the merge, and named.
      await publishCatalog(redis, k, catalog, { pool: "gpu", workerId: "w2" }, { ttlMs: 60_000 });
      await redis.set(k.catalogPart("gpu", "w2"), "{not json", { KEEPTTL: true });
      const read = await readLiveParts(redis, k);
      assert.equal(read.parts.length, 0);
      assert.match(read.unreadable.join("\n"), /tools:catalog:parts\}:gpu:w2: not JSON/);
      await redis.set(k.catalogPart("gpu", "w2"), JSON.stringify({ pool: "gpu", workerId: "w2", catalog: { ...catalog, tools: [{ name: "bad name" }] } }), {
        KEEPTTL: true,
      });
      assert.match((await readLiveParts(redis, k)).unreadable.join("\n"), /catalog\.tools\.0/);
      // A part that names another worker than its key is not believed.
      await redis.set(k.catalogPart("gpu", "w2"), JSON.stringify({ pool: "gpu", workerId: "w3", catalog }), { KEEPTTL: true });
      assert.match((await readLiveParts(redis, k)).unreadable.join("\n"), /names gpu\/w3/);
    });
  });
});

describe("catalog presence", () => {
  test("while Redis stalls, the keep-alive waits in one tick: no ticks pile up to go out in a burst when it answers again", { timeout: 30_000 }, async () => {
    const own = await OwnRedis.start();
    const logger = new RecordingLogger();
    const redis = await connect(own.url, logger);
    const admin = await connect(own.url);
    const k = testKeys();
    const presence = new CatalogPresence({ redis, keys: k, logger, publisher: { pool: "default", workerId: "w-stall" } });
    try {
      await presence.publish(buildCatalog(exampleTools, {}));
      await admin.sendCommand(["CONFIG", "RESETSTAT"]);
      own.pause();
      await sleep(3 * PRESENCE_REFRESH_MS);
      own.resume();
      await sleep(PRESENCE_REFRESH_MS / 3);
      const stats = await admin.sendCommand<string>(["INFO", "commandstats"]);
      const pexpires = Number(/cmdstat_pexpire:calls=(\d+)/.exec(stats)?.[1] ?? 0);
      // A tick is two PEXPIREs: the one that waited out the stall, and perhaps one more since; three piled-up ticks are six or more.
      assert.ok(pexpires <= 4, `${pexpires} PEXPIREs went out once Redis answered again`);
      assert.ok(pexpires >= 2, "the waiting tick went out");
    } finally {
      own.resume();
      await presence.withdraw();
      await closeRedis(admin);
      await closeRedis(redis);
      await own.stop();
    }
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
      assert.deepEqual(await readSession(redis, k, "tr-3", bad.tag), {
        ok: false,
        reason: "the session record for trace 'tr-3' is malformed (user_id: Invalid input: expected string, received number)",
      });
      const shortTag = await writeSession(redis, k, "tr-4", { userId: "u", guildId: "", channelId: "", platform: "" }, 1);
      await eventually(async () => assert.equal((await readSession(redis, k, "tr-4", shortTag)).ok, false), 3000, 100);
    } finally {
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
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
      assert.deepEqual(
        (await reader.list()).map((t) => t.id),
        ["t3", "t2", "t1"],
      );
      assert.deepEqual(
        (await reader.list("alice")).map((t) => t.id),
        ["t3", "t1"],
      );
      await eventually(async () => assert.equal(await reader.get("t3"), null), 3000, 100);
      assert.deepEqual(
        (await reader.list("alice")).map((t) => t.id),
        ["t1"],
      );
      assert.equal(await redis.zScore(k.taskIndex, "t3"), null, "expired ids are pruned from the index");
      assert.ok((await redis.ttl(k.taskIndex)) > 0);
      assert.equal(await reader.get("missing"), null);
    } finally {
      await dropNamespace(redis, k);
      await closeRedis(redis);
      await closeRedis(other);
    }
  });
});

describe("tools client", () => {
  test("a call that cannot go out (before start(), a bad timeout, a request too big) is a rejected promise, not a throw, and leaves nothing pending", async () => {
    // ToolsClient.call() is not an async function (docs/observability.md, "Fewer promises per call"): it must still refuse this way.
    const redis = await connect();
    const k = testKeys();
    const client = new ToolsClient({
      redis,
      redisUrl: REDIS_URL,
      keys: k,
      workerId: "caller",
      logger: new RecordingLogger(),
      blockMs: 100,
      maxRequestBytes: 1000,
    });
    const refused = (code: string) => (err: unknown) => err instanceof ToolfleetError && err.code === code;
    try {
      const early = client.call(echoCall("x", 1000));
      await assert.rejects(early, refused("NOT_STARTED"));
      await client.start();
      const badTimeout = client.call(echoCall("x", -1));
      await assert.rejects(badTimeout, refused("CALL_OPTIONS_INVALID"));
      for (const resendIfLost of [false, true]) {
        const tooBig = client.call({ ...echoCall("x".repeat(5000), 1000), resendIfLost });
        await assert.rejects(tooBig, refused("PAYLOAD_TOO_LARGE"));
      }
      assert.equal(client.pendingCount, 0);
    } finally {
      await client.stop();
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  });

  test("with no worker, each call times out at its own deadline (a short one after a long one is not held up) with distinct short ids", async () => {
    const redis = await connect();
    const k = testKeys();
    const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "caller", logger: new RecordingLogger(), blockMs: 100 });
    try {
      await client.start();
      const long = client.call(echoCall("long", 5000));
      const longSettled = long.then(
        () => "replied",
        (err: unknown) => (err instanceof ToolfleetError ? err.code : "other"),
      );
      const short = await client.call(echoCall("short", 150)).then(
        () => assert.fail("no worker: no reply"),
        (err: unknown) => err,
      );
      assert.ok(short instanceof ToolfleetError);
      assert.equal(short.code, "TIMEOUT");
      assert.equal(short.message, "No reply within 150 ms.");
      // Where its request landed goes with the error (RpcClient's `failed`), for cancelUnstarted().
      const landed = publishedRequestOf(short, k);
      assert.equal(landed?.stream, k.toolsStream);
      assert.match(landed?.entryId ?? "", /^\d+-\d+$/);
      assert.match(landed?.runId ?? "", /^[0-9a-f]+$/);
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
      assert.ok(
        ids.every((id) => id.length < 36),
        `shorter than a UUID: ${ids.join(", ")}`,
      );
    } finally {
      await client.stop();
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  });
});

describe("connections on the way out", () => {
  test("closeRedis() on a Redis that stalls with a reply owed ends after its wait, and drops that reply", { timeout: 30_000 }, async () => {
    const own = await OwnRedis.start();
    const redis = await connect(own.url);
    try {
      own.pause();
      const owed = redis.get("never-answered");
      const started = Date.now();
      await closeRedis(redis, 500);
      const tookMs = Date.now() - started;
      assert.ok(tookMs >= 450 && tookMs < 3000, `closing took ${tookMs} ms`);
      assert.equal(redis.isOpen, false);
      await assert.rejects(owed);
    } finally {
      own.resume();
      await own.stop();
    }
  });

  test("a blocking reader stopped while it waits for a new connection (Redis stalled) gives that connection up", { timeout: 30_000 }, async () => {
    const own = await OwnRedis.start();
    const logger = new RecordingLogger();
    const redis = await connect(own.url, logger);
    const k = testKeys();
    const stream = k.toolsReplyStream("leak");
    const reader = new BlockingReader({
      redis,
      redisUrl: own.url,
      logger,
      name: "leak-reader",
      stream,
      group: k.group(stream),
      consumer: "c",
      groupStart: "0",
      blockMs: 100,
      watchdogGraceMs: 200,
    });
    try {
      await ensureGroup(redis, stream, k.group(stream), "0");
      await reader.open();
      reader.start({ room: () => Promise.resolve(1), onEntries: () => undefined });
      own.pause();
      // The read stalls, the watchdog drops its connection, and a new one waits for a Redis that answers nothing.
      await eventually(() => assert.ok(logger.records.some((r) => r.msg.includes("blocking read stalled"))), 5000);
      await sleep(300);
      const started = Date.now();
      await reader.stop();
      const tookMs = Date.now() - started;
      assert.ok(tookMs < 1000, `stop() took ${tookMs} ms`);
      assert.equal(logger.records.filter((r) => r.msg.includes("did not end in time")).length, 0);
      own.resume();
      // A connection left retrying would be back within its reconnect delay (under 550 ms).
      await sleep(1500);
      const admin = await connect(own.url);
      try {
        assert.doesNotMatch(await admin.sendCommand<string>(["CLIENT", "LIST"]), /name=leak-reader/);
      } finally {
        await closeRedis(admin);
      }
    } finally {
      own.resume();
      await reader.stop();
      await closeRedis(redis);
      await own.stop();
    }
  });

  test("closeRedis() on a Redis that answers waits for the replies on the way", async () => {
    const redis = await connect();
    const k = testKeys();
    try {
      await redis.set(`${k.namespace}:close`, "v", { EX: 30 });
      const read = redis.get(`${k.namespace}:close`);
      await closeRedis(redis, 5000);
      assert.equal(await read, "v");
    } finally {
      const admin = await connect();
      await admin.del(`${k.namespace}:close`);
      await closeRedis(admin);
    }
  });
});
