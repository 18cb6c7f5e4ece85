// npm run bench:faults — a fault-injection run (not timed; it reports what happened):
// tools workers SIGKILLed and restarted under the same ids every few seconds with 64
// calls in flight, and the Redis under test SIGKILLed and restarted empty twice.
// Every call runs a non-idempotent tool whose side effect is counted in a different
// Redis (the shared one on 6379), so a restart of the Redis under test loses no count.
//
// It prints issued / ok / error kinds / lost / run twice (and, counted apart, run twice
// after a worker was killed mid-run, which at-least-once delivery allows), and whether
// every call settled by its deadline.
//
//   SECONDS=40 IN_FLIGHT=64 WORKERS=3 KILL_EVERY_MS=3000 TIMEOUT_MS=15000
import type { ChildProcess } from "node:child_process";
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { ToolContext, ToolRegistry, createCaller, defineConfig, silentLogger, staticConfig } from "../src/index.js";
import type { OutcomeKind } from "../src/index.js";
import { closeRedis, connectRedis } from "../src/redis/client.js";
import { tools as countingTools } from "../test/support/fixtures/counting-tools.js";
import { OwnRedis, REDIS_URL, startToolsProcess } from "../test/support/redis-helpers.js";

const SECONDS = Number(process.env.SECONDS ?? 40);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 64);
const WORKERS = Number(process.env.WORKERS ?? 3);
const KILL_EVERY_MS = Number(process.env.KILL_EVERY_MS ?? 3000);
const TIMEOUT_MS = Number(process.env.TIMEOUT_MS ?? 15_000);
const FIXTURE = fileURLToPath(new URL("../test/support/fixtures/counting-tools.js", import.meta.url));
const log = (line: string): void => console.error(`[faults] ${line}`);

interface Call {
  key: string;
  kind: OutcomeKind | "threw";
  ms: number;
}

const namespace = `faults-${process.pid}`;
const redisUnderTest = await OwnRedis.start();
// The side-effect counts live in the shared Redis, which this run never restarts.
const counts = await connectRedis({ url: REDIS_URL, logger: silentLogger, name: "faults-counts" });
const env = {
  TOOLFLEET_NAMESPACE: namespace,
  TOOLFLEET_REDIS_URL: redisUnderTest.url,
  TOOLFLEET_TEST_REDIS_URL: REDIS_URL,
  TOOLFLEET_BACKGROUND_THRESHOLD: "0",
};
const workerArgs = (i: number): string[] => ["--worker-id", `faults-w${i}`, "--lease-ms", "2000", "--tools", FIXTURE];
const workers: ChildProcess[] = await Promise.all(Array.from({ length: WORKERS }, (_, i) => startToolsProcess(workerArgs(i), env)));
const killedPids = new Set<number>();

const config = staticConfig(
  defineConfig({ redisUrl: redisUnderTest.url, namespace, toolsServiceMode: "remote", toolsExecTimeout: TIMEOUT_MS / 1000, backgroundThreshold: 0 }),
);
// The caller has the tool too, so a failed remote call may fall back to running it here: the
// path on which a restart of Redis could make a tool run twice.
const local = new ToolRegistry({ config, logger: silentLogger }).register(...countingTools);
const caller = createCaller({ config, logger: silentLogger, workerId: "faults-caller", local });
await caller.start();

const calls: Call[] = [];
let issued = 0;
let stopIssuing = false;

async function oneCall(): Promise<void> {
  const key = `${namespace}:call:${issued++}`;
  const started = performance.now();
  let kind: Call["kind"];
  try {
    const ctx = new ToolContext({ platform: "faults", userId: "u", observabilityRequestId: `t${issued % 16}` });
    kind = (await caller.registry.execute("slow_side_effect", { ms: 30, key }, { userId: "u", ctx })).kind;
  } catch {
    kind = "threw";
  }
  calls.push({ key, kind, ms: performance.now() - started });
}

async function lane(): Promise<void> {
  while (!stopIssuing) await oneCall();
}

async function chaos(): Promise<void> {
  const redisRestarts = [Math.round(SECONDS / 3), Math.round((2 * SECONDS) / 3)].map((s) => s * 1000);
  const t0 = performance.now();
  let next = 0;
  while (!stopIssuing) {
    await sleep(KILL_EVERY_MS);
    if (stopIssuing) break;
    const i = next++ % WORKERS;
    const victim = workers[i];
    if (victim?.pid !== undefined) {
      killedPids.add(victim.pid);
      victim.kill("SIGKILL");
      log(`SIGKILLed worker ${i} (pid ${victim.pid}); restarting it under the same id`);
      workers[i] = await startToolsProcess(workerArgs(i), env).catch((err: unknown) => {
        log(`worker ${i} did not restart: ${String(err)}`);
        return victim;
      });
    }
    const due = redisRestarts[0];
    if (due !== undefined && performance.now() - t0 >= due) {
      redisRestarts.shift();
      log("SIGKILLing the Redis under test and restarting it empty");
      await redisUnderTest.kill();
      await redisUnderTest.up();
    }
  }
}

log(`${SECONDS} s, ${IN_FLIGHT} in flight, ${WORKERS} workers killed every ${KILL_EVERY_MS} ms, Redis restarted empty twice; call timeout ${TIMEOUT_MS} ms`);
const lanes = Array.from({ length: IN_FLIGHT }, () => lane());
const chaosDone = chaos();
await sleep(SECONDS * 1000);
stopIssuing = true;
await Promise.all([...lanes, chaosDone]);

// Count each call's runs, and whether a killed worker had started it.
let lost = 0;
let runTwice = 0;
let runTwiceInterrupted = 0;
let late = 0;
const kinds: Record<string, number> = {};
for (const call of calls) {
  kinds[call.kind] = (kinds[call.kind] ?? 0) + 1;
  if (call.ms > TIMEOUT_MS + 2000) late++;
  const runs = Number((await counts.get(call.key)) ?? 0);
  if (call.kind === "ok" && runs === 0) lost++;
  if (runs >= 2) {
    const starters: string[] = [];
    for await (const batch of counts.scanIterator({ MATCH: `${call.key}:started:*`, COUNT: 100 })) starters.push(...batch);
    const interrupted = starters.some((s) => killedPids.has(Number(s.split(":").pop())));
    if (interrupted) runTwiceInterrupted++;
    else runTwice++;
  }
}

const result = {
  command: "npm run bench:faults",
  date: new Date().toISOString(),
  machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
  settings: { seconds: SECONDS, inFlight: IN_FLIGHT, workers: WORKERS, killEveryMs: KILL_EVERY_MS, timeoutMs: TIMEOUT_MS, redisRestarts: 2 },
  workersKilled: killedPids.size,
  issued: calls.length,
  kinds,
  lost,
  runTwice,
  runTwiceAfterAKillMidRun: runTwiceInterrupted,
  settledLaterThanDeadlinePlus2s: late,
};
console.log(JSON.stringify(result, null, 2));

await caller.stop();
for (const w of workers) w.kill("SIGTERM");
await sleep(500);
for (const w of workers) if (w.exitCode === null) w.kill("SIGKILL");
for (const pattern of [`${namespace}:*`, `{${namespace}:*`])
  for await (const batch of counts.scanIterator({ MATCH: pattern, COUNT: 1000 })) if (batch.length > 0) await counts.del(batch);
await closeRedis(counts);
await redisUnderTest.stop();
