// Loaded with --import into the processes of `npm run bench:stages` (the
// caller and the tools worker, both running an instrumented copy of the
// build). A call's stages run from a blocking XREADGROUP's reply to the next
// XADD the process queues: on the worker, request in → reply out; on the
// caller, reply in → the next request out. Marks between them come from
// `globalThis.__stage(label)` calls that bench/stages.ts writes into the copy.
// On exit each process writes the median time of every step to STAGES_OUT.
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { median } from "./harness.js";

type SendCommand = (this: unknown, args: readonly unknown[], options?: unknown) => Promise<unknown>;

const out = process.env.STAGES_OUT;
/** The benchmark fleet's keys (bench/toolfleet.ts): its reads are the calls' reads. */
const prefix = "bench-";
if (out) {
  // The same module instance the instrumented code loads (CommonJS modules are cached by real path).
  const { RedisClient } = createRequire(import.meta.url)("@redis/client") as { RedisClient: { prototype: { sendCommand: SendCommand } } };
  const proto = RedisClient.prototype;
  const send = proto.sendCommand;
  let marks: [string, number][] | null = null;
  /** Every call's marks, in order; only the last STAGES_CALLS (the measured calls, after the warm-up) are reported. */
  const calls: [string, number][][] = [];
  (globalThis as { __stage?: (label: string) => void }).__stage = (label) => marks?.push([label, performance.now()]);
  proto.sendCommand = function (this: unknown, args, options) {
    const reply = send.call(this, args, options);
    const command = String(args[0]);
    if (command === "XREADGROUP" && String(args[args.length - 2]).startsWith(prefix)) {
      reply.then(
        (r) => {
          if (r) marks = [["read", performance.now()]];
        },
        () => undefined,
      );
    } else if (command === "XADD" && marks) {
      marks.push(["XADD", performance.now()]);
      calls.push(marks);
      marks = null;
    }
    return reply;
  };
  process.on("exit", () => {
    const measured = calls.slice(-Number(process.env.STAGES_CALLS ?? calls.length));
    const steps = new Map<string, number[]>();
    const add = (step: string, us: number): void => {
      const list = steps.get(step);
      if (list) list.push(us);
      else steps.set(step, [us]);
    };
    for (const m of measured) {
      for (let i = 1; i < m.length; i++) add(`${m[i - 1]?.[0]} → ${m[i]?.[0]}`, ((m[i]?.[1] ?? NaN) - (m[i - 1]?.[1] ?? NaN)) * 1000);
      add("total", ((m[m.length - 1]?.[1] ?? NaN) - (m[0]?.[1] ?? NaN)) * 1000);
    }
    // The steps most calls take, in the order first seen; rarer paths (two entries in one read) left out.
    const main = [...steps]
      .filter(([, v]) => v.length >= measured.length / 2)
      .map(([step, v]) => ({ step, medianUs: Number(median(v).toFixed(1)), calls: v.length }));
    writeFileSync(join(out, `${process.pid}.json`), JSON.stringify({ process: process.argv[1], steps: main }));
  });
}
