// The measuring side every benchmark shares, so all systems are timed the same way.
import { performance } from "node:perf_hooks";

/** One system under test: a remote no-op (or echo) call, and how to shut it down. */
export interface Subject {
  name: string;
  call(): Promise<unknown>;
  close(): Promise<void>;
  /** The processes that serve its calls (workers, servers), for per-process CPU figures. */
  workerPids?: number[];
}

export interface Latency {
  calls: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
}

export interface Throughput {
  inFlight: number;
  seconds: number;
  calls: number;
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/** The middle value; for an even count, the mean of the two middle ones. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

/** The time of each of `calls` sequential calls, one at a time, after a warm-up, in ms. */
export async function sequentialTimes(subject: Subject, calls: number, warmup = 300): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await subject.call();
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await subject.call();
    times.push(performance.now() - t0);
  }
  return times;
}

export function latencyOf(times: readonly number[]): Latency {
  const sorted = [...times].sort((a, b) => a - b);
  return { calls: sorted.length, p50Ms: round(percentile(sorted, 50)), p90Ms: round(percentile(sorted, 90)), p99Ms: round(percentile(sorted, 99)) };
}

/** Sequential calls, one at a time, after a warm-up. */
export async function sequential(subject: Subject, calls = 2000, warmup = 300): Promise<Latency> {
  return latencyOf(await sequentialTimes(subject, calls, warmup));
}

/**
 * Resolves two event-loop turns from now, after node-redis has written what
 * this turn queued (it writes in a setImmediate): the "writes before reads"
 * order of the ordered floor, as toolfleet's read loop does it.
 */
export async function afterWrites(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}

/** `inFlight` closed loops calling the subject until `ms` have passed; each call's time goes to `record`. */
async function closedLoops(subject: Subject, inFlight: number, ms: number, record?: (ms: number) => void): Promise<void> {
  const until = performance.now() + ms;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        await subject.call();
        record?.(performance.now() - t0);
      }
    }),
  );
}

/**
 * Brings a freshly started subject to its steady state before anything is
 * measured: `calls` sequential calls, then `ms` at `inFlight` in flight, so
 * JIT compilation (of a new worker process too), pools and batching have
 * settled. The same for every system.
 */
export async function warmUp(subject: Subject, calls = 300, inFlight = 64, ms = 500): Promise<void> {
  for (let i = 0; i < calls; i++) await subject.call();
  await closedLoops(subject, inFlight, ms);
}

/**
 * `inFlight` closed loops for `seconds`: calls per second and the latency under that load. `measuring`
 * is called when the measured part begins (after the warm-up), e.g. to read CPU counters.
 */
export async function throughput(subject: Subject, inFlight = 64, seconds = 5, warmupMs = 500, measuring?: () => void): Promise<Throughput> {
  // A short warm-up at the same concurrency, so connection pools and JIT are settled.
  await closedLoops(subject, inFlight, warmupMs);
  measuring?.();
  const times: number[] = [];
  const started = performance.now();
  await closedLoops(subject, inFlight, seconds * 1000, (ms) => times.push(ms));
  const elapsed = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  return {
    inFlight,
    seconds: round(elapsed, 2),
    calls: times.length,
    callsPerSecond: Math.round(times.length / elapsed),
    p50Ms: round(percentile(times, 50)),
    p99Ms: round(percentile(times, 99)),
  };
}
