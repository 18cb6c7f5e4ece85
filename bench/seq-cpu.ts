// npm run bench:seq-cpu — where a sequential call's time goes, by process:
// for each system, the CPU time per call of the caller (this process), its
// worker and Redis, with the write syscalls and the wake-ups (voluntary
// context switches) per call. The systems are started at once and measured
// in alternating rounds; figures are medians over the rounds. A sequential
// call is CPU work passed from process to process, so what each process
// spends per call is most of its latency.
//
// With IN_FLIGHT=64 the same figures under load: closed loops for SECONDS
// per system per round instead of sequential calls.
//
// Linux only (it reads /proc), with Redis on this machine.
//
//   ROUNDS=6 CALLS=2000 (per system per round) IN_FLIGHT=1 SECONDS=2
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { ROLES, redisPid, usageSum as sum, type Role, type Usage } from "./cpu.js";
import { startFloor } from "./floor.js";
import { median, sequentialTimes, throughput, warmUp, type Subject } from "./harness.js";
import { start as startMoleculer } from "./peers/moleculer.js";
import { echoSubject, startFleet } from "./toolfleet.js";

const ROUNDS = Number(process.env.ROUNDS ?? 6);
const CALLS = Number(process.env.CALLS ?? 2000);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 1);
const SECONDS = Number(process.env.SECONDS ?? 2);
const REDIS_URL = "redis://127.0.0.1:6379";

type Figures = Record<"p50Us" | `${Role}${"CpuUs" | "Writes" | "Wakeups"}`, number[]>;

/** Every system at once, in alternating rounds; prints the medians as JSON. */
async function main(): Promise<void> {
  const redis = await redisPid(REDIS_URL);
  const subjects: Record<string, Subject> = {
    floorOrdered: await startFloor(REDIS_URL, "ordered"),
    floor: await startFloor(REDIS_URL),
    floorClaimed: await startFloor(REDIS_URL, "claimed"),
    toolfleet: echoSubject(await startFleet(1, REDIS_URL), "turn"),
    toolfleetClaimed: echoSubject(await startFleet(1, REDIS_URL), "turn", { tool: "echo_once" }),
    moleculer: await startMoleculer(),
  };
  const figures: Record<string, Partial<Figures>> = {};
  try {
    for (const subject of Object.values(subjects)) await warmUp(subject);
    const names = Object.keys(subjects);
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of round % 2 === 0 ? names : [...names].reverse()) {
        const subject = subjects[name];
        if (!subject) continue;
        const pids: Record<Role, number[]> = { caller: [process.pid], worker: subject.workerPids ?? [], redis: [redis] };
        const before = Object.fromEntries(ROLES.map((r) => [r, sum(pids[r])])) as Record<Role, Usage>;
        let calls = CALLS;
        let p50Ms: number;
        if (IN_FLIGHT > 1) {
          const load = await throughput(subject, IN_FLIGHT, SECONDS, 0);
          calls = load.calls;
          p50Ms = load.p50Ms;
        } else p50Ms = median(await sequentialTimes(subject, CALLS, 0));
        const f = (figures[name] ??= {});
        (f.p50Us ??= []).push(p50Ms * 1000);
        for (const role of ROLES) {
          const after = sum(pids[role]);
          (f[`${role}CpuUs`] ??= []).push((after.cpuNs - before[role].cpuNs) / calls / 1000);
          (f[`${role}Writes`] ??= []).push((after.writes - before[role].writes) / calls);
          (f[`${role}Wakeups`] ??= []).push((after.wakeups - before[role].wakeups) / calls);
        }
      }
    }
  } finally {
    for (const subject of Object.values(subjects)) await subject.close();
  }

  const results = Object.fromEntries(
    Object.entries(figures).map(([name, f]) => [
      name,
      Object.fromEntries(Object.entries(f).map(([k, v]) => [k, Number(median(v).toFixed(k.endsWith("Us") ? 1 : 2))])),
    ]),
  );
  console.log(
    JSON.stringify(
      {
        command: "npm run bench:seq-cpu",
        date: new Date().toISOString(),
        machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
        rounds: ROUNDS,
        ...(IN_FLIGHT > 1 ? { inFlight: IN_FLIGHT, secondsPerRound: SECONDS } : { callsPerRound: CALLS }),
        perCall: results,
      },
      null,
      2,
    ),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
