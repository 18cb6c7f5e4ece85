// The fleet on a Redis Cluster of this file's own (3 masters, 3 replicas on free ports, started once and
// shared by its tests, each in its own namespace): the core paths of the other end-to-end tests, there.
// Skipped, saying why, where redis-server is not installed.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createCaller, defineConfig, staticConfig, type Caller } from "../../src/index.js";
import { noLiveWorker } from "../../src/core/outcome.js";
import { closeRedis, connectFleetRedis, type RedisClient } from "../../src/redis/client.js";
import { keys as keysOf, type Keys } from "../../src/redis/keys.js";
import { slotOf } from "../../src/redis/slots.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { CLI, REDIS_URL, connect, exited, startToolsProcess, testKeys, type CliChild } from "../support/redis-helpers.js";
import { OwnCluster, clusterUnavailable } from "../support/own-cluster.js";

const run = promisify(execFile);
const COUNTING = fileURLToPath(new URL("../support/fixtures/counting-tools.js", import.meta.url));
const POOLS = fileURLToPath(new URL("../support/fixtures/pool-tools.js", import.meta.url));
const skip = clusterUnavailable();

describe("on a Redis Cluster of its own (3 masters, 3 replicas)", { skip: skip ?? false }, () => {
  let cluster: OwnCluster;
  let nodes: string[];
  before(async () => {
    cluster = await OwnCluster.start();
    nodes = cluster.nodeList.split(",");
  });
  after(async () => {
    await cluster?.stop();
  });

  const envFor = (k: Keys): NodeJS.ProcessEnv => ({
    TOOLFLEET_NAMESPACE: k.namespace,
    TOOLFLEET_REDIS_CLUSTER_NODES: cluster.nodeList,
    // The counting fixture's side effects go to the shared Redis, under this test's namespace.
    TOOLFLEET_TEST_REDIS_URL: REDIS_URL,
  });

  async function caller(k: Keys): Promise<Caller> {
    const config = defineConfig({
      redisClusterNodes: nodes,
      namespace: k.namespace,
      toolsServiceMode: "remote",
      toolsLocalFallback: false,
      toolsExecTimeout: 30,
    });
    const c = createCaller({ config: staticConfig(config), logger: new RecordingLogger() });
    await c.start();
    return c;
  }

  /** How many of the namespace's keys each master holds. */
  async function keysPerMaster(k: Keys): Promise<number[]> {
    const masters = (await cluster.topology()).filter((n) => n.role === "master" && !n.failed);
    return Promise.all(
      masters.map(async (m) => {
        const found = await cluster.ask<string[]>(m.port, ["KEYS", `*${k.namespace}:*`]);
        return found.length;
      }),
    );
  }

  test("the slot of every key is Redis's own, and keys written together share one", async () => {
    const k = keysOf("sg");
    const sample = [k.toolsStream, k.poolStream("gpu"), k.deadLetter(k.toolsStream), k.catalogParts, k.catalogPart("gpu", "w-1"), k.task("t1"), k.taskIndex];
    sample.push(k.idempotency("trace:corr"), k.toolSession("trace", "0123456789abcdef"), keysOf("{tagged}").deadLetter("{tagged}:stream:tools"));
    for (const key of sample) assert.equal(slotOf(key), Number(await cluster.command(cluster.ports[0]!, ["CLUSTER", "KEYSLOT", key])), key);
    // Each MULTI and script touches one slot …
    assert.equal(slotOf(k.catalogPart("gpu", "w-1")), slotOf(k.catalogParts), "the catalog presence script");
    assert.equal(slotOf(k.task("t1")), slotOf(k.taskIndex), "a task and its index");
    for (const stream of [k.toolsStream, k.poolStream("gpu"), k.chatStream, k.gatewayStream()])
      assert.equal(slotOf(k.deadLetter(stream)), slotOf(stream), `${stream}'s dead letters`);
    // … while the streams, the requests' keys and the reply streams spread over the slots.
    const spread = new Set(
      [k.toolsStream, k.poolStream("gpu"), k.poolStream("cpu"), k.chatStream, k.toolsReplyStream("a"), k.toolsReplyStream("b")].map(slotOf),
    );
    assert.equal(spread.size, 6);
  });

  test("toolfleet up walks through every tier: a remote call, a file written back, the gateway's RPC, a chat", { timeout: 90_000 }, async () => {
    const k = testKeys();
    const { stdout } = await run(process.execPath, [CLI, "up", "--port", "0", "--tools-workers", "1", "--exit-after-walkthrough"], {
      env: { ...process.env, ...envFor(k), TOOLFLEET_LOG_LEVEL: "warn", TOOLFLEET_LLM_API_KEY: "" },
      timeout: 80_000,
    });
    assert.match(stdout, /a distributed fleet on the Redis Cluster at 127\.0\.0\.1:\d+/);
    assert.match(stdout, /• tools service +echo +route=remote .* hello, fleet/);
    assert.match(stdout, /• a file comes back +send_image +route=remote .* Sent gradient\.png/);
    assert.match(stdout, /the file on the caller's context: gradient\.png \(image\/png, \d+ bytes\)/);
    assert.match(stdout, /• gateway-pinned +discord_react +route=gateway .* Reacted with 👍 on web\./);
    assert.match(stdout, /bot> echo → through every tier/);
    assert.match(stdout, /\[file\] gradient\.png image\/png \d+ bytes/);
    assert.match(stdout, /\[reaction on your message\] 🚀/);
    assert.match(stdout, /\[up\] fleet stopped/);
    // The fleet's keys are spread over the masters, not piled on one.
    const perMaster = await keysPerMaster(k);
    assert.ok(perMaster.filter((n) => n > 0).length >= 2, `keys per master: ${perMaster.join(", ")}`);
  });

  test(
    "a worker SIGKILLed mid-call: another reclaims it, the side effect happens once; a pool that comes and goes changes the catalog",
    { timeout: 90_000 },
    async (t) => {
      const k = testKeys();
      const counter = `${k.namespace}:side-effect`;
      const shared = await connect();
      const procs: CliChild[] = [];
      let c: Caller | undefined;
      try {
        const args = (id: string) => ["--worker-id", id, "--lease-ms", "1000", "--tools", COUNTING];
        // One after the other, each kept as soon as it runs: a failed second start leaves the first to the finally.
        for (const id of ["crash-a", "crash-b"]) procs.push(await startToolsProcess(args(id), envFor(k)));
        c = await caller(k);
        const registry = c.registry;
        await eventually(() => assert.ok(registry.toolNames().has("slow_side_effect")), 10_000, 50);

        const call = registry.execute("slow_side_effect", { ms: 2500, key: counter }, { userId: "u" });
        const startedKey = await eventually(async () => {
          const found: string[] = [];
          for await (const batch of shared.scanIterator({ MATCH: `${counter}:started:*` })) found.push(...batch);
          assert.equal(found.length, 1);
          return found[0]!;
        }, 10_000);
        const victim = procs.find((p) => p.pid === Number(startedKey.split(":").pop()));
        assert.ok(victim, "the call started in one of the workers");
        const killedAt = Date.now();
        victim.kill("SIGKILL");
        await exited(victim);
        const outcome = await call;
        t.diagnostic(`completed by the survivor ${Date.now() - killedAt} ms after the kill`);
        const survivor = procs.find((p) => p !== victim)!;
        assert.deepEqual([outcome.kind, outcome.route, outcome.text], ["ok", "remote", `done by ${survivor.pid} (run 1)`]);
        assert.equal(await shared.get(counter), "1", "the side effect ran once to its end");

        // A pool that joins: its tools enter the catalog and run there; once it leaves, they leave too.
        const gpu = await startToolsProcess(["--pool", "gpu", "--tools", POOLS, "--worker-id", "gpu-1"], { ...envFor(k), FIXTURE_TOOL_SET: "gpu" });
        procs.push(gpu);
        await eventually(() => assert.ok(registry.toolNames().has("gpu_render")), 10_000, 50);
        const rendered = await registry.execute("gpu_render", { scene: "s1" }, { userId: "u" });
        assert.deepEqual([rendered.kind, rendered.text], ["ok", `gpu:${gpu.pid} rendered s1`]);
        gpu.kill("SIGTERM");
        assert.equal(await exited(gpu), 0, gpu.output());
        await eventually(() => assert.ok(!registry.toolNames().has("gpu_render")), 8000, 50);
        const none = await registry.execute("gpu_render", { scene: "s2" }, { userId: "u" });
        assert.deepEqual([none.kind, none.text], ["unavailable", noLiveWorker("gpu_render", "tools worker")]);
      } finally {
        // The workers are killed even when the caller's stop fails (its error still fails the test).
        try {
          await c?.stop();
        } finally {
          for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
          await Promise.all(procs.map(exited));
          await shared.del([counter, ...(await shared.keys(`${counter}:*`))]);
          await closeRedis(shared);
        }
      }
    },
  );

  test("a pool of 4 shard streams on at least two masters: two workers read every shard, calls land on all and succeed", { timeout: 60_000 }, async () => {
    // A namespace whose 4 shard streams are on at least two masters (most are; the test does not leave it to chance).
    let k = testKeys();
    const mastersOf = async (keys: Keys) => Promise.all([0, 1, 2, 3].map((i) => cluster.masterOf(slotOf(keys.poolShardStream("cpu", i)))));
    for (let i = 0; i < 20 && new Set(await mastersOf(k)).size < 2; i++) k = testKeys();
    const masters = await mastersOf(k);
    assert.ok(new Set(masters).size >= 2, `shard masters: ${masters.join(", ")}`);
    const procs: CliChild[] = [];
    let c: Caller | undefined;
    try {
      const env = { ...envFor(k), FIXTURE_TOOL_SET: "cpu" };
      for (const id of ["shard-a", "shard-b"])
        procs.push(await startToolsProcess(["--pool", "cpu", "--shards", "4", "--tools", POOLS, "--worker-id", id], env));
      c = await caller(k);
      const registry = c.registry;
      await eventually(() => assert.ok(registry.toolNames().has("cpu_hash")), 10_000, 50);
      const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => registry.execute("cpu_hash", { text: `t${i}` }, { userId: "u" })));
      const pids = new Set(procs.map((p) => p.pid));
      outcomes.forEach((o, i) => {
        const m = /^cpu:(\d+) hashed t(\d+)$/.exec(o.text);
        assert.ok(o.kind === "ok" && m && pids.has(Number(m[1])) && Number(m[2]) === i, o.text);
      });
      // Every shard took calls, each on its own master's node (entries-added is not lowered by trimming).
      for (const [i, port] of masters.entries()) {
        const info = await cluster.ask<unknown>(port, ["XINFO", "STREAM", k.poolShardStream("cpu", i)]);
        // A flat list (RESP2), or a map (RESP3).
        const flat = Array.isArray(info) ? info.map(String) : [];
        const added = Number(
          Array.isArray(info)
            ? flat[flat.indexOf("entries-added") + 1]
            : info instanceof Map
              ? info.get("entries-added")
              : (info as Record<string, unknown>)["entries-added"],
        );
        assert.ok(added > 0, `shard ${i} on :${port}: ${added} entries`);
      }
    } finally {
      try {
        await c?.stop();
      } finally {
        for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
        await Promise.all(procs.map(exited));
      }
    }
  });

  test("`toolfleet status` and the fleet's connection read every master", { timeout: 30_000 }, async () => {
    const k = testKeys();
    const redis: RedisClient = await connectFleetRedis({ url: REDIS_URL, clusterNodes: nodes, logger: new RecordingLogger(), waitForRedis: false });
    let worker: CliChild | undefined;
    try {
      worker = await startToolsProcess(["--worker-id", "status-1"], envFor(k));
      const { stdout } = await run(process.execPath, [CLI, "status", "--json"], { env: { ...process.env, ...envFor(k) }, timeout: 15_000 });
      const status = JSON.parse(stdout) as { workers: { workerId: string }[] };
      assert.deepEqual(
        status.workers.map((w) => w.workerId),
        ["status-1"],
      );
      // MGET over keys of several slots is split by slot and put back in order.
      await redis.set(`${k.namespace}:a`, "1");
      await redis.set(`${k.namespace}:b`, "2");
      assert.notEqual(slotOf(`${k.namespace}:a`), slotOf(`${k.namespace}:b`));
      assert.deepEqual(await redis.mGet([`${k.namespace}:b`, `${k.namespace}:none`, `${k.namespace}:a`]), ["2", null, "1"]);
      // A MULTI over several slots is refused by toolfleet itself, with the reason.
      await assert.rejects(
        redis
          .multi()
          .addCommand(["SET", `${k.namespace}:a`, "x"])
          .addCommand(["SET", `${k.namespace}:b`, "y"])
          .exec(),
        /several cluster slots/,
      );
    } finally {
      if (worker) {
        worker.kill("SIGTERM");
        await exited(worker);
      }
      await closeRedis(redis);
    }
  });
});
