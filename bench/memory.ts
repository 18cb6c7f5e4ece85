// CPU per call and memory growth of toolfleet's remote path, in a caller
// process of its own: the bench's main process has run every peer and the
// file round trips before, and its resident size carries what they left
// (freed but not returned), which is not the caller's growth. The worker is a
// child process, as everywhere in the bench.
//
//   BIG_CALLS=100000
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { usageOf } from "./cpu.js";
import { echoSubject, startFleet } from "./toolfleet.js";

const BIG_CALLS = Number(process.env.BIG_CALLS ?? 100_000);
// The first reading is taken after 10k calls.
if (!Number.isInteger(BIG_CALLS) || BIG_CALLS <= 10_000) throw new Error(`BIG_CALLS must be a whole number over 10000, got ${process.env.BIG_CALLS}`);
const log = (line: string): void => console.error(`[bench] ${line}`);

export interface Resources {
  cpuUsPerCall: { caller: number; worker: number };
  rssMiB: Memory;
  heapUsedMiB: Memory;
}

function procRssMiB(pid: number): number {
  const line =
    readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmRSS:")) ?? "";
  return Number((Number(/(\d+)/.exec(line)?.[1] ?? NaN) / 1024).toFixed(1));
}

export interface Memory {
  caller10k: number;
  caller100k: number;
  worker10k: number;
  worker100k: number;
}

/** CPU per call (caller and worker), then the RSS and the heap in use of both after 10k and after BIG_CALLS calls, each read after a full collection. */
async function cpuAndMemory(): Promise<Resources> {
  const fleet = await startFleet(1);
  const subject = echoSubject(fleet);
  const workerPid = fleet.workers[0]?.pid ?? 0;
  try {
    const calls = 5000;
    for (let i = 0; i < 500; i++) await subject.call();
    const c0 = usageOf(process.pid).cpuNs;
    const w0 = usageOf(workerPid).cpuNs;
    for (let i = 0; i < calls; i++) await subject.call();
    const perCall = (ns: number): number => Number((ns / calls / 1000).toFixed(1));
    const cpuUsPerCall = { caller: perCall(usageOf(process.pid).cpuNs - c0), worker: perCall(usageOf(workerPid).cpuNs - w0) };
    log(`cpu per call: caller ${cpuUsPerCall.caller} µs, worker ${cpuUsPerCall.worker} µs`);

    let done = calls + 500;
    const runTo = async (target: number): Promise<void> => {
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (done < target) {
            done++;
            await subject.call();
          }
        }),
      );
    };
    // A full collection in both processes first: resident size otherwise follows V8's heap sizing,
    // which swings by tens of MiB between two reads of the same idle worker. The heap in use after
    // it is the figure that shows whether anything is kept per call.
    const mib = (bytes: number): number => Number((bytes / 1024 / 1024).toFixed(1));
    const read = async (): Promise<{ rss: [number, number]; heap: [number, number] }> => {
      global.gc?.();
      const workerHeap = (await fleet.heapAfterGc[0]?.()) ?? NaN;
      await sleep(500);
      return { rss: [mib(process.memoryUsage().rss), procRssMiB(workerPid)], heap: [mib(process.memoryUsage().heapUsed), mib(workerHeap)] };
    };
    await runTo(10_000);
    const at10k = await read();
    await runTo(BIG_CALLS);
    const atBig = await read();
    const rssMiB = { caller10k: at10k.rss[0], caller100k: atBig.rss[0], worker10k: at10k.rss[1], worker100k: atBig.rss[1] };
    const heapUsedMiB = { caller10k: at10k.heap[0], caller100k: atBig.heap[0], worker10k: at10k.heap[1], worker100k: atBig.heap[1] };
    log(`rss: caller ${rssMiB.caller10k} → ${rssMiB.caller100k} MiB, worker ${rssMiB.worker10k} → ${rssMiB.worker100k} MiB`);
    log(`heap used: caller ${heapUsedMiB.caller10k} → ${heapUsedMiB.caller100k} MiB, worker ${heapUsedMiB.worker10k} → ${heapUsedMiB.worker100k} MiB`);
    return { cpuUsPerCall, rssMiB, heapUsedMiB };
  } finally {
    await subject.close();
  }
}

/** Runs the measurement in a new caller process (with --expose-gc) and returns what it found. */
export async function cpuAndMemoryInOwnProcess(bigCalls = BIG_CALLS): Promise<Resources> {
  const child = spawn(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url)], {
    env: { ...process.env, BIG_CALLS: String(bigCalls) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => child.on("error", reject).on("close", resolve));
  if (code !== 0) throw new Error(`the memory measurement exited with ${code}: ${out}`);
  return JSON.parse(out) as Resources;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!global.gc) throw new Error("run with --expose-gc: the resident size is read after a full collection");
  process.stdout.write(JSON.stringify(await cpuAndMemory()));
}
