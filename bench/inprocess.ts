// In-process call() overhead against calling the handler directly, for `echo`
// with its 3-field schema. Both sides are awaited, as the LLM loop awaits a
// tool. Rounds alternate the two sides so machine noise hits both alike; we
// report medians of per-call time and of the paired per-round difference.
//
//   npm run bench:inprocess            (ROUNDS=41 BATCH=20000 by default)
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { echo } from "../examples/tools.js";
import { ToolContext, ToolRegistry, defineConfig, silentLogger, staticConfig } from "../src/index.js";

const ROUNDS = Number(process.env.ROUNDS ?? 41);
const BATCH = Number(process.env.BATCH ?? 20_000);

const registry = new ToolRegistry({ config: staticConfig(defineConfig()), logger: silentLogger }).register(echo);
const ctx = new ToolContext({ platform: "bench", userId: "u1" });
const args = { text: "x".repeat(100), repeat: 1, uppercase: false };
const handler = echo.handler as unknown as (a: unknown, c: ToolContext) => unknown;

async function direct(): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) await handler(args, ctx);
  return ((performance.now() - t0) * 1000) / BATCH;
}

async function viaRegistry(): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) await registry.call("echo", args, { userId: "u1", ctx });
  return ((performance.now() - t0) * 1000) / BATCH;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

// Warm-up: let the JIT settle both paths.
for (let i = 0; i < 5; i++) {
  await direct();
  await viaRegistry();
}
const d: number[] = [];
const r: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  if (i % 2 === 0) {
    d.push(await direct());
    r.push(await viaRegistry());
  } else {
    r.push(await viaRegistry());
    d.push(await direct());
  }
}
const overhead = median(r.map((x, i) => x - (d[i] ?? NaN)));
const result = {
  benchmark: "in-process call() overhead, echo with a 3-field zod schema",
  machine: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
  node: process.version,
  rounds: ROUNDS,
  callsPerRound: BATCH,
  directMedianUs: Number(median(d).toFixed(3)),
  registryMedianUs: Number(median(r).toFixed(3)),
  overheadMedianUs: Number(overhead.toFixed(3)),
  targetUs: 3,
  met: overhead <= 3,
};
console.log(JSON.stringify(result, null, 2));
