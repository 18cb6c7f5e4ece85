import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createCaller, defineConfig, staticConfig, type Caller } from "../../src/index.js";
import { noLiveWorker, unavailable } from "../../src/core/outcome.js";
import { closeRedis } from "../../src/redis/client.js";
import { loadCatalog } from "../../src/tool-exec/catalog-parts.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { CLI, REDIS_URL, connect, dropNamespace, exited, startToolsProcess, testKeys, type CliChild } from "../support/redis-helpers.js";
import type { RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";

const FIXTURE = fileURLToPath(new URL("../support/fixtures/pool-tools.js", import.meta.url));
const run = promisify(execFile);

/** Tools worker processes and callers on one namespace of the test Redis; close() ends them all and drops the namespace. */
class PoolFleet {
  readonly k = testKeys();
  private readonly workers: CliChild[] = [];
  private readonly callers: Caller[] = [];

  private constructor(readonly redis: RedisNode) {}

  static async open(): Promise<PoolFleet> {
    return new PoolFleet(await connect());
  }

  /** A `toolfleet tools` process of `pool`, running the fixture's tool set `set`. */
  async worker(pool: string, set: string, id: string): Promise<CliChild> {
    const env = { TOOLFLEET_NAMESPACE: this.k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, FIXTURE_TOOL_SET: set };
    const child = await startToolsProcess(["--pool", pool, "--tools", FIXTURE, "--worker-id", id, "--concurrency", "8"], env);
    this.workers.push(child);
    return child;
  }

  async caller(): Promise<Caller> {
    const config = defineConfig({
      redisUrl: REDIS_URL,
      namespace: this.k.namespace,
      toolsServiceMode: "remote",
      toolsLocalFallback: false,
      toolsExecTimeout: 30,
    });
    const c = createCaller({ config: staticConfig(config), logger: new RecordingLogger() });
    this.callers.push(c);
    await c.start();
    return c;
  }

  async close(): Promise<void> {
    await Promise.all(this.callers.map((c) => c.stop()));
    await Promise.all(this.workers.filter((w) => w.exitCode === null && w.signalCode === null).map((w) => kill(w, "SIGTERM")));
    await dropNamespace(this.redis, this.k);
    await closeRedis(this.redis);
  }
}

/** `toolfleet <args>` against the namespace; its stdout. */
async function cli(k: Keys, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL },
    timeout: 15_000,
  });
  return stdout;
}

async function kill(child: CliChild, signal: NodeJS.Signals): Promise<void> {
  child.kill(signal);
  await exited(child);
}

test(
  "two pools with different tools: one catalog, the union; every call runs on its own pool; a dead pool's tools leave and its calls end at once",
  { timeout: 120_000 },
  async () => {
    const f = await PoolFleet.open();
    const { redis, k } = f;
    try {
      const gpu = await f.worker("gpu", "gpu", "gpu-1");
      const cpu = await f.worker("cpu", "cpu", "cpu-1");
      const registry = (await f.caller()).registry;
      // (Every worker also runs the task tools, with the same schema everywhere.)
      const TASKS = ["get_task_result", "list_tasks"];
      await eventually(() => assert.deepEqual([...registry.toolNames()].sort(), ["cpu_hash", ...TASKS, "gpu_render", "gpu_slow"].sort()), 10_000, 50);

      // The catalog is the union, and says who publishes what.
      const merged = await loadCatalog(redis, k);
      assert.deepEqual(merged?.tools.map((t) => t.name).sort(), ["cpu_hash", ...TASKS, "gpu_render", "gpu_slow"].sort());
      assert.deepEqual(
        merged?.publishers.map((p) => `${p.pool}/${p.workerId}:${p.tools}`),
        ["cpu/cpu-1:3", "gpu/gpu-1:4"],
      );
      assert.deepEqual(merged?.conflicts, []);
      const shown = await cli(k, "catalog");
      assert.match(shown, /5 tools from 2 worker\(s\)/);
      assert.match(shown, /cpu\/cpu-1 +3 tools/);
      assert.match(shown, /gpu\/gpu-1 +4 tools/);
      const status = await cli(k, "status");
      assert.match(status, /pools:\n {2}cpu +1 worker\(s\): cpu-1 \(3 tools\)\n {2}gpu +1 worker\(s\): gpu-1 \(4 tools\)/);

      // 100 calls to each pool's tools, 20 at a time: all succeed, each on its own pool.
      const calls = Array.from({ length: 200 }, (_, i) =>
        i % 2 === 0
          ? (["gpu_render", { scene: `s${i}` }, `gpu:${gpu.pid} rendered s${i}`] as const)
          : (["cpu_hash", { text: `t${i}` }, `cpu:${cpu.pid} hashed t${i}`] as const),
      );
      for (let i = 0; i < calls.length; i += 20) {
        const outcomes = await Promise.all(calls.slice(i, i + 20).map(([tool, args]) => registry.execute(tool, args, { userId: "u" })));
        outcomes.forEach((o, j) => assert.deepEqual([o.kind, o.route, o.text], ["ok", "remote", calls[i + j]![2]]));
      }
      // They went through the pools' own streams, not the default one.
      assert.equal(await redis.xLen(k.poolStream("gpu")), 100);
      assert.equal(await redis.xLen(k.poolStream("cpu")), 100);
      assert.equal(await redis.exists(k.toolsStream), 0);

      // Nine slow calls to the GPU pool: its only worker (8 at once) takes eight, the ninth waits in the stream.
      // Then the worker is SIGKILLed.
      const inFlight = Array.from({ length: 9 }, () => registry.execute("gpu_slow", { ms: 20_000 }, { userId: "u", timeoutMs: 8000 }));
      await eventually(async () =>
        assert.equal(Number((await redis.sendCommand<unknown[]>(["XPENDING", k.poolStream("gpu"), k.group(k.poolStream("gpu"))]))[0]), 8),
      );
      const killedAt = Date.now();
      await kill(gpu, "SIGKILL");
      const ended = await Promise.all(inFlight.map(async (call) => ({ outcome: await call, afterMs: Date.now() - killedAt })));
      // The one no worker had started is withdrawn as soon as the pool is seen empty, and answered "no worker".
      const withdrawn = ended.filter((e) => e.outcome.text === noLiveWorker("gpu_slow", "tools worker"));
      assert.equal(withdrawn.length, 1, JSON.stringify(ended.map((e) => e.outcome.text)));
      assert.ok(withdrawn[0]!.afterMs < 6000, `withdrawn ${withdrawn[0]!.afterMs} ms after the kill`);
      // The eight the worker had taken may have run: they wait for their reply, and end by their deadline.
      const taken = ended.filter((e) => e !== withdrawn[0]);
      for (const e of taken) assert.deepEqual([e.outcome.kind, e.outcome.text], ["unavailable", unavailable("gpu_slow")]);
      assert.ok(Math.max(...taken.map((e) => e.afterMs)) < 10_000);
      // Its tools have left the catalog; a call to them ends at once with the "no worker" text.
      await eventually(() => assert.deepEqual([...registry.toolNames()].sort(), ["cpu_hash", ...TASKS].sort()), 8000, 50);
      const started = Date.now();
      const none = await registry.execute("gpu_render", { scene: "x" }, { userId: "u" });
      assert.deepEqual([none.kind, none.text], ["unavailable", noLiveWorker("gpu_render", "tools worker")]);
      assert.ok(Date.now() - started < 5000);
      assert.equal(await redis.xLen(k.poolStream("gpu")), 108, "nothing more was published to the dead pool (and the withdrawn request is gone from it)");
      // The other pool is untouched.
      const still = await registry.execute("cpu_hash", { text: "after" }, { userId: "u" });
      assert.deepEqual([still.kind, still.text], ["ok", `cpu:${cpu.pid} hashed after`]);
    } finally {
      await f.close();
    }
  },
);

test(
  "a rolling deploy: a worker with a changed schema joins the pool, the old one leaves; no call fails, both versions serve",
  { timeout: 120_000 },
  async () => {
    const f = await PoolFleet.open();
    const { k } = f;
    let calling = true;
    try {
      const v1 = await f.worker("cpu", "cpu", "cpu-v1");
      const registry = (await f.caller()).registry;
      await eventually(() => assert.ok(registry.toolNames().has("cpu_hash")), 10_000, 50);

      // Four callers call all the way through, each call built from the catalog as it is at that moment.
      const failures: string[] = [];
      const servedBy = new Map<string, number>();
      let n = 0;
      const loops = [0, 1, 2, 3].map(async () => {
        while (calling) {
          const text = `t${n++}`;
          const out = await registry.execute("cpu_hash", { text }, { userId: "u" });
          if (out.kind !== "ok") failures.push(`${out.kind}: ${out.text}`);
          else {
            const set = out.text.split(":")[0]!;
            servedBy.set(set, (servedBy.get(set) ?? 0) + 1);
          }
        }
      });
      await new Promise((r) => setTimeout(r, 500));

      await f.worker("cpu", "cpu2", "cpu-v2");
      // Both schemas live: one is shown, the conflict is visible to an operator.
      await eventually(() => assert.equal(registry.mergedCatalog?.conflicts.length, 1), 10_000, 50);
      const shown = await cli(k, "catalog");
      assert.match(shown, /cpu_hash .*CONFLICT/);
      assert.match(shown, /schema conflicts:\n {2}cpu_hash: 2 schemas/);
      assert.match(await cli(k, "status"), /schema conflicts:\n {2}cpu_hash: 2 schemas/);
      await new Promise((r) => setTimeout(r, 1000));

      // The old version leaves gracefully; calls go on.
      await kill(v1, "SIGTERM");
      await eventually(() => assert.equal(registry.mergedCatalog?.conflicts.length, 0), 10_000, 50);
      await new Promise((r) => setTimeout(r, 1000));
      calling = false;
      await Promise.all(loops);

      assert.deepEqual(failures, []);
      assert.ok((servedBy.get("cpu") ?? 0) > 0 && (servedBy.get("cpu2") ?? 0) > 0, `served by ${JSON.stringify([...servedBy])}`);
    } finally {
      calling = false;
      await f.close();
    }
  },
);
