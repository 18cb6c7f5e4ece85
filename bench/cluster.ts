// npm run bench:cluster — one Redis node against a Redis Cluster of 3 masters (and 3 replicas) on this
// machine, side by side, rounds alternating: the same fleet (one `toolfleet tools` process, one caller in this
// process) on a redis-server of its own, then on a cluster of its own. Per target: sequential latency, the
// throughput with 32 calls in flight, and Redis's CPU time per call (INFO cpu, summed per node), which
// docs/benchmarks.md turns into a model of calls per second against masters.
import { performance } from "node:perf_hooks";
import { createCaller, defineConfig, silentLogger, staticConfig } from "../src/index.js";
import { keys } from "../src/redis/keys.js";
import { slotOf } from "../src/redis/slots.js";
import { OwnCluster, askNode } from "../test/support/own-cluster.js";
import { OwnRedis, exited, startToolsProcess, type CliChild } from "../test/support/redis-helpers.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SEQUENTIAL = 400;
const IN_FLIGHT = 32;
const THROUGHPUT_MS = 4000;
/** BENCH_SHARDS=K (2-64) adds a third target: the cluster with the worker reading K shard streams (`tools --shards K`). */
const SHARDS = Number(process.env.BENCH_SHARDS ?? 0);
if (SHARDS !== 0 && !(Number.isInteger(SHARDS) && SHARDS >= 2 && SHARDS <= 64))
  throw new Error(`BENCH_SHARDS: expected 2-64, got '${process.env.BENCH_SHARDS}'`);
type Target = "node" | "cluster" | "sharded";
const TARGETS: Target[] = SHARDS ? ["node", "cluster", "sharded"] : ["node", "cluster"];

interface Sample {
  medianMs: number;
  p99Ms: number;
  callsPerSecond: number;
  /** Redis CPU µs per call in the throughput phase, per node, stream master first. */
  cpuUsPerCall: { node: string; us: number }[];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;

async function cpuSeconds(ask: (port: number, args: string[]) => Promise<string>, port: number): Promise<number> {
  const info = await ask(port, ["INFO", "cpu"]);
  const field = (name: string): number => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  return field("used_cpu_sys") + field("used_cpu_user");
}

async function measure(target: Target, round: number): Promise<Sample> {
  const namespace = `bench-cluster-${process.pid}-${round}`;
  const k = keys(namespace);
  let own: OwnRedis | undefined;
  let cluster: OwnCluster | undefined;
  let env: NodeJS.ProcessEnv;
  let nodes: { name: string; port: number }[];
  let ask: (port: number, args: string[]) => Promise<string>;
  let worker: CliChild | undefined;
  let caller: ReturnType<typeof createCaller> | undefined;
  // Everything started is stopped in the finally, whichever start or measurement fails.
  try {
    if (target === "node") {
      own = await OwnRedis.start();
      env = { TOOLFLEET_REDIS_URL: own.url };
      nodes = [{ name: "node", port: own.port }];
      ask = async (port, args) => String(await askNode(port, args));
    } else {
      cluster = await OwnCluster.start();
      env = { TOOLFLEET_REDIS_CLUSTER_NODES: cluster.nodeList, ...(target === "sharded" ? { TOOLFLEET_TOOLS_SHARDS: String(SHARDS) } : {}) };
      const streamMaster = await cluster.masterOf(slotOf(k.toolsStream));
      const topology = await cluster.topology();
      nodes = topology
        .sort((a, b) => (a.port === streamMaster ? -1 : b.port === streamMaster ? 1 : a.role.localeCompare(b.role)))
        .map((n) => ({ name: n.port === streamMaster ? "stream master" : n.role === "master" ? "master" : "replica", port: n.port }));
      ask = (port, args) => cluster!.command(port, args);
    }
    worker = await startToolsProcess(["--worker-id", "bench-1", "--concurrency", "64"], { ...env, TOOLFLEET_NAMESPACE: namespace });
    const config = defineConfig({
      namespace,
      toolsServiceMode: "remote",
      toolsLocalFallback: false,
      ...(cluster ? { redisClusterNodes: cluster.nodeList.split(",") } : { redisUrl: own!.url }),
    });
    caller = createCaller({ config: staticConfig(config), logger: silentLogger });
    const running = caller;
    await caller.start();
    const call = async (): Promise<void> => {
      const out = await running.registry.execute("echo", { text: "x" }, { userId: "u" });
      if (out.kind !== "ok") throw new Error(`${target}: ${out.text}`);
    };
    for (let i = 0; i < 200; i++) await call();
    const times: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const t0 = performance.now();
      await call();
      times.push(performance.now() - t0);
    }
    const before = await Promise.all(nodes.map((n) => cpuSeconds(ask, n.port)));
    let done = 0;
    const until = performance.now() + THROUGHPUT_MS;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (performance.now() < until) {
          await call();
          done++;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const after = await Promise.all(nodes.map((n) => cpuSeconds(ask, n.port)));
    return {
      medianMs: median(times),
      p99Ms: quantile(times, 0.99),
      callsPerSecond: done / seconds,
      cpuUsPerCall: nodes.map((n, i) => ({ node: n.name, us: ((after[i]! - before[i]!) * 1e6) / done })),
    };
  } finally {
    try {
      await caller?.stop();
    } finally {
      worker?.kill("SIGTERM");
      if (worker) await exited(worker);
      await own?.stop();
      await cluster?.stop();
    }
  }
}

const results: Record<Target, Sample[]> = { node: [], cluster: [], sharded: [] };
for (let round = 0; round < ROUNDS; round++)
  for (const target of TARGETS) {
    const sample = await measure(target, round);
    results[target].push(sample);
    console.log(
      `round ${round + 1} ${target.padEnd(7)} median ${sample.medianMs.toFixed(3)} ms  p99 ${sample.p99Ms.toFixed(3)} ms  ${sample.callsPerSecond.toFixed(0)} calls/s  ` +
        `Redis CPU per call: ${sample.cpuUsPerCall.map((c) => `${c.node} ${c.us.toFixed(1)} µs`).join(", ")}`,
    );
  }
const med = (target: Target, pick: (s: Sample) => number): number => median(results[target].map(pick));
const rows: [string, (s: Sample) => number][] = [
  ["sequential median (ms)", (s) => s.medianMs],
  ["sequential p99 (ms)", (s) => s.p99Ms],
  [`calls/s, ${IN_FLIGHT} in flight`, (s) => s.callsPerSecond],
  ["Redis CPU per call, all nodes (µs)", (s) => s.cpuUsPerCall.reduce((n, c) => n + c.us, 0)],
  ["Redis CPU per call, stream's master (µs)", (s) => s.cpuUsPerCall[0]!.us],
  ["Redis CPU per call, busiest master (µs)", (s) => Math.max(...s.cpuUsPerCall.filter((c) => c.node !== "replica").map((c) => c.us))],
];
console.log(`\nmedians of ${ROUNDS} rounds        one node   cluster   cluster/node${SHARDS ? `   ${SHARDS} shards   shards/node` : ""}`);
for (const [label, pick] of rows) {
  const n = med("node", pick);
  const c = med("cluster", pick);
  const sharded = SHARDS ? ` ${med("sharded", pick).toFixed(2).padStart(10)} ${(med("sharded", pick) / n).toFixed(3).padStart(12)}` : "";
  console.log(`${label.padEnd(40)} ${n.toFixed(2).padStart(8)} ${c.toFixed(2).padStart(9)} ${(c / n).toFixed(3).padStart(9)}${sharded}`);
}
