// Protocol v1.1 across processes (docs/protocol.md §9): cancellation, progress and structured results
// between a caller in this process and `toolfleet tools` workers in their own, over the real Redis.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { createCaller, defineConfig, silentLogger, staticConfig, ToolContext, ToolRegistry, type Caller, type ProgressUpdate } from "../../src/index.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, exited, startToolsProcess, testKeys } from "../support/redis-helpers.js";
import { tools as fixtureTools } from "../support/fixtures/v11-tools.js";
import { wireContextOf } from "../../src/tool-exec/client.js";

const FIXTURE = fileURLToPath(new URL("../support/fixtures/v11-tools.js", import.meta.url));

describe("v1.1 calls to real tools workers", () => {
  let k: Keys;
  let redis: RedisNode;
  let caller: Caller;
  let workers: Awaited<ReturnType<typeof startToolsProcess>>[] = [];

  before(async () => {
    k = testKeys();
    redis = await connect();
    const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_TEST_REDIS_URL: REDIS_URL };
    // One worker taking one call at a time (so a second call waits in the stream), with a short lease
    // so its lease tick (every third of it) comes often.
    workers = [await startToolsProcess(["--worker-id", "v11-a", "--concurrency", "1", "--lease-ms", "1500", "--tools", FIXTURE], env)];
    const config = staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false }));
    caller = createCaller({ config, logger: silentLogger, workerId: "v11-caller" });
    await caller.start();
  });

  after(async () => {
    await caller.stop();
    for (const w of workers) {
      w.kill("SIGTERM");
      await exited(w);
    }
    await dropNamespace(redis, k);
    await closeRedis(redis);
  });

  const key = (name: string): string => `${k.namespace}:fx:${name}`;

  test("a 30 s tool aborted after 1 s: ctx.signal aborts on the worker within 1 s, the call settles as cancelled, the later side effect never happens", async (t) => {
    const controller = new AbortController();
    const running = caller.registry.execute("long_side_effect", { ms: 30_000, key: key("a") }, { userId: "u", signal: controller.signal, timeoutMs: 60_000 });
    await eventually(async () => assert.ok(await redis.get(`${key("a")}:started`)), 10_000);
    await sleep(1000);
    const abortedAt = Date.now();
    controller.abort(new Error("the user gave up"));
    const outcome = await running;
    const settledMs = Date.now() - abortedAt;
    assert.equal(outcome.kind, "cancelled");
    assert.equal(outcome.route, "remote");
    assert.ok(settledMs < 200, `settled ${settledMs} ms after the abort`);
    const seen = await eventually(async () => {
      const v = await redis.get(`${key("a")}:aborted`);
      assert.ok(v);
      return v;
    }, 5000);
    const [at, ...reason] = seen.split(" ");
    const lagMs = Number(at) - abortedAt;
    t.diagnostic(`the handler saw the abort ${lagMs} ms after the caller's; it settled after ${settledMs} ms`);
    assert.ok(lagMs < 1000, `the handler saw the abort after ${lagMs} ms`);
    assert.match(reason.join(" "), /cancelled by the caller: the user gave up/);
    // Past where the side effect would have come had the handler gone on after the abort point.
    await sleep(1500);
    assert.equal(await redis.get(`${key("a")}:after`), null);
  });

  test("a cancelled request still waiting in the stream never starts", async () => {
    const busy = new AbortController();
    const first = caller.registry.execute("long_side_effect", { ms: 30_000, key: key("busy") }, { userId: "u", signal: busy.signal, timeoutMs: 60_000 });
    await eventually(async () => assert.ok(await redis.get(`${key("busy")}:started`)), 10_000);
    // The worker takes one call at a time: this one waits behind the first.
    const waiting = new AbortController();
    const second = caller.registry.execute("long_side_effect", { ms: 10, key: key("queued") }, { userId: "u", signal: waiting.signal, timeoutMs: 60_000 });
    await sleep(300);
    waiting.abort("not needed any more");
    assert.equal((await second).kind, "cancelled");
    busy.abort("done waiting");
    assert.equal((await first).kind, "cancelled");
    // The worker is free again and has read the queued request by now: it must not have run it.
    const probe = await caller.registry.execute("long_side_effect", { ms: 0, key: key("probe") }, { userId: "u", timeoutMs: 20_000 });
    assert.equal(probe.kind, "ok", probe.text);
    assert.equal(await redis.get(`${key("queued")}:started`), null);
  });

  test("a cancel whose control message is lost is found at the worker's lease tick (the mark), and the handler sees its idempotency key", async () => {
    const running = caller.registry.execute("long_side_effect", { ms: 30_000, key: key("lost") }, { userId: "u", timeoutMs: 60_000 });
    const idem = await eventually(async () => {
      const v = await redis.get(`${key("lost")}:idem`);
      assert.ok(v);
      return v;
    }, 10_000);
    assert.match(idem, /^[^:]+:[^:]+$/, "ctx.idempotencyKey is the request's <trace>:<correlation>");
    // Only the mark, as if the PUBLISH had been lost.
    await redis.set(k.cancelMark(idem), "marked only", { expiration: { type: "EX", value: 60 } });
    const outcome = await running;
    assert.equal(outcome.kind, "cancelled");
    assert.match(outcome.text, /marked only/);
    assert.equal(await redis.get(`${key("lost")}:after`), null);
  });

  test("progress: 20 reports over 3 s reach the caller in order, and extend a 1 s deadline", async () => {
    const updates: ProgressUpdate[] = [];
    const outcome = await caller.registry.execute("reports", { count: 20, everyMs: 150 }, { userId: "u", timeoutMs: 1000, onProgress: (u) => updates.push(u) });
    assert.equal(outcome.kind, "ok", outcome.text);
    assert.equal(outcome.text, "reported 20 times");
    const steps = updates.map((u) => u.progress);
    assert.deepEqual(
      steps,
      [...steps].sort((a, b) => a - b),
      "in order",
    );
    assert.ok(steps.length >= 15 && steps.length <= 20, `${steps.length} updates`);
    assert.equal(updates.at(-1)?.message, "step 20");
  });

  test("progress is coalesced: 200 reports in 2 s arrive as at most ~10 a second, the last one included", async () => {
    const updates: ProgressUpdate[] = [];
    const outcome = await caller.registry.execute("reports", { count: 200, everyMs: 10 }, { userId: "u", timeoutMs: 1000, onProgress: (u) => updates.push(u) });
    assert.equal(outcome.kind, "ok", outcome.text);
    const steps = updates.map((u) => u.progress);
    assert.ok(steps.length <= 40, `${steps.length} updates for 200 reports`);
    assert.deepEqual(
      steps,
      [...steps].sort((a, b) => a - b),
    );
    assert.equal(steps.at(-1), 200);
  });

  test("a tool that stops reporting still times out", async () => {
    const started = Date.now();
    const outcome = await caller.registry.execute(
      "reports",
      { count: 20, everyMs: 100, stallAfter: 3 },
      { userId: "u", timeoutMs: 1000, onProgress: () => {} },
    );
    // The worker's timer and the caller's deadline both lapse a second after the last report: the worker's
    // timeout reply usually comes first ("timeout"); when the caller's deadline wins, it gave up on the reply.
    assert.ok(["timeout", "unavailable"].includes(outcome.kind), outcome.kind);
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 3000, `${tookMs} ms`);
  });

  test("a structured result round-trips through a remote call byte for byte", async () => {
    const remote = await caller.registry.execute("weather_report", { city: "Oslo" }, { userId: "u" });
    const local = new ToolRegistry({ taskManager: null }).register(...fixtureTools);
    const here = await local.execute("weather_report", { city: "Oslo" });
    assert.equal(remote.kind, "ok");
    assert.equal(remote.text, "Weather for Oslo ☀");
    assert.ok(remote.result);
    assert.equal(JSON.stringify(remote.result), JSON.stringify(here.result));
    const catalog = caller.registry.listTools().find((t) => t.name === "weather_report");
    assert.deepEqual(catalog?.annotations.readOnly, true);
  });

  test("a gateway-pinned call (pinned by the tool's definition) is cancelled the same way", async () => {
    const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_TEST_REDIS_URL: REDIS_URL };
    const gateway = await startToolsProcess(["--worker-id", "v11-gateway", "--tools", FIXTURE], env, "gateway");
    workers.push(gateway);
    const ctx = new ToolContext({ platform: "console", channelId: "c", userId: "u", adapter: caller.gatewayAdapter("console") });
    const controller = new AbortController();
    const running = caller.registry.execute("gateway_wait", { ms: 30_000, key: key("gw") }, { userId: "u", ctx, signal: controller.signal, timeoutMs: 60_000 });
    await eventually(async () => assert.ok(await redis.get(`${key("gw")}:started`)), 10_000);
    controller.abort(new Error("no longer wanted"));
    const outcome = await running;
    assert.equal(outcome.kind, "cancelled");
    assert.equal(outcome.route, "gateway");
    const seen = await eventually(async () => {
      const v = await redis.get(`${key("gw")}:aborted`);
      assert.ok(v);
      return v;
    }, 5000);
    assert.match(seen, /cancelled by the caller: no longer wanted/);
    await sleep(500);
    assert.equal(await redis.get(`${key("gw")}:after`), null);
  });
});

test("a cancelled request for a tool annotated idempotent (no claim) never starts, even on a worker that was not listening when it was cancelled", async () => {
  const k = testKeys();
  const redis = await connect();
  const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_TEST_REDIS_URL: REDIS_URL };
  const config = staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false }));
  const caller = createCaller({ config, logger: silentLogger, workerId: "v11-late-caller" });
  let worker: Awaited<ReturnType<typeof startToolsProcess>> | undefined;
  try {
    await caller.start();
    const client = caller.registry.toolsClient!;
    const ctx = new ToolContext({ userId: "u" });
    const marked = `${k.namespace}:fx:late`;
    // Sent to a pool no worker reads yet, then cancelled: no worker is there to hear the notice.
    const abort = new AbortController();
    const call = client.call({
      toolName: "mark_once",
      toolArgs: { key: marked },
      userId: "u",
      schemaHash: "",
      ctx: wireContextOf(ctx),
      identity: ctx.identity(),
      timeoutMs: 30_000,
      stream: k.poolStream("late"),
      signal: abort.signal,
    });
    await eventually(async () => assert.equal(await redis.xLen(k.poolStream("late")), 1), 5000, 20);
    abort.abort("not needed");
    await assert.rejects(call, (err: unknown) => err instanceof Error && /cancel/i.test(err.message));
    // The request was withdrawn from the stream before any worker could read it.
    await eventually(async () => assert.equal(await redis.xLen(k.poolStream("late")), 0), 5000, 20);
    // A worker of that pool starts, and serves the pool: the cancelled request never ran there.
    worker = await startToolsProcess(["--worker-id", "v11-late", "--pool", "late", "--tools", FIXTURE], env);
    await eventually(() => assert.ok(caller.registry.toolNames().has("mark_once")), 10_000, 50);
    const probe = await caller.registry.execute("mark_once", { key: `${marked}-probe` }, { userId: "u" });
    assert.equal(probe.kind, "ok", probe.text);
    assert.equal(await redis.get(`${marked}-probe:started`), "1");
    assert.equal(await redis.get(`${marked}:started`), null);
  } finally {
    await caller.stop();
    worker?.kill("SIGTERM");
    if (worker) await exited(worker);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
