// In-process call() overhead against calling the handler directly, for `echo`
// with its 3-field schema. Both sides are awaited, as the LLM loop awaits a
// tool. Rounds alternate the two sides so machine noise hits both alike; we
// report medians of per-call time and of the paired per-round difference.
import { performance } from "node:perf_hooks";
import { echo } from "../examples/tools.js";
import { ToolContext, ToolRegistry, defineConfig, silentLogger, staticConfig } from "../src/index.js";
import { median } from "./harness.js";

export interface InProcessResult {
  rounds: number;
  callsPerRound: number;
  directMedianUs: number;
  registryMedianUs: number;
  overheadMedianUs: number;
}

export async function measureInProcess(rounds = 41, batch = 20_000): Promise<InProcessResult> {
  const registry = new ToolRegistry({ config: staticConfig(defineConfig()), logger: silentLogger }).register(echo);
  const ctx = new ToolContext({ platform: "bench", userId: "u1" });
  const args = { text: "x".repeat(100), repeat: 1, uppercase: false };
  const handler = echo.handler as unknown as (a: unknown, c: ToolContext) => unknown;
  const direct = async (): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) await handler(args, ctx);
    return ((performance.now() - t0) * 1000) / batch;
  };
  const viaRegistry = async (): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) await registry.call("echo", args, { userId: "u1", ctx });
    return ((performance.now() - t0) * 1000) / batch;
  };
  // Warm-up: let the JIT settle both paths.
  for (let i = 0; i < 5; i++) {
    await direct();
    await viaRegistry();
  }
  const d: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      d.push(await direct());
      r.push(await viaRegistry());
    } else {
      r.push(await viaRegistry());
      d.push(await direct());
    }
  }
  const fix = (n: number): number => Number(n.toFixed(3));
  return {
    rounds,
    callsPerRound: batch,
    directMedianUs: fix(median(d)),
    registryMedianUs: fix(median(r)),
    overheadMedianUs: fix(median(r.map((x, i) => x - (d[i] ?? NaN)))),
  };
}
