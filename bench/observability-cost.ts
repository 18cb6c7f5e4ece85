// npm run bench:observability — what metrics cost on the remote path: the same
// build's fleet with metrics off and on (the tools worker with --metrics-port,
// the caller with a FleetMetrics), side by side in one run (docs/observability.md).
//
// In each of ROUNDS rounds each variant in turn, in an order reversed every
// round, is started alone, warmed up, given CALLS sequential calls and SECONDS
// at 64 in flight, and stopped; the ratios are medians of per-round ratios.
//
//   ROUNDS=6 CALLS=600 SECONDS=2 (per variant, per round)
import { cpus } from "node:os";
import { latencyOf, median, sequentialTimes, throughput, warmUp } from "./harness.js";
import { echoSubject, startFleet } from "./toolfleet.js";

const ROUNDS = Number(process.env.ROUNDS ?? 6);
const CALLS = Number(process.env.CALLS ?? 600);
const SECONDS = Number(process.env.SECONDS ?? 2);
const log = (line: string): void => console.error(`[bench:observability] ${line}`);

interface Variant {
  key: "off" | "on";
  rounds: { p50Ms: number; callsPerSecond: number }[];
}
const off: Variant = { key: "off", rounds: [] };
const on: Variant = { key: "on", rounds: [] };

for (let round = 0; round < ROUNDS; round++) {
  for (const variant of round % 2 === 0 ? [off, on] : [on, off]) {
    const subject = echoSubject(await startFleet(1, undefined, { observe: variant.key === "on" }), "turn");
    try {
      await warmUp(subject);
      const { p50Ms } = latencyOf(await sequentialTimes(subject, CALLS, 100));
      const { callsPerSecond } = await throughput(subject, 64, SECONDS, 500);
      variant.rounds.push({ p50Ms, callsPerSecond });
      log(`round ${round + 1}/${ROUNDS} metrics ${variant.key}: p50 ${p50Ms} ms, ${callsPerSecond} calls/s`);
    } finally {
      await subject.close();
    }
  }
}

const fixed = (n: number, digits = 3): number => Number(n.toFixed(digits));
const byRound = (pick: (r: Variant["rounds"][number]) => number): number[] =>
  on.rounds.map((r, i) => fixed(pick(r) / (off.rounds[i] ? pick(off.rounds[i]) : NaN)));
const p50ByRound = byRound((r) => r.p50Ms);
const throughputByRound = byRound((r) => r.callsPerSecond);
const summary = (v: Variant) => ({
  p50Ms: fixed(median(v.rounds.map((r) => r.p50Ms))),
  callsPerSecond: Math.round(median(v.rounds.map((r) => r.callsPerSecond))),
  byRound: v.rounds,
});
const result = {
  command: `ROUNDS=${ROUNDS} CALLS=${CALLS} SECONDS=${SECONDS} npm run bench:observability`,
  date: new Date().toISOString(),
  machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
  settings: { rounds: ROUNDS, sequentialCallsPerRound: CALLS, throughputSecondsPerRound: SECONDS, inFlight: 64 },
  metricsOff: summary(off),
  metricsOn: summary(on),
  // on ÷ off: above 1 for p50, below 1 for throughput, is what metrics cost.
  ratio: { p50: fixed(median(p50ByRound)), throughput: fixed(median(throughputByRound)), p50ByRound, throughputByRound },
};
const range = (v: number[]): string => `${Math.min(...v)}–${Math.max(...v)}`;
log(
  `metrics on ÷ off (median of per-round ratios): p50 ${result.ratio.p50} (rounds ${range(p50ByRound)}), throughput ${result.ratio.throughput} (rounds ${range(throughputByRound)})`,
);
console.log(JSON.stringify(result, null, 2));
