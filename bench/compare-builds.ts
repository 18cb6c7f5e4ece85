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
//   BASELINE=/path/to/checkout (required) ROUNDS=6 CALLS=600 SECONDS=2 (per build, per round)
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { latencyOf, median, sequentialTimes, throughput, warmUp } from "./harness.js";

const ROUNDS = Number(process.env.ROUNDS ?? 6);
const CALLS = Number(process.env.CALLS ?? 600);
const SECONDS = Number(process.env.SECONDS ?? 2);
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
  rounds: { p50Ms: number; callsPerSecond: number }[];
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

for (let round = 0; round < ROUNDS; round++) {
  for (const build of round % 2 === 0 ? [current, baseline] : [baseline, current]) {
    const subject = build.bench.echoSubject(await build.bench.startFleet(1), "turn");
    try {
      await warmUp(subject);
      const { p50Ms } = latencyOf(await sequentialTimes(subject, CALLS, 100));
      const { callsPerSecond } = await throughput(subject, 64, SECONDS, 500);
      build.rounds.push({ p50Ms, callsPerSecond });
      log(`round ${round + 1}/${ROUNDS} ${build.key}: p50 ${p50Ms} ms, ${callsPerSecond} calls/s`);
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
  byRound: b.rounds,
});
const result = {
  command: `BASELINE=${baselineRoot} ROUNDS=${ROUNDS} CALLS=${CALLS} SECONDS=${SECONDS} npm run bench:compare`,
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
    `${b === result.current ? "current " : "baseline"} ${b.commit} (${b.root}): p50 ${b.p50Ms} ms, ${b.callsPerSecond} calls/s (medians of ${ROUNDS} rounds)`,
  );
const range = (v: number[]): string => `${Math.min(...v)}–${Math.max(...v)}`;
log(
  `current ÷ baseline (median of per-round ratios): p50 ${result.ratio.p50} (rounds ${range(p50ByRound)}), throughput ${result.ratio.throughput} (rounds ${range(throughputByRound)})`,
);
console.log(JSON.stringify(result, null, 2));
