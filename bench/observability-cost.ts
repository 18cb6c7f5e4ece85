// npm run bench:observability — what observability costs on the remote path, side by side in one run
// (docs/observability.md). Three variants of the same build's fleet:
//   off      no metrics; no OpenTelemetry SDK (toolfleet's spans are the API's no-ops)
//   metrics  the tools worker with --metrics-port, the caller with a FleetMetrics; still no SDK
//   traced   as `metrics`, and an OpenTelemetry SDK installed in the caller and the worker
//            (OTEL_TRACES_EXPORTER=none: every span made and recorded, exported nowhere)
//   sampled  as `traced`, with the SDK sampling one trace in a hundred (parentbased_traceidratio 0.01)
//
// In each of ROUNDS rounds each variant in turn, in an order rotated every round, is started
// alone, warmed up, given CALLS sequential calls and SECONDS at 64 in flight, and stopped; the
// ratios against `off` are medians of per-round ratios. CPU per call (caller, worker, Redis, read
// from /proc at 64 in flight as `npm run bench:compare` does) is steadier on a busy machine than
// throughput: its ratio says what each variant costs even when the machine's load moves the rates.
//
//   ROUNDS=6 CALLS=600 SECONDS=2 (per variant, per round)
import { cpus } from "node:os";
import { installSdk } from "./otel-sdk.js";
import { cpuMeter, redisPid, type CpuPerCall } from "./cpu.js";
import { latencyOf, median, sequentialTimes, throughput, warmUp } from "./harness.js";
import { echoSubject, startFleet } from "./toolfleet.js";

const ROUNDS = Number(process.env.ROUNDS ?? 6);
const CALLS = Number(process.env.CALLS ?? 600);
const SECONDS = Number(process.env.SECONDS ?? 2);
const log = (line: string): void => console.error(`[bench:observability] ${line}`);

type Key = "off" | "metrics" | "traced" | "sampled";
const keys: Key[] = ["off", "metrics", "traced", "sampled"];
const SAMPLE_ONE_IN_A_HUNDRED = { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.01" };
interface Round {
  p50Ms: number;
  callsPerSecond: number;
  cpuUs: CpuPerCall;
}
const rounds = new Map<Key, Round[]>(keys.map((k) => [k, []]));
const redis = await redisPid();

for (let round = 0; round < ROUNDS; round++) {
  for (const key of [...keys.slice(round % keys.length), ...keys.slice(0, round % keys.length)]) {
    // The SDK's standard sampler variables, read by the caller's provider and the workers' (src/cli/telemetry.ts).
    if (key === "sampled") Object.assign(process.env, SAMPLE_ONE_IN_A_HUNDRED);
    else for (const name of Object.keys(SAMPLE_ONE_IN_A_HUNDRED)) delete process.env[name];
    const tracing = key === "traced" || key === "sampled";
    const uninstall = tracing ? installSdk() : undefined;
    const subject = echoSubject(await startFleet(1, undefined, { metrics: key !== "off", tracing }), "turn");
    try {
      await warmUp(subject);
      const { p50Ms } = latencyOf(await sequentialTimes(subject, CALLS, 100));
      const cpu = cpuMeter({ caller: [process.pid], worker: subject.workerPids ?? [], redis: [redis] });
      const load = await throughput(subject, 64, SECONDS, 500, cpu.start);
      const cpuUs = cpu.perCall(load.calls);
      rounds.get(key)!.push({ p50Ms, callsPerSecond: load.callsPerSecond, cpuUs });
      log(`round ${round + 1}/${ROUNDS} ${key}: p50 ${p50Ms} ms, ${load.callsPerSecond} calls/s, CPU per call ${cpuUs.total} µs`);
    } finally {
      await subject.close();
      await uninstall?.();
    }
  }
}

const fixed = (n: number, digits = 3): number => Number(n.toFixed(digits));
const off = rounds.get("off")!;
const ratios = (key: Key) => {
  const byRound = (pick: (r: Round) => number): number[] => rounds.get(key)!.map((r, i) => fixed(pick(r) / (off[i] ? pick(off[i]) : NaN)));
  const p50ByRound = byRound((r) => r.p50Ms);
  const throughputByRound = byRound((r) => r.callsPerSecond);
  const cpuByRound = byRound((r) => r.cpuUs.total);
  return {
    p50: fixed(median(p50ByRound)),
    throughput: fixed(median(throughputByRound)),
    cpuPerCall: fixed(median(cpuByRound)),
    p50ByRound,
    throughputByRound,
    cpuByRound,
  };
};
const summary = (key: Key) => ({
  p50Ms: fixed(median(rounds.get(key)!.map((r) => r.p50Ms))),
  callsPerSecond: Math.round(median(rounds.get(key)!.map((r) => r.callsPerSecond))),
  // At 64 in flight: caller, worker, Redis (which counts whatever else uses it).
  cpuUsPerCall: Object.fromEntries(
    (["caller", "worker", "redis", "total"] as const).map((role) => [role, fixed(median(rounds.get(key)!.map((r) => r.cpuUs[role])), 1)]),
  ),
  byRound: rounds.get(key),
});
const result = {
  command: `ROUNDS=${ROUNDS} CALLS=${CALLS} SECONDS=${SECONDS} npm run bench:observability`,
  date: new Date().toISOString(),
  machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
  settings: { rounds: ROUNDS, sequentialCallsPerRound: CALLS, throughputSecondsPerRound: SECONDS, inFlight: 64 },
  off: summary("off"),
  metrics: summary("metrics"),
  traced: summary("traced"),
  sampled: summary("sampled"),
  // ÷ off: above 1 for p50 and CPU per call, below 1 for throughput, is what it costs.
  ratio: { metrics: ratios("metrics"), traced: ratios("traced"), sampled: ratios("sampled") },
};
const range = (v: number[]): string => `${Math.min(...v)}–${Math.max(...v)}`;
for (const key of ["metrics", "traced", "sampled"] as const) {
  const r = result.ratio[key];
  log(
    `${key} ÷ off (median of per-round ratios): p50 ${r.p50} (rounds ${range(r.p50ByRound)}), throughput ${r.throughput} (rounds ${range(r.throughputByRound)}), CPU per call ${r.cpuPerCall} (rounds ${range(r.cpuByRound)})`,
  );
}
console.log(JSON.stringify(result, null, 2));
