// toolfleet's remote path as a benchmark subject: a RemoteToolRegistry in this
// process, `toolfleet tools` workers as child processes.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { ToolContext, ToolRegistry, defineConfig, silentLogger, staticConfig } from "../src/index.js";
import { RemoteToolRegistry } from "../src/inference/remote-registry.js";
import { closeRedis, connectRedis, type RedisNode } from "../src/redis/client.js";
import type { Subject } from "./harness.js";
import { keys, type Keys } from "../src/protocol.js";
import { FleetMetrics } from "../src/core/metrics.js";

const WORKER = fileURLToPath(new URL("./gc-worker.js", import.meta.url));

export interface Fleet {
  keys: Keys;
  redis: RedisNode;
  workers: ChildProcess[];
  /** Per worker: collect garbage there and read its heap in use (bytes). */
  heapAfterGc: (() => Promise<number>)[];
  registry: RemoteToolRegistry;
  ctx: ToolContext;
  /** A RemoteToolRegistry of its own on this fleet (for propagation measurements). */
  addRegistry(id: string): Promise<RemoteToolRegistry>;
  close(): Promise<void>;
}

interface Worker {
  child: ChildProcess;
  /** Collects garbage in the worker and resolves with its heap in use, in bytes. */
  heapAfterGc: () => Promise<number>;
}

async function startWorker(namespace: string, url: string, id: string, observe: { metrics: boolean; tracing: boolean }): Promise<Worker> {
  const child = spawn(
    process.execPath,
    [
      "--expose-gc",
      ...(process.env.BENCH_WORKER_NODE_ARGS ?? "").split(" ").filter(Boolean),
      WORKER,
      "tools",
      "--worker-id",
      id,
      "--concurrency",
      "64",
      ...(observe.metrics ? ["--metrics-port", "0"] : []),
    ],
    {
      env: {
        ...process.env,
        TOOLFLEET_NAMESPACE: namespace,
        TOOLFLEET_REDIS_URL: url,
        TOOLFLEET_LOG_LEVEL: "warn",
        TOOLFLEET_BACKGROUND_THRESHOLD: "0",
        // Observed: spans made by an installed OpenTelemetry SDK, exported nowhere.
        ...(observe.tracing ? { OTEL_TRACES_EXPORTER: "none" } : {}),
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  const heaps: ((bytes: number) => void)[] = [];
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    for (const m of out.matchAll(/bench-heap-used-bytes (\d+)\n/g)) heaps.shift()?.(Number(m[1]));
    out = out.replace(/bench-heap-used-bytes \d+\n/g, "");
  });
  while (!out.includes(" ready: ")) {
    if (child.exitCode !== null) throw new Error(`tools worker exited: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    child,
    heapAfterGc: () =>
      new Promise((resolve) => {
        heaps.push(resolve);
        child.kill("SIGUSR2");
      }),
  };
}

/**
 * `metrics`: on in the workers (`--metrics-port`) and the caller; `tracing`: an OpenTelemetry SDK in the workers
 * (OTEL_TRACES_EXPORTER=none; the caller's is the measuring process's to install). docs/observability.md.
 */
export async function startFleet(workers: number, url = "redis://127.0.0.1:6379", options: { metrics?: boolean; tracing?: boolean } = {}): Promise<Fleet> {
  const k = keys(`bench-${process.pid}-${Date.now()}`);
  const observe = { metrics: options.metrics === true, tracing: options.tracing === true };
  const started = await Promise.all(Array.from({ length: workers }, (_, i) => startWorker(k.namespace, url, `bench-w${i}`, observe)));
  const procs = started.map((w) => w.child);
  const redis = await connectRedis({ url, logger: silentLogger, name: "bench-caller" });
  const config = staticConfig(defineConfig({ toolsServiceMode: "remote", namespace: k.namespace, toolsExecTimeout: 30, backgroundThreshold: 0 }));
  const registries: RemoteToolRegistry[] = [];
  const addRegistry = async (id: string): Promise<RemoteToolRegistry> => {
    const r = new RemoteToolRegistry({
      redis,
      redisUrl: url,
      keys: k,
      config,
      local: new ToolRegistry({ config, logger: silentLogger, taskManager: null }),
      workerId: id,
      logger: silentLogger,
      ...(observe.metrics ? { metrics: new FleetMetrics({ service: "inference", worker: id }) } : {}),
    });
    await r.start();
    registries.push(r);
    return r;
  };
  const registry = await addRegistry("bench-inference");
  return {
    keys: k,
    redis,
    workers: procs,
    heapAfterGc: started.map((w) => w.heapAfterGc),
    registry,
    ctx: new ToolContext({ platform: "bench", userId: "u1", userName: "u1", channelId: "c", guildId: "g", messageId: "m" }),
    addRegistry,
    close: async () => {
      for (const r of registries) await r.stop();
      for (const p of procs) p.kill("SIGTERM");
      await Promise.all(procs.map((p) => (p.exitCode === null ? once(p, "exit") : Promise.resolve())));
      const left: string[] = [];
      // Keys kept in another key's cluster slot begin with `{` (src/redis/keys.ts).
      for (const pattern of [`${k.namespace}:*`, `{${k.namespace}:*`])
        for await (const batch of redis.scanIterator({ MATCH: pattern, COUNT: 1000 })) left.push(...batch);
      if (left.length > 0) await redis.del(left);
      await closeRedis(redis);
    },
  };
}

/** The example echo tools: `echo` is annotated idempotent and read-only (no claim), `echo_once` is not (claimed, its reply stored). */
export type EchoTool = "echo" | "echo_once";

/**
 * A remote echo of 100 bytes through the RemoteToolRegistry. `trace` says
 * whose calls these are: `turn`, the calls of one chat turn (the context
 * carries the turn's id, as every call from the LLM loop does: its session
 * record is written and read once); `call`, each call a trace of its own (no
 * id: a session record written and read per call, the cold path). `tool`:
 * `echo` takes the path without an idempotency claim, `echo_once` the claimed
 * path every tool with a side effect takes.
 */
export function echoSubject(fleet: Fleet, trace: "turn" | "call" = "turn", options: { tool?: EchoTool; name?: string } = {}): Subject {
  const tool = options.tool ?? "echo";
  const name =
    options.name ??
    `toolfleet remote ${tool}${tool === "echo" ? " (annotated, no claim)" : " (claimed)"}, ${trace === "turn" ? "in a chat turn" : "a new trace each call"}`;
  const text = "x".repeat(100);
  const ctx = trace === "turn" ? new ToolContext({ ...fleet.ctx.identity(), observabilityRequestId: `bench-turn-${process.pid}` }) : fleet.ctx;
  return {
    name,
    workerPids: fleet.workers.flatMap((w) => (w.pid === undefined ? [] : [w.pid])),
    call: async () => {
      const out = await fleet.registry.execute(tool, { text }, { userId: "u1", ctx });
      if (out.route !== "remote" || out.text !== text) throw new Error(`unexpected: ${out.route} ${out.text.slice(0, 80)}`);
    },
    close: () => fleet.close(),
  };
}
