// npm run bench — every measurement side by side in one run, on this machine,
// against the local Redis, with workers in processes separate from the caller.
// Writes docs/bench-results.json and prints a summary; docs/benchmarks.md
// carries the figures of a run with its command.
//
// The remote subjects are measured in ROUNDS rounds; in each, every subject in
// turn is started alone, warmed up (300 sequential calls, then 0.5 s at 64 in
// flight: a new worker process runs its first thousands of calls through the
// JIT), given its share of the sequential calls and of the throughput time,
// and stopped, in an order reversed every round. A
// shared machine's speed drifts over minutes: each round's ratio to the floor
// compares runs seconds apart, and the median of those ratios is reported.
// (Running every subject at once and interleaving short slices was tried: it
// slowed some systems more than others, toolfleet's throughput by a fifth.)
//
//   ROUNDS=4 SEQ_CALLS=2400 TP_SECONDS=8 (totals over the rounds) BIG_CALLS=100000
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import { z } from "zod";
import { defineTool } from "../src/index.js";
import { buildCatalog } from "../src/tool-exec/catalog.js";
import { publishCatalog } from "../src/tool-exec/catalog-parts.js";
import { cpuMeter, redisPid, type CpuPerCall } from "./cpu.js";
import { startFloor } from "./floor.js";
import { latencyOf, median, percentile, sequentialTimes, throughput, warmUp, type Subject } from "./harness.js";
import { measureInProcess } from "./inprocess-lib.js";
import { cpuAndMemoryInOwnProcess } from "./memory.js";
import { start as startBullmq } from "./peers/bullmq.js";
import { start as startMcp } from "./peers/mcp.js";
import { start as startMoleculer } from "./peers/moleculer.js";
import { echoSubject, startFleet } from "./toolfleet.js";

const ROUNDS = Number(process.env.ROUNDS ?? 4);
const SEQ_CALLS = Number(process.env.SEQ_CALLS ?? 2400);
const TP_SECONDS = Number(process.env.TP_SECONDS ?? 8);
const log = (line: string): void => console.error(`[bench] ${line}`);

/** One round's slice of one subject. */
interface Slice {
  p50Ms: number;
  calls: number;
  seconds: number;
  callsPerSecond: number;
  /** CPU per call at 64 in flight, µs, of the caller (this process), the worker(s) and Redis. */
  cpuUs: CpuPerCall;
}

interface Row {
  name: string;
  /** Every sequential call's time, over all rounds. */
  times: number[];
  slices: Slice[];
}

const starters: [string, () => Promise<Subject>][] = [
  ["floor", () => startFloor()],
  ["floorOrdered", () => startFloor(undefined, "ordered")],
  ["floorClaimed", () => startFloor(undefined, "claimed")],
  ["toolfleet", async () => echoSubject(await startFleet(1), "turn")],
  ["toolfleetClaimed", async () => echoSubject(await startFleet(1), "turn", { tool: "echo_once" })],
  ["toolfleetNewTrace", async () => echoSubject(await startFleet(1), "call")],
  ["bullmq", startBullmq],
  ["moleculer", startMoleculer],
  ["mcp", startMcp],
];

async function remoteSubjects(): Promise<Record<string, Row>> {
  const rows: Record<string, Row> = {};
  const redis = await redisPid();
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? starters : [...starters].reverse();
    for (const [key, start] of order) {
      const subject = await start();
      try {
        // Every system is measured warm: a new worker's first thousands of calls run through the JIT.
        await warmUp(subject);
        const times = await sequentialTimes(subject, Math.ceil(SEQ_CALLS / ROUNDS), 100);
        const cpu = cpuMeter({ caller: [process.pid], worker: subject.workerPids ?? [], redis: [redis] });
        const tp = await throughput(subject, 64, TP_SECONDS / ROUNDS, 500, cpu.start);
        const cpuUs = cpu.perCall(tp.calls);
        const row = (rows[key] ??= { name: subject.name, times: [], slices: [] });
        row.times.push(...times);
        row.slices.push({ p50Ms: latencyOf(times).p50Ms, calls: tp.calls, seconds: tp.seconds, callsPerSecond: tp.callsPerSecond, cpuUs });
        log(
          `round ${round + 1}/${ROUNDS} ${subject.name}: p50 ${row.slices.at(-1)?.p50Ms} ms, ${tp.callsPerSecond} calls/s, ` +
            `CPU per call ${cpuUs.total} µs (caller ${cpuUs.caller}, worker ${cpuUs.worker}, Redis ${cpuUs.redis})`,
        );
      } finally {
        await subject.close();
      }
    }
  }
  return rows;
}

async function workerScaling(): Promise<{ workers: number; callsPerSecond: number }[]> {
  const out: { workers: number; callsPerSecond: number }[] = [];
  for (const workers of [1, 2, 4]) {
    const subject = echoSubject(await startFleet(workers), "turn", { name: `toolfleet, ${workers} workers` });
    try {
      // Half the remote subjects' time each: this only shows the trend (and keeps the run near 3.5 minutes).
      out.push({ workers, callsPerSecond: (await throughput(subject, 64, TP_SECONDS / 2)).callsPerSecond });
      log(`${workers} workers: ${out.at(-1)?.callsPerSecond} calls/s`);
    } finally {
      await subject.close();
    }
  }
  return out;
}

async function fileRoundTrips(): Promise<{ bytes: number; p50Ms: number; maxMs: number }[]> {
  const fleet = await startFleet(1);
  try {
    const out: { bytes: number; p50Ms: number; maxMs: number }[] = [];
    for (const bytes of [1024 * 1024, 10 * 1024 * 1024]) {
      const times: number[] = [];
      for (let i = 0; i < 12; i++) {
        fleet.ctx.sentFiles.length = 0;
        const t0 = performance.now();
        const outcome = await fleet.registry.execute("make_file", { bytes }, { userId: "u1", ctx: fleet.ctx });
        const ms = performance.now() - t0;
        if (fleet.ctx.sentFiles[0]?.data.byteLength !== bytes) throw new Error(`make_file: ${outcome.text}`);
        if (i >= 2) times.push(ms); // the first two warm up
      }
      times.sort((a, b) => a - b);
      out.push({ bytes, p50Ms: Number(median(times).toFixed(2)), maxMs: Number((times.at(-1) ?? NaN).toFixed(2)) });
      log(`${bytes} byte file: p50 ${out.at(-1)?.p50Ms} ms`);
    }
    return out;
  } finally {
    await fleet.close();
  }
}

async function catalogPropagation(): Promise<{ registries: number; changes: number; p50Ms: number; p99Ms: number }> {
  const fleet = await startFleet(1);
  try {
    const registries = [fleet.registry, ...(await Promise.all([1, 2, 3].map((i) => fleet.addRegistry(`bench-inference-${i}`))))];
    const samples: number[] = [];
    const changes = 50;
    for (let i = 0; i < changes; i++) {
      const name = `probe_${i}`;
      const catalog = buildCatalog([defineTool({ name, description: "", parameters: z.object({}), handler: () => "" })], {});
      const t0 = performance.now();
      await publishCatalog(fleet.redis, fleet.keys, catalog, { pool: "probe", workerId: "bench-probe" });
      const seen = new Set<number>();
      while (seen.size < registries.length) {
        registries.forEach((r, j) => {
          if (!seen.has(j) && r.toolNames().has(name)) {
            seen.add(j);
            samples.push(performance.now() - t0);
          }
        });
        if (performance.now() - t0 > 5000) throw new Error("catalog change not seen within 5 s");
        await new Promise((r) => setImmediate(r));
      }
    }
    samples.sort((a, b) => a - b);
    return { registries: registries.length, changes, p50Ms: Number(percentile(samples, 50).toFixed(2)), p99Ms: Number(percentile(samples, 99).toFixed(2)) };
  } finally {
    await fleet.close();
  }
}

const started = Date.now();
log("in-process overhead");
const inProcess = await measureInProcess();
const remote = await remoteSubjects();
const scaling = await workerScaling();
const files = await fileRoundTrips();
const propagation = await catalogPropagation();
const resources = await cpuAndMemoryInOwnProcess();

const floorRow = remote.floor;
const ratio = (a: number, b: number | undefined): number => (b ? Number((a / b).toFixed(2)) : NaN);
function ratiosTo(row: Row, base: Row | undefined) {
  const p50ByRound = row.slices.map((s, i) => ratio(s.p50Ms, base?.slices[i]?.p50Ms));
  const throughputByRound = row.slices.map((s, i) => ratio(s.callsPerSecond, base?.slices[i]?.callsPerSecond));
  return { p50: Number(median(p50ByRound).toFixed(2)), throughput: Number(median(throughputByRound).toFixed(2)), p50ByRound, throughputByRound };
}
const cpuMedians = (perRound: CpuPerCall[]): CpuPerCall => ({
  caller: Number(median(perRound.map((c) => c.caller)).toFixed(1)),
  worker: Number(median(perRound.map((c) => c.worker)).toFixed(1)),
  redis: Number(median(perRound.map((c) => c.redis)).toFixed(1)),
  total: Number(median(perRound.map((c) => c.total)).toFixed(1)),
});
const summary = Object.fromEntries(
  Object.entries(remote).map(([key, row]) => {
    const calls = row.slices.reduce((n, s) => n + s.calls, 0);
    const seconds = row.slices.reduce((n, s) => n + s.seconds, 0);
    return [
      key,
      {
        name: row.name,
        ...latencyOf(row.times),
        callsPerSecond: Math.round(calls / seconds),
        throughputSeconds: Number(seconds.toFixed(1)),
        // The median over the rounds of each role's CPU per call at 64 in flight (Redis counts whatever else uses it).
        cpuUsPerCallUnderLoad: cpuMedians(row.slices.map((s) => s.cpuUs)),
        // Each round against the floor's (Moleculer's) slice of the same round; the median of those.
        ratioToFloor: ratiosTo(row, floorRow),
        ratioToMoleculer: ratiosTo(row, remote.moleculer),
        // The floor of a call run exactly once (a claim before it, its reply stored): what toolfleetClaimed pays for the same guarantee.
        ratioToClaimedFloor: ratiosTo(row, remote.floorClaimed),
      },
    ];
  }),
);
const versions = (name: string): string => {
  try {
    return (JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    // A peer that is not installed is reported as such, not guessed.
    return "not installed";
  }
};
const result = {
  command: "npm run bench",
  date: new Date().toISOString(),
  durationSeconds: Math.round((Date.now() - started) / 1000),
  machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  versions: {
    redis: versions("redis"),
    bullmq: versions("bullmq"),
    moleculer: versions("moleculer"),
    "@modelcontextprotocol/sdk": versions("@modelcontextprotocol/sdk"),
  },
  settings: { rounds: ROUNDS, sequentialCalls: SEQ_CALLS, throughputSeconds: TP_SECONDS, inFlight: 64 },
  inProcess,
  remote: summary,
  toolfleet: { workerScaling: scaling, fileRoundTrips: files, catalogPropagation: propagation, ...resources },
  raw: Object.fromEntries(Object.entries(remote).map(([key, row]) => [key, row.slices])),
};
writeFileSync(new URL("../../docs/bench-results.json", import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify({ ...result, raw: undefined }, null, 2));
