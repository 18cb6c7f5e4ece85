// npm run bench:inprocess    (ROUNDS=41 BATCH=20000 by default)
import { cpus } from "node:os";
import { measureInProcess } from "./inprocess-lib.js";

const result = await measureInProcess(Number(process.env.ROUNDS ?? 41), Number(process.env.BATCH ?? 20_000));
console.log(
  JSON.stringify(
    {
      benchmark: "in-process call() overhead, echo with a 3-field zod schema",
      machine: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
      node: process.version,
      ...result,
      targetUs: 3,
      met: result.overheadMedianUs <= 3,
    },
    null,
    2,
  ),
);
