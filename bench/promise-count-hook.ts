// Loaded with --import into the tools worker by `bench/promise-count.ts` (and
// imported by it for the caller): counts the promises the process creates
// (async_hooks' PROMISE inits, as the OpenTelemetry SDK's context manager
// sees them on Node 20) and, for one promise in SAMPLE_EVERY, where it was
// made, by its nearest toolfleet frame. On SIGUSR2 (bench/gc-worker.ts's
// signal, harmless here) a worker writes its tally to PROMISE_COUNT_OUT.
import { createHook } from "node:async_hooks";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const SAMPLE_EVERY = 16;

export interface PromiseTally {
  promises: number;
  sampled: number;
  /** Sampled promises by the nearest frame in toolfleet's own code (dist/src), or "(none)". */
  byToolfleetFrame: Record<string, number>;
  /** Sampled promises by the frame that made them (first non-internal frame) and the nearest toolfleet frame. */
  byMaker: Record<string, number>;
}

const tally: PromiseTally = { promises: 0, sampled: 0, byToolfleetFrame: {}, byMaker: {} };
const frameName = (line: string): string =>
  line
    .trim()
    .replace(/^at /, "")
    .replace(/file:\/\/\S*\/(dist\/)?/, "")
    .replace(/\/tmp\/\S*?\/(node_modules|dist)\//, "$1/");

function sample(): void {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  Error.captureStackTrace(holder, sample);
  Error.stackTraceLimit = limit;
  const frames = (holder.stack ?? "").split("\n").slice(2); // "Error", then the hook's init
  const own = frames.find((f) => f.includes("/dist/src/"));
  const maker = frames.find((f) => !f.includes("node:internal") && !f.includes("promise-count-hook"));
  const ownName = own ? frameName(own) : "(none)";
  tally.sampled++;
  tally.byToolfleetFrame[ownName] = (tally.byToolfleetFrame[ownName] ?? 0) + 1;
  const makerKey = `${maker ? frameName(maker) : "(none)"}  <=  ${ownName}`;
  tally.byMaker[makerKey] = (tally.byMaker[makerKey] ?? 0) + 1;
}

createHook({
  init(_id, type) {
    if (type !== "PROMISE") return;
    tally.promises++;
    // At random, not every SAMPLE_EVERY-th: a call makes a fixed number of promises, and a fixed stride would alias with it.
    if (Math.random() * SAMPLE_EVERY < 1) sample();
  },
}).enable();

/** A copy of the tally so far. */
export function promiseTally(): PromiseTally {
  return JSON.parse(JSON.stringify(tally)) as PromiseTally;
}

const out = process.env.PROMISE_COUNT_OUT;
let snapshots = 0;
if (out && process.env.PROMISE_COUNT_ROLE === "worker")
  process.on("SIGUSR2", () => writeFileSync(join(out, `${process.pid}-${snapshots++}.json`), JSON.stringify(tally)));
