// npm run bench:side-by-side — sequential latency of the two floors, toolfleet
// and Moleculer, all started at once in this process and measured in
// alternating blocks of calls (order reversed every block), so each block's
// ratio compares runs milliseconds apart. `npm run bench` starts each system
// alone instead; this one answers a narrower question more precisely: how far
// is each system from the floor that writes before it reads (the lower bound
// of a streams RPC here)?
//
//   BLOCKS=20 CALLS=200 (calls per block)
import { cpus } from "node:os";
import { startFloor } from "./floor.js";
import { median, sequentialTimes, warmUp, type Subject } from "./harness.js";
import { start as startMoleculer } from "./peers/moleculer.js";
import { echoSubject, startFleet } from "./toolfleet.js";

const BLOCKS = Number(process.env.BLOCKS ?? 20);
const CALLS = Number(process.env.CALLS ?? 200);

const subjects: Record<string, Subject> = {
  floorOrdered: await startFloor(undefined, "ordered"),
  floor: await startFloor(),
  toolfleet: echoSubject(await startFleet(1), "turn"),
  moleculer: await startMoleculer(),
};

try {
  for (const subject of Object.values(subjects)) await warmUp(subject);
  const keys = Object.keys(subjects);
  const p50s: Record<string, number[]> = {};
  for (let block = 0; block < BLOCKS; block++) {
    for (const key of block % 2 === 0 ? keys : [...keys].reverse()) {
      const subject = subjects[key];
      if (subject) (p50s[key] ??= []).push(median(await sequentialTimes(subject, CALLS, 0)));
    }
  }
  const lowest = p50s.floorOrdered ?? [];
  const results = Object.fromEntries(
    keys.map((key) => {
      const own = p50s[key] ?? [];
      return [
        key,
        {
          name: subjects[key]?.name,
          p50Ms: Number(median(own).toFixed(3)),
          // Each block against the ordered floor's block of the same round; the median of those.
          ratioToFloorOrdered: Number(median(own.map((v, i) => v / (lowest[i] ?? NaN))).toFixed(3)),
        },
      ];
    }),
  );
  console.log(
    JSON.stringify(
      {
        command: "npm run bench:side-by-side",
        date: new Date().toISOString(),
        machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
        blocks: BLOCKS,
        callsPerBlock: CALLS,
        results,
      },
      null,
      2,
    ),
  );
} finally {
  for (const subject of Object.values(subjects)) await subject.close();
}
