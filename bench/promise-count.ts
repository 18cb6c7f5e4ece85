// How many promises one remote call creates, in the caller and in the tools
// worker: what the OpenTelemetry SDK's context manager pays an async hook for
// on Node 20 (docs/observability.md, "What it costs"). Starts the fleet of
// `npm run bench` (bench/toolfleet.ts) with bench/promise-count-hook.ts in
// both processes, warms up, then counts over CALLS sequential calls and over
// CALLS more at 64 in flight. Prints promises per call per process and, for a
// sample of them, where they were made (by the nearest toolfleet frame).
//
//   CALLS=2000 TOOL=echo|echo_once TRACED=1 (an SDK installed, as bench:observability's `traced`) TOP=25
//   npm run bench:promises
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { installSdk } from "./otel-sdk.js";
import { promiseTally, type PromiseTally } from "./promise-count-hook.js";
import { warmUp } from "./harness.js";
import { echoSubject, startFleet, type EchoTool } from "./toolfleet.js";

const CALLS = Number(process.env.CALLS ?? 2000);
const TOOL = (process.env.TOOL ?? "echo") as EchoTool;
const TRACED = process.env.TRACED === "1";
const TOP = Number(process.env.TOP ?? 25);
const out = mkdtempSync(join(tmpdir(), "promise-count-"));
process.env.PROMISE_COUNT_OUT = out;
// Read by the worker's copy of the hook (this process's was loaded before these lines ran).
process.env.PROMISE_COUNT_ROLE = "worker";
process.env.BENCH_WORKER_NODE_ARGS = `--import ${fileURLToPath(new URL("./promise-count-hook.js", import.meta.url))}`;

const uninstall = TRACED ? installSdk() : undefined;
const fleet = await startFleet(1, undefined, { tracing: TRACED });
const subject = echoSubject(fleet, "turn", { tool: TOOL });
const worker = fleet.workers[0]!;
let asked = 0;
const workerTally = async (): Promise<PromiseTally> => {
  const file = join(out, `${worker.pid}-${asked++}.json`);
  worker.kill("SIGUSR2");
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 10));
  return JSON.parse(readFileSync(file, "utf8")) as PromiseTally;
};

const diff = (a: PromiseTally, b: PromiseTally): PromiseTally => {
  const sub = (x: Record<string, number>, y: Record<string, number>): Record<string, number> =>
    Object.fromEntries(
      Object.entries(y)
        .map(([k, v]): [string, number] => [k, v - (x[k] ?? 0)])
        .filter(([, v]) => v > 0),
    );
  return {
    promises: b.promises - a.promises,
    sampled: b.sampled - a.sampled,
    byToolfleetFrame: sub(a.byToolfleetFrame, b.byToolfleetFrame),
    byMaker: sub(a.byMaker, b.byMaker),
  };
};
const report = (what: string, t: PromiseTally, calls: number) => {
  const perCall = (n: number): number => Number(((n / t.sampled) * (t.promises / calls)).toFixed(2));
  const top = (m: Record<string, number>) =>
    Object.entries(m)
      .sort((x, y) => y[1] - x[1])
      .slice(0, TOP)
      .map(([k, v]) => `${perCall(v).toFixed(2).padStart(6)}  ${k}`);
  console.log(`\n== ${what}: ${(t.promises / calls).toFixed(1)} promises per call`);
  console.log(`-- per call, by nearest toolfleet frame (sampled 1 in 16):\n${top(t.byToolfleetFrame).join("\n")}`);
  console.log(`-- per call, by maker <= nearest toolfleet frame:\n${top(t.byMaker).join("\n")}`);
};

try {
  await warmUp(subject);
  for (const [label, inFlight] of [
    ["sequential", 1],
    ["64 in flight", 64],
  ] as const) {
    const callerBefore = promiseTally();
    const workerBefore = await workerTally();
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next++ < CALLS) await subject.call();
      }),
    );
    const callerAfter = promiseTally();
    const workerAfter = await workerTally();
    console.log(`\n######## ${label}, ${CALLS} calls of ${TOOL}${TRACED ? ", SDK installed" : ""}`);
    report("caller (bench harness included: 1 async call() per call)", diff(callerBefore, callerAfter), CALLS);
    report("worker", diff(workerBefore, workerAfter), CALLS);
  }
} finally {
  await subject.close();
  await uninstall?.();
  rmSync(out, { recursive: true, force: true });
}
