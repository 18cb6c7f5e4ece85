import assert from "node:assert/strict";
import { test } from "node:test";
import { exampleTools } from "../../examples/tools.js";
import { createInferenceWorker, createToolsWorker, defineConfig, staticConfig } from "../../src/index.js";
import { closeRedis } from "../../src/redis/client.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { OwnRedis, REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

interface MetricLine {
  name: string;
  labels: Map<string, string>;
  value: number;
}

/** The sample lines of a Prometheus text exposition. */
function parse(text: string): MetricLine[] {
  const out: MetricLine[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = new Map<string, string>();
    for (const l of (m[2] ?? "").matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) labels.set(l[1]!, l[2]!);
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample of `name` whose labels include `want`; undefined when there is none. */
function valueOf(lines: MetricLine[], name: string, want: Record<string, string> = {}): number | undefined {
  const found = lines.filter((l) => l.name === name && Object.entries(want).every(([k, v]) => l.labels.get(k) === v));
  assert.ok(found.length <= 1, `${found.length} samples of ${name} ${JSON.stringify(want)}`);
  return found[0]?.value;
}

async function scrape(url: string): Promise<MetricLine[]> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

test("/metrics after known calls: the caller's calls by tool, route and kind, the worker's runs, and their histograms", { timeout: 30_000 }, async () => {
  const redis = await connect();
  const k = testKeys();
  const config = staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote" }));
  const tools = createToolsWorker({
    config,
    logger: new RecordingLogger(),
    workerId: "m-tools",
    tools: exampleTools,
    permissions: { admin_stats: ["admin"] },
    metricsPort: 0,
  });
  const inference = createInferenceWorker({ config, logger: new RecordingLogger(), workerId: "m-inf", metricsPort: 0 });
  try {
    await tools.start();
    await inference.start();
    assert.match(tools.metricsUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const registry = inference.registry;
    await eventually(() => assert.ok(registry.toolNames().has("echo")), 5000, 20);
    for (let i = 0; i < 3; i++) assert.equal((await registry.execute("echo", { text: `e${i}` }, { userId: "u" })).kind, "ok");
    assert.equal((await registry.execute("calculator", { expression: "1 +" }, { userId: "u" })).kind, "invalid_args");
    assert.equal((await registry.execute("admin_stats", {}, { userId: "u" })).kind, "denied");
    assert.equal((await registry.execute("no_such_tool_xyz", {}, { userId: "u" })).kind, "unknown_tool");

    const caller = await scrape(inference.metricsUrl!);
    assert.equal(valueOf(caller, "toolfleet_calls_total", { tool: "echo", route: "remote", kind: "ok", service: "inference", worker: "m-inf" }), 3);
    assert.equal(valueOf(caller, "toolfleet_call_duration_seconds_count", { tool: "echo", route: "remote" }), 3);
    assert.equal(valueOf(caller, "toolfleet_calls_total", { tool: "calculator", route: "remote", kind: "invalid_args" }), 1);
    assert.equal(valueOf(caller, "toolfleet_calls_total", { tool: "admin_stats", route: "local", kind: "denied" }), 1);
    // An unknown tool's name (the model's text) is never a label value.
    assert.equal(valueOf(caller, "toolfleet_calls_total", { tool: "(unknown)", kind: "unknown_tool" }), 1);
    assert.ok(!caller.some((l) => l.labels.get("tool") === "no_such_tool_xyz"));
    assert.equal(valueOf(caller, "toolfleet_calls_in_flight"), 0);
    assert.ok((valueOf(caller, "toolfleet_catalog_reloads_total") ?? 0) >= 1);
    assert.equal(valueOf(caller, "toolfleet_fallbacks_total", { result: "taken" }), 0);

    const worker = await scrape(tools.metricsUrl!);
    assert.equal(valueOf(worker, "toolfleet_runs_total", { tool: "echo", kind: "ok", service: "tools", worker: "m-tools" }), 3);
    assert.equal(valueOf(worker, "toolfleet_runs_total", { tool: "calculator", kind: "invalid_args" }), 1);
    assert.equal(valueOf(worker, "toolfleet_run_duration_seconds_count", { tool: "echo" }), 3);
    assert.equal(valueOf(worker, "toolfleet_queue_wait_seconds_count", { tool: "echo" }), 3);
    // The denied and unknown calls never reached the worker.
    assert.equal(valueOf(worker, "toolfleet_runs_total", { tool: "admin_stats" }), undefined);
    // Sampled at scrape time: the pool's stream holds the 4 requests it took, none pending.
    assert.equal(valueOf(worker, "toolfleet_stream_length", { stream: k.toolsStream }), 4);
    assert.equal(valueOf(worker, "toolfleet_stream_pending", { stream: k.toolsStream }), 0);
    assert.equal(valueOf(worker, "toolfleet_dead_letters_total", { stream: k.toolsStream }), 0);
    assert.equal(valueOf(worker, "toolfleet_redis_reconnects_total"), 0);
    const base = tools.metricsUrl!.replace(/\/metrics$/, "");
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal(await (await fetch(`${base}/readyz`)).text(), "ok\n");
    const missing = await fetch(`${base}/nope`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /try \/metrics, \/healthz or \/readyz/);
  } finally {
    await inference.stop();
    await tools.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("/readyz fails while Redis is down, saying why, and recovers when it is back", { timeout: 60_000 }, async () => {
  const own = await OwnRedis.start();
  const k = testKeys();
  const config = staticConfig(defineConfig({ redisUrl: own.url, namespace: k.namespace, toolsServiceMode: "remote" }));
  const tools = createToolsWorker({ config, logger: new RecordingLogger(), workerId: "r-tools", tools: exampleTools, metricsPort: 0 });
  try {
    await tools.start();
    const readyz = tools.metricsUrl!.replace(/\/metrics$/, "/readyz");
    assert.equal((await fetch(readyz)).status, 200);
    await own.kill();
    await eventually(
      async () => {
        const res = await fetch(readyz);
        assert.equal(res.status, 503);
        assert.match(await res.text(), /Redis connection down/);
      },
      10_000,
      100,
    );
    await own.up();
    await eventually(async () => assert.equal((await fetch(readyz)).status, 200), 15_000, 100);
    const worker = parse(await (await fetch(tools.metricsUrl!)).text());
    assert.ok((valueOf(worker, "toolfleet_redis_reconnects_total") ?? 0) >= 1);
  } finally {
    await tools.stop();
    await own.stop();
  }
});
