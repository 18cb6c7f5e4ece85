// npm run bench:compare — toolfleet's remote path of this build against another
// checkout's (BASELINE, its dist/ already built), side by side in one run: did
// a change cost anything beyond the machine's noise? Each build runs its own
// code end to end (its own bench/toolfleet.js starts its RemoteToolRegistry in
// this process and its own `toolfleet tools` worker as a child process); the
// measuring side, bench/harness.ts, is this build's for both.
//
// In each of ROUNDS rounds each build in turn, in an order reversed every
// round, is started alone, warmed up as in `npm run bench`, given CALLS
// sequential calls (after 100 more) and SECONDS at 64 in flight (after 0.5 s
// more), and stopped. Each round's ratio compares runs seconds apart; the
// median of those ratios is reported, as `npm run bench` does against the floor.
//
// TRACED=1 installs an OpenTelemetry SDK in this process and the workers of
// both builds (as `npm run bench:observability`'s `traced`: spans recorded,
// exported nowhere), to compare what each build costs with one installed.
//
// TOOL=echo_once measures the claimed path (an echo not annotated idempotent:
// the worker claims each call and stores its reply) instead of `echo`; both
// builds must have that tool. TRACE=call: each call a trace of its own (a
// session record written and read per call) instead of the calls of one turn.
//
//   BASELINE=/path/to/checkout (required) ROUNDS=6 CALLS=600 SECONDS=2 (per build, per round) TOOL=echo TRACED=0
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { installSdk } from "./otel-sdk.js";
import { cpuMeter, redisPid, type CpuPerCall } from "./cpu.js";
import { latencyOf, median, sequentialTimes, throughput, warmUp, type Subject } from "./harness.js";

const ROUNDS = Number(process.env.ROUNDS ?? 6);
const CALLS = Number(process.env.CALLS ?? 600);
const SECONDS = Number(process.env.SECONDS ?? 2);
const TOOL = process.env.TOOL ?? "echo";
const TRACE = process.env.TRACE ?? "turn";
if (TRACE !== "turn" && TRACE !== "call") {
  console.error(`[bench:compare] TRACE must be turn or call, got '${TRACE}'`);
  process.exit(2);
}
if (TOOL !== "echo" && TOOL !== "echo_once") {
  console.error(`[bench:compare] TOOL must be echo or echo_once, got '${TOOL}'`);
  process.exit(2);
}
const TRACED = process.env.TRACED === "1";
const log = (line: string): void => console.error(`[bench:compare] ${line}`);

const entry = (root: string): string => resolve(root, "dist/bench/toolfleet.js");
const baselineRoot = process.env.BASELINE ? resolve(process.env.BASELINE) : "";
if (!baselineRoot || !existsSync(entry(baselineRoot))) {
  log(
    baselineRoot
      ? `${entry(baselineRoot)} does not exist: build the baseline first, bench/ included (cd ${baselineRoot} && npx tsc -p tsconfig.json)`
      : "BASELINE is not set: BASELINE=/path/to/checkout npm run bench:compare, with a checkout of the code before the change, built (see docs/benchmarks.md)",
  );
  process.exit(2);
}

const commitOf = (root: string): string => {
  try {
    return execFileSync("git", ["-C", root, "describe", "--always", "--dirty"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "not a git checkout";
  }
};

interface Build {
  key: "current" | "baseline";
  root: string;
  commit: string;
  bench: typeof import("./toolfleet.js");
  rounds: { p50Ms: number; callsPerSecond: number; cpuUs: CpuPerCall }[];
}
const load = async (key: Build["key"], root: string): Promise<Build> => ({
  key,
  root,
  commit: commitOf(root),
  bench: (await import(pathToFileURL(entry(root)).href)) as Build["bench"],
  rounds: [],
});
const current = await load("current", resolve(fileURLToPath(new URL("../..", import.meta.url))));
const baseline = await load("baseline", baselineRoot);
const redis = await redisPid();
// One provider for the whole run: both builds' spans go through the same @opentelemetry/api.
if (TRACED) installSdk();

for (let round = 0; round < ROUNDS; round++) {
  for (const build of round % 2 === 0 ? [current, baseline] : [baseline, current]) {
    // A build from before echoSubject took a tool takes a third argument as the subject's name, and calls `echo`.
    const fleet = await build.bench.startFleet(1, undefined, { tracing: TRACED });
    const subject: Subject = TOOL === "echo" ? build.bench.echoSubject(fleet, TRACE) : build.bench.echoSubject(fleet, TRACE, { tool: TOOL });
    try {
      if (typeof subject.name !== "string" || !subject.name.includes(TOOL)) throw new Error(`${build.root} cannot call ${TOOL}: its bench is older`);
      await warmUp(subject);
      const { p50Ms } = latencyOf(await sequentialTimes(subject, CALLS, 100));
      const cpu = cpuMeter({ caller: [process.pid], worker: subject.workerPids ?? [], redis: [redis] });
      const load = await throughput(subject, 64, SECONDS, 500, cpu.start);
      const cpuUs = cpu.perCall(load.calls);
      build.rounds.push({ p50Ms, callsPerSecond: load.callsPerSecond, cpuUs });
      log(`round ${round + 1}/${ROUNDS} ${build.key}: p50 ${p50Ms} ms, ${load.callsPerSecond} calls/s, CPU per call ${cpuUs.total} µs`);
    } finally {
      await subject.close();
    }
  }
}

const fixed = (n: number, digits = 3): number => Number(n.toFixed(digits));
// This build ÷ the baseline, each round against the baseline's run of the same round.
const byRound = (pick: (r: Build["rounds"][number]) => number): number[] =>
  current.rounds.map((r, i) => fixed(pick(r) / (baseline.rounds[i] ? pick(baseline.rounds[i]) : NaN)));
const p50ByRound = byRound((r) => r.p50Ms);
const throughputByRound = byRound((r) => r.callsPerSecond);
const summary = (b: Build) => ({
  root: b.root,
  commit: b.commit,
  p50Ms: fixed(median(b.rounds.map((r) => r.p50Ms))),
  callsPerSecond: Math.round(median(b.rounds.map((r) => r.callsPerSecond))),
  // At 64 in flight: caller, worker, Redis (which counts whatever else uses it).
  cpuUsPerCall: {
    caller: fixed(median(b.rounds.map((r) => r.cpuUs.caller)), 1),
    worker: fixed(median(b.rounds.map((r) => r.cpuUs.worker)), 1),
    redis: fixed(median(b.rounds.map((r) => r.cpuUs.redis)), 1),
    total: fixed(median(b.rounds.map((r) => r.cpuUs.total)), 1),
  },
  byRound: b.rounds,
});
const result = {
  command: `BASELINE=${baselineRoot} ROUNDS=${ROUNDS} CALLS=${CALLS} SECONDS=${SECONDS} TOOL=${TOOL} TRACE=${TRACE}${TRACED ? " TRACED=1" : ""} npm run bench:compare`,
  date: new Date().toISOString(),
  machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
  settings: { rounds: ROUNDS, sequentialCallsPerRound: CALLS, throughputSecondsPerRound: SECONDS, inFlight: 64 },
  current: summary(current),
  baseline: summary(baseline),
  // Below 1 for p50 and above 1 for throughput: this build is the faster.
  ratio: { p50: fixed(median(p50ByRound)), throughput: fixed(median(throughputByRound)), p50ByRound, throughputByRound },
};
for (const b of [result.current, result.baseline])
  log(
    `${b === result.current ? "current " : "baseline"} ${b.commit} (${b.root}): p50 ${b.p50Ms} ms, ${b.callsPerSecond} calls/s, CPU per call ${b.cpuUsPerCall.total} µs (medians of ${ROUNDS} rounds)`,
  );
const range = (v: number[]): string => `${Math.min(...v)}–${Math.max(...v)}`;
log(
  `current ÷ baseline (median of per-round ratios): p50 ${result.ratio.p50} (rounds ${range(p50ByRound)}), throughput ${result.ratio.throughput} (rounds ${range(throughputByRound)})`,
);
console.log(JSON.stringify(result, null, 2));
