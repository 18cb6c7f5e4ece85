import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createCaller, defineConfig, staticConfig, type Caller } from "../../src/index.js";
import { noLiveWorker } from "../../src/core/outcome.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import { shardOf, type Keys } from "../../src/redis/keys.js";
import { ensureGroup, xaddArgs } from "../../src/redis/streams.js";
import { loadCatalog } from "../../src/tool-exec/catalog-parts.js";
import { writeSession } from "../../src/tool-exec/session.js";
import { decodeReply, encodeRequest, type ToolReply } from "../../src/tool-exec/codec.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { CLI, REDIS_URL, connect, dropNamespace, exited, startToolsProcess, testKeys, type CliChild } from "../support/redis-helpers.js";

const POOL_TOOLS = fileURLToPath(new URL("../support/fixtures/pool-tools.js", import.meta.url));
const COUNTING_TOOLS = fileURLToPath(new URL("../support/fixtures/counting-tools.js", import.meta.url));
const run = promisify(execFile);

/** How many entries were ever added to a stream (XINFO STREAM's entries-added: trimming does not lower it); 0 when it does not exist. */
async function entriesAdded(redis: RedisNode, stream: string): Promise<number> {
  if ((await redis.exists(stream)) === 0) return 0;
  const added = field(await redis.sendCommand<unknown>(["XINFO", "STREAM", stream]), "entries-added");
  assert.ok(added !== undefined, "XINFO STREAM names entries-added (Redis 7)");
  return Number(added);
}

/** A field of an XINFO answer: a flat list (RESP2), a Map or an object (RESP3). */
function field(reply: unknown, name: string): unknown {
  if (Array.isArray(reply)) {
    const at = reply.findIndex((v, i) => i % 2 === 0 && String(v) === name);
    return at >= 0 ? reply[at + 1] : undefined;
  }
  if (reply instanceof Map) return reply.get(name);
  return typeof reply === "object" && reply !== null ? (reply as Record<string, unknown>)[name] : undefined;
}

async function cli(k: Keys, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL },
    timeout: 15_000,
  });
  return stdout;
}

async function stopAll(children: CliChild[]): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  await Promise.all(children.map(exited));
}

test(
  "a pool of 3 shards and two workers: calls spread over the 3 streams, each answered once; a worker reading 2 makes callers use 2, shown as a conflict",
  { timeout: 120_000 },
  async () => {
    const k = testKeys();
    const redis = await connect();
    const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, FIXTURE_TOOL_SET: "cpu" };
    const worker = (id: string, shards: number) =>
      startToolsProcess(["--pool", "cpu", "--shards", String(shards), "--tools", POOL_TOOLS, "--worker-id", id, "--concurrency", "4"], env);
    const children: CliChild[] = [];
    let caller: Caller | undefined;
    try {
      children.push(...(await Promise.all([worker("sh-a", 3), worker("sh-b", 3)])));
      const config = defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false, toolsExecTimeout: 30 });
      caller = createCaller({ config: staticConfig(config), logger: new RecordingLogger() });
      await caller.start();
      const registry = caller.registry;
      await eventually(() => assert.ok(registry.toolNames().has("cpu_hash")), 10_000, 50);
      const shards = [0, 1, 2].map((i) => k.poolShardStream("cpu", i));
      assert.deepEqual(shards, [k.poolStream("cpu"), `${k.poolStream("cpu")}:shard:1`, `${k.poolStream("cpu")}:shard:2`]);
      const merged = await loadCatalog(redis, k);
      assert.deepEqual(
        merged?.publishers.map((p) => [p.workerId, p.shards]),
        [
          ["sh-a", 3],
          ["sh-b", 3],
        ],
      );
      assert.deepEqual(merged?.shardConflicts, []);

      // 60 calls, 12 at a time: every one answered, by one of the two workers, and all three shards used.
      const pids = new Set(children.map((c) => c.pid));
      for (let i = 0; i < 60; i += 12) {
        const outcomes = await Promise.all(Array.from({ length: 12 }, (_, j) => registry.execute("cpu_hash", { text: `t${i + j}` }, { userId: "u" })));
        outcomes.forEach((o, j) => {
          assert.equal(o.kind, "ok", o.text);
          const m = /^cpu:(\d+) hashed t(\d+)$/.exec(o.text);
          assert.ok(m && pids.has(Number(m[1])) && Number(m[2]) === i + j, o.text);
        });
      }
      const added = await Promise.all(shards.map((s) => entriesAdded(redis, s)));
      assert.equal(
        added.reduce((a, b) => a + b, 0),
        60,
        `entries per shard: ${added.join(", ")}`,
      );
      for (const [i, n] of added.entries()) assert.ok(n > 0, `shard ${i} got no call (${added.join(", ")})`);
      // Each shard has its own group, read by both workers, and nothing is left pending.
      for (const s of shards) {
        const consumers = await redis.sendCommand<unknown[]>(["XINFO", "CONSUMERS", s, k.group(s)]);
        assert.equal(consumers.length, 2, `${s}: two consumers`);
        // Acks go out with a worker's next write, or on their own shortly after.
        await eventually(async () => assert.equal(Number((await redis.sendCommand<unknown[]>(["XPENDING", s, k.group(s)]))[0]), 0), 5000, 50);
      }
      const status = JSON.parse(await cli(k, "status", "--json")) as { streams: { stream: string }[]; shardConflicts: unknown[] };
      for (const s of shards)
        assert.ok(
          status.streams.some((x) => x.stream === s),
          `status lists ${s}`,
        );

      // A third worker of the pool reads only 2 shards: callers now use 2 (none lands on shard 2), and the
      // catalog and status say so.
      children.push(await worker("sh-c", 2));
      await eventually(async () => assert.equal((await loadCatalog(redis, k))?.shardConflicts.length, 1), 10_000, 50);
      const conflict = (await loadCatalog(redis, k))!.shardConflicts[0]!;
      assert.deepEqual(conflict, {
        pool: "cpu",
        used: 2,
        publishers: [
          { publisher: "cpu/sh-a", shards: 3 },
          { publisher: "cpu/sh-b", shards: 3 },
          { publisher: "cpu/sh-c", shards: 2 },
        ],
      });
      assert.match(await cli(k, "catalog"), /shard conflicts:\n {2}pool cpu: calls use 2 shard\(s\)/);
      assert.match(await cli(k, "status"), /shard conflicts:\n {2}pool cpu: calls use 2 shard\(s\)/);
      // The caller's view reads the parts now (it also does on the change notice and every second).
      assert.equal(await registry.reloadCatalog(), true);
      const before = await Promise.all(shards.map((s) => entriesAdded(redis, s)));
      const outcomes = await Promise.all(Array.from({ length: 40 }, (_, j) => registry.execute("cpu_hash", { text: `m${j}` }, { userId: "u" })));
      for (const o of outcomes) assert.equal(o.kind, "ok", o.text);
      const after = await Promise.all(shards.map((s) => entriesAdded(redis, s)));
      assert.equal(after[2], before[2], "no call on the shard the third worker does not read");
      assert.equal(after[0]! - before[0]! + (after[1]! - before[1]!), 40);
      assert.ok(after[0]! > before[0]! && after[1]! > before[1]!, `both remaining shards used: ${before.join(",")} -> ${after.join(",")}`);
    } finally {
      await caller?.stop();
      await stopAll(children);
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  },
);

/** Every reply on a reply stream, read without a group. */
async function repliesOn(redis: RedisNode, replyTo: string): Promise<ToolReply[]> {
  const raw = await redis.sendCommand<[string, string[]][]>(["XRANGE", replyTo, "-", "+"]);
  return raw.map(([, flat]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string;
    const decoded = decodeReply(f);
    assert.ok(decoded.ok);
    return decoded.value;
  });
}

test("a worker SIGKILLed mid-call on shard 2: the other worker reclaims it from that shard, the side effect happens once", { timeout: 90_000 }, async () => {
  const k = testKeys();
  const redis = await connect();
  const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_TEST_REDIS_URL: REDIS_URL };
  const args = (id: string) => ["--worker-id", id, "--lease-ms", "1000", "--shards", "3", "--tools", COUNTING_TOOLS];
  const workers = await Promise.all([startToolsProcess(args("shk-a"), env), startToolsProcess(args("shk-b"), env)]);
  const counter = `${k.namespace}:side-effect`;
  const shard2 = k.poolShardStream("default", 2);
  try {
    // An idempotency key that a caller would put on shard 2, published there as a caller does.
    let n = 0;
    while (shardOf(`shk-trace:shk-corr-${n}`, 3) !== 2) n++;
    const traceId = "shk-trace";
    const correlationId = `shk-corr-${n}`;
    const replyTo = k.toolsReplyStream("shk-caller");
    const sessionTag = await writeSession(redis, k, traceId, { userId: "alice", guildId: "", channelId: "", platform: "test" }, 120);
    await ensureGroup(redis, replyTo, k.group(replyTo), "$");
    const fields = encodeRequest({
      type: "tool_exec",
      toolName: "slow_side_effect",
      toolArgs: { ms: 2500, key: counter },
      userId: "alice",
      correlationId,
      traceId,
      idemKey: `${traceId}:${correlationId}`,
      replyTo,
      schemaHash: "",
      deadlineMs: Date.now() + 60_000,
      sessionTag,
      ctx: {
        platform: "test",
        channelId: "",
        userId: "alice",
        userName: "",
        guildId: "",
        messageId: "",
        observabilityRequestId: "",
        disclosedSkillIds: [],
        roomContext: null,
      },
    });
    await redis.sendCommand(xaddArgs(shard2, fields, 1000));

    const startedKey = await eventually(async () => {
      const found: string[] = [];
      for await (const batch of redis.scanIterator({ MATCH: `${counter}:started:*` })) found.push(...batch);
      assert.equal(found.length, 1);
      return found[0] as string;
    }, 10_000);
    const victim = workers.find((w) => w.pid === Number(startedKey.split(":").pop()));
    assert.ok(victim, "the call started in one of our workers");
    victim.kill("SIGKILL");
    assert.equal(await exited(victim), null);

    const [reply] = await eventually(
      async () => {
        const got = await repliesOn(redis, replyTo);
        assert.equal(got.length, 1);
        return got;
      },
      30_000,
      50,
    );
    const survivor = workers.find((w) => w !== victim);
    assert.equal(reply?.status, "ok");
    assert.equal(reply?.result, `done by ${survivor?.pid} (run 1)`);
    await sleep(2500);
    assert.equal((await repliesOn(redis, replyTo)).length, 1);
    assert.equal(await redis.get(counter), "1");
    assert.equal(Number((await redis.sendCommand<unknown[]>(["XPENDING", shard2, k.group(shard2)]))[0]), 0);
    // The reclaim was on shard 2's group, by the survivor.
    const consumers = (await redis.sendCommand<unknown[]>(["XINFO", "CONSUMERS", shard2, k.group(shard2)])).map((c) => String(field(c, "name")));
    assert.ok(consumers.includes(survivor === workers[0] ? "shk-a" : "shk-b"));
  } finally {
    await stopAll(workers);
    await redis.del([counter]);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("a sharded pool whose only worker dies: the calls no worker had started, on every shard, are withdrawn at once", { timeout: 90_000 }, async () => {
  const k = testKeys();
  const redis = await connect();
  const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, FIXTURE_TOOL_SET: "gpu" };
  const children: CliChild[] = [];
  let caller: Caller | undefined;
  try {
    children.push(await startToolsProcess(["--pool", "gpu", "--shards", "3", "--tools", POOL_TOOLS, "--worker-id", "shw-1", "--concurrency", "1"], env));
    const config = defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false, toolsExecTimeout: 30 });
    caller = createCaller({ config: staticConfig(config), logger: new RecordingLogger() });
    await caller.start();
    const registry = caller.registry;
    await eventually(() => assert.ok(registry.toolNames().has("gpu_slow")), 10_000, 50);
    const shards = [0, 1, 2].map((i) => k.poolShardStream("gpu", i));
    // 12 slow calls: the worker (one slot, three shards: at most 1 + 2 at once) takes a few, the rest wait in their shards.
    const inFlight = Array.from({ length: 12 }, () => registry.execute("gpu_slow", { ms: 20_000 }, { userId: "u", timeoutMs: 8000 }));
    await eventually(async () => {
      const added = await Promise.all(shards.map((s) => entriesAdded(redis, s)));
      assert.equal(
        added.reduce((a, b) => a + b, 0),
        12,
      );
      for (const n of added) assert.ok(n > 0, `every shard got calls: ${added.join(", ")}`);
    }, 5000);
    await sleep(500);
    const killedAt = Date.now();
    children[0]!.kill("SIGKILL");
    await exited(children[0]!);
    const ended = await Promise.all(inFlight.map(async (call) => ({ outcome: await call, afterMs: Date.now() - killedAt })));
    const withdrawn = ended.filter((e) => e.outcome.text === noLiveWorker("gpu_slow", "tools worker"));
    // Those it had taken (at most 3) wait for their deadline; every other one is withdrawn within a part's life and a refresh.
    assert.ok(withdrawn.length >= 9, `withdrawn ${withdrawn.length} of 12: ${JSON.stringify(ended.map((e) => e.outcome.text))}`);
    for (const e of withdrawn) assert.ok(e.afterMs < 6000, `withdrawn ${e.afterMs} ms after the kill`);
  } finally {
    await caller?.stop();
    await stopAll(children);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
