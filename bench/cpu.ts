// CPU (and writes, wake-ups) a set of processes used, read from /proc: what
// `npm run bench`, `npm run bench:seq-cpu` and `npm run bench:compare` report
// per call for the caller, the worker and Redis. Linux only, with Redis on
// this machine. Redis is shared: whatever else uses it meanwhile is counted too.
import { readdirSync, readFileSync } from "node:fs";
import { createClient } from "redis";

/** What a process has used so far, summed over its threads. */
export interface Usage {
  cpuNs: number;
  writes: number;
  wakeups: number;
}

export function usageOf(pid: number): Usage {
  let cpuNs = 0;
  let wakeups = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    // schedstat: time on CPU (ns), time waiting to run, timeslices.
    cpuNs += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    wakeups += Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${task}/status`, "utf8"))?.[1]);
  }
  const writes = Number(/^syscw: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"))?.[1]);
  if (![cpuNs, wakeups, writes].every(Number.isFinite)) throw new Error(`could not read /proc/${pid}`);
  return { cpuNs, writes, wakeups };
}

export const usageSum = (pids: readonly number[]): Usage =>
  pids
    .map(usageOf)
    .reduce((a, b) => ({ cpuNs: a.cpuNs + b.cpuNs, writes: a.writes + b.writes, wakeups: a.wakeups + b.wakeups }), { cpuNs: 0, writes: 0, wakeups: 0 });

/** The pid of the Redis at `url`, which must run on this machine. */
export async function redisPid(url = "redis://127.0.0.1:6379"): Promise<number> {
  const client = createClient({ url });
  await client.connect();
  try {
    const pid = Number(/process_id:(\d+)/.exec(await client.info("server"))?.[1]);
    if (!Number.isInteger(pid) || !readdirSync("/proc").includes(String(pid))) throw new Error(`Redis at ${url} is not a process on this machine`);
    return pid;
  } finally {
    await client.close();
  }
}

export type Role = "caller" | "worker" | "redis";
export const ROLES: readonly Role[] = ["caller", "worker", "redis"];

/** CPU per call, in µs, of each role and of all three. */
export type CpuPerCall = Record<Role | "total", number>;

/**
 * Reads the CPU of a subject's processes around a measurement: `start()` before it, then
 * `perCall(calls)` after it with the calls it made.
 */
export function cpuMeter(pids: Record<Role, readonly number[]>): { start: () => void; perCall: (calls: number) => CpuPerCall } {
  let before: Record<Role, number> | undefined;
  const read = (): Record<Role, number> => ({
    caller: usageSum(pids.caller).cpuNs,
    worker: usageSum(pids.worker).cpuNs,
    redis: usageSum(pids.redis).cpuNs,
  });
  return {
    start: () => {
      before = read();
    },
    perCall: (calls) => {
      if (!before) throw new Error("cpuMeter: perCall() before start()");
      const after = read();
      const us = (role: Role): number => Number(((after[role] - (before?.[role] ?? 0)) / calls / 1000).toFixed(1));
      const out = { caller: us("caller"), worker: us("worker"), redis: us("redis"), total: 0 };
      out.total = Number((out.caller + out.worker + out.redis).toFixed(1));
      return out;
    },
  };
}
