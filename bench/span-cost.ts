// npm run bench:span-cost — what an installed OpenTelemetry SDK costs one process per call, in parts:
// one recorded span (toolfleet's own `recordSpan`, src/core/tracing.ts: start, attributes, end) and
// PROMISES promises (a remote call's count per process, `npm run bench:promises`), made and awaited
// inside an active span. Three variants, each in a child process of its own (a context manager, once
// used, stays on for the process): `off` (no SDK: the API's no-ops), `sdk` (the SDK as the CLI installs
// it with OTEL_TRACES_EXPORTER=none: recording, exported nowhere, AsyncLocalStorage context manager) and
// `sdk-no-context-manager` (the same SDK registered without one) and `sdk-never-sampled` (the SDK with its
// context manager and a sampler that records nothing). Medians over ROUNDS rounds.
//
//   ROUNDS=5 SPANS=200000 PROMISES=12 npm run bench:span-cost
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { context, trace } from "@opentelemetry/api";
import { AlwaysOffSampler, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { recordSpan } from "../src/core/tracing.js";
import { median } from "./harness.js";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const SPANS = Number(process.env.SPANS ?? 200_000);
const PROMISES = Number(process.env.PROMISES ?? 12);
const VARIANTS = ["off", "sdk", "sdk-no-context-manager", "sdk-never-sampled"] as const;
type Variant = (typeof VARIANTS)[number];
const ATTRIBUTES = { "toolfleet.tool": "echo", "toolfleet.route": "remote", "toolfleet.worker": "bench-worker" };

/** Microseconds per span, and per batch of PROMISES promises, in this process. */
async function measure(variant: Variant): Promise<{ spanUs: number[]; promisesUs: number[] }> {
  if (variant === "sdk-never-sampled") new NodeTracerProvider({ sampler: new AlwaysOffSampler() }).register();
  else if (variant !== "off") new NodeTracerProvider().register(variant === "sdk" ? undefined : { contextManager: null });
  const spanUs: number[] = [];
  const promisesUs: number[] = [];
  const batches = SPANS / 10;
  const batch = (): Promise<number[]> => Promise.all(Array.from({ length: PROMISES }, (_, i) => Promise.resolve(i).then((x) => x + 1)));
  // Promises made inside an active span, as a call's are (the context manager copies the context into each).
  const parent = trace.setSpan(context.active(), trace.getTracer("bench").startSpan("parent"));
  for (let round = -1; round < ROUNDS; round++) {
    let t = process.hrtime.bigint();
    for (let i = 0; i < SPANS; i++) recordSpan("tool.call echo", "ok", ATTRIBUTES);
    const span = Number(process.hrtime.bigint() - t) / SPANS / 1000;
    t = process.hrtime.bigint();
    await context.with(parent, async () => {
      // PROMISES promises per batch, and the batch's own Promise.all (its promise counted apart below).
      for (let i = 0; i < batches; i++) await batch();
    });
    const promises = Number(process.hrtime.bigint() - t) / batches / 1000;
    // Round -1 warms the JIT up.
    if (round >= 0) {
      spanUs.push(span);
      promisesUs.push(promises);
    }
  }
  return { spanUs, promisesUs };
}

const child = process.argv[2] as Variant | undefined;
if (child) {
  process.stdout.write(JSON.stringify(await measure(child)));
} else {
  const results: Record<string, { spanUs: number; promisesUs: number }> = {};
  for (const variant of VARIANTS) {
    const run = spawnSync(process.execPath, [fileURLToPath(import.meta.url), variant], { encoding: "utf8", env: process.env, timeout: 300_000 });
    if (run.status !== 0) throw new Error(`bench:span-cost ${variant} failed: ${run.stderr || run.error?.message || `exit ${run.status}`}`);
    const m = JSON.parse(run.stdout) as { spanUs: number[]; promisesUs: number[] };
    results[variant] = { spanUs: Number(median(m.spanUs).toFixed(3)), promisesUs: Number(median(m.promisesUs).toFixed(3)) };
  }
  const off = results.off;
  const sdk = results.sdk;
  console.log(
    JSON.stringify(
      {
        command: `ROUNDS=${ROUNDS} SPANS=${SPANS} PROMISES=${PROMISES} npm run bench:span-cost`,
        date: new Date().toISOString(),
        machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
        // Per variant: µs per span; µs per batch of PROMISES promises awaited with Promise.all.
        results,
        // What the SDK adds to one process's call: one span more than the no-op, PROMISES promises more than without a context manager.
        sdkAddsPerCallUs:
          off && sdk ? { span: Number((sdk.spanUs - off.spanUs).toFixed(3)), promises: Number((sdk.promisesUs - off.promisesUs).toFixed(3)) } : undefined,
      },
      null,
      2,
    ),
  );
}
