import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { ToolContext, ToolRegistry, defineConfig, defineTool, staticConfig, type ToolDefinition } from "../../src/index.js";
import { RemoteToolRegistry } from "../../src/inference/remote-registry.js";
import { closeRedis, connectRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { ToolExecServer } from "../../src/tool-exec/server.js";
import { lostInRestart } from "../../src/core/outcome.js";
import { CANCEL_UNSTARTED_WAIT_MS } from "../../src/tool-exec/idempotency.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { OwnRedis, aliveButIdleWorker, testKeys } from "../support/redis-helpers.js";

// Requirement: a Redis restarted empty must not make a non-idempotent tool run twice (a worker
// ran it, the restart lost its claim, and the caller's local fallback must not run it again);
// and calls whose requests the restart lost end within ~2 s of Redis coming back, not at their
// timeouts: read-only/idempotent ones are sent again, the others fail as `unavailable`; and a Redis
// that stalls (SIGSTOP) does not hold a call past its timeout and the bounded checks after it.
// Each test starts its own redis-server (OwnRedis) and SIGKILLs it; the runs are counted here,
// in the test process, where no restart can lose them.

/** How soon after Redis comes back a call it lost must have settled (the reconnect backoff stays under 550 ms). */
const SETTLE_BUDGET_MS = 2000;

interface Fleet {
  redis: RedisNode;
  callerRedis: RedisNode;
  keys: Keys;
  logger: RecordingLogger;
  /** Runs per `<tier>:<tool>:<id>`. */
  runs: Map<string, number>;
  worker: ToolExecServer | undefined;
  /** Starts the tools worker (done by `fleet()` unless told not to). */
  startWorker(): Promise<void>;
  registry: RemoteToolRegistry;
  ctx(): ToolContext;
  stop(): Promise<void>;
}

/** `charge` is not idempotent; `lookup` is read-only and sleeps on its first run of an id only. */
function tools(label: string, runs: Map<string, number>): ToolDefinition[] {
  const count = (tool: string, id: string): number => {
    const n = (runs.get(`${label}:${tool}:${id}`) ?? 0) + 1;
    runs.set(`${label}:${tool}:${id}`, n);
    return n;
  };
  return [
    defineTool({
      name: "charge",
      description: "Not idempotent: each run counts.",
      parameters: z.object({ id: z.string(), ms: z.number() }),
      handler: async ({ id, ms }) => {
        count("charge", id);
        await sleep(ms);
        return `${label} charged ${id}`;
      },
    }),
    defineTool({
      name: "lookup",
      description: "Read-only.",
      parameters: z.object({ id: z.string(), ms: z.number() }),
      annotations: { readOnly: true },
      handler: async ({ id, ms }) => {
        if (count("lookup", id) === 1) await sleep(ms);
        return `${label} found ${id}`;
      },
    }),
  ];
}

async function fleet(own: OwnRedis, toolsExecTimeout: number, withWorker = true): Promise<Fleet> {
  const logger = new RecordingLogger();
  const runs = new Map<string, number>();
  const keys = testKeys();
  const config = staticConfig(defineConfig({ toolsServiceMode: "remote", toolsExecTimeout, backgroundThreshold: 0 }));
  const redis = await connectRedis({ url: own.url, logger, name: "svc" });
  const callerRedis = await connectRedis({ url: own.url, logger, name: "caller" });
  const f: Fleet = {
    redis,
    callerRedis,
    keys,
    logger,
    runs,
    worker: undefined,
    async startWorker() {
      const worker = new ToolExecServer({
        redis,
        redisUrl: own.url,
        keys,
        registry: new ToolRegistry({ config, logger }).register(...tools("tools", runs)),
        config,
        logger,
        workerId: "w1",
        worker: { blockMs: 200, watchdogGraceMs: 1000, leaseMs: 2000 },
      });
      f.worker = worker;
      await worker.start();
    },
    registry: new RemoteToolRegistry({
      redis: callerRedis,
      redisUrl: own.url,
      keys,
      config,
      local: new ToolRegistry({ config, logger }).register(...tools("local", runs)),
      workerId: "inf1",
      logger,
    }),
    ctx: () => new ToolContext({ userId: "u" }),
    async stop() {
      await f.registry.stop();
      await f.worker?.stop(3000);
      await closeRedis(callerRedis);
      await closeRedis(redis);
    },
  };
  if (withWorker) await f.startWorker();
  await f.registry.start();
  return f;
}

/** SIGKILLs Redis and starts it again, empty, on the same port; returns when it accepts connections again. */
async function restartEmpty(own: OwnRedis): Promise<number> {
  await own.kill();
  await sleep(300);
  await own.up();
  return Date.now();
}

test("Redis restarted empty while a worker runs non-idempotent calls: no local fallback runs any of them again", { timeout: 60_000 }, async () => {
  const own = await OwnRedis.start();
  let f: Fleet | undefined;
  try {
    // The tool outlives the call's timeout: the caller gives up and then tries to cancel, on the new Redis.
    f = await fleet(own, 2);
    const fl = f;
    const ids = Array.from({ length: 10 }, (_, i) => `c${i}`);
    const calls = ids.map((id) => fl.registry.execute("charge", { id, ms: 3000 }, { userId: "u", ctx: fl.ctx() }));
    // Every call is running on the worker when Redis dies: its claim dies with it.
    await eventually(
      () =>
        assert.deepEqual(
          ids.map((id) => fl.runs.get(`tools:charge:${id}`)),
          ids.map(() => 1),
        ),
      10_000,
    );
    await restartEmpty(own);
    const outcomes = await Promise.all(calls);
    // The worker's handlers finish, and whatever they then do must not run anything again.
    await sleep(3000);
    for (const [i, out] of outcomes.entries()) {
      const id = ids[i] ?? "";
      assert.notEqual(out.route, "fallback", `${id} fell back: ${out.text}`);
      assert.equal(out.kind, "unavailable", `${id}: ${out.kind} ${out.text}`);
      assert.equal(f.runs.get(`local:charge:${id}`) ?? 0, 0, `${id} ran again locally`);
      assert.equal(f.runs.get(`tools:charge:${id}`), 1, `${id} ran on the worker once`);
    }
    assert.equal(f.registry.stats.fallbacks, 0);
    assert.equal(f.registry.stats.fallbacksRefused, ids.length);
  } finally {
    await f?.stop();
    await own.stop();
  }
});

test("control: a request no worker ever took still falls back locally, and only once", { timeout: 30_000 }, async () => {
  const own = await OwnRedis.start();
  let f: Fleet | undefined;
  try {
    f = await fleet(own, 0.5, false);
    // A worker that looks alive (so the request is published) and never reads it.
    await aliveButIdleWorker(f.redis, f.keys, f.keys.toolsStream, "tools", "idle");
    const out = await f.registry.execute("charge", { id: "n1", ms: 0 }, { userId: "u", ctx: f.ctx() });
    assert.equal(out.route, "fallback");
    assert.equal(out.text, "local charged n1");
    assert.equal(f.registry.stats.fallbacks, 1);
    assert.equal(f.registry.stats.fallbacksRefused, 0);
    // Published (the stream took one entry), then withdrawn unread before the fallback ran: no worker can ever read it.
    // (A flat list over RESP2, a map over RESP3.)
    const info = await f.redis.sendCommand<unknown>(["XINFO", "STREAM", f.keys.toolsStream]);
    const field = (name: string): unknown =>
      Array.isArray(info) ? info[info.indexOf(name) + 1] : info instanceof Map ? info.get(name) : (info as Record<string, unknown>)[name];
    assert.deepEqual([field("entries-added"), field("length")], [1, 0], "the request was published, then withdrawn");
    assert.equal(f.runs.get("local:charge:n1"), 1);
    assert.equal(f.runs.get("tools:charge:n1") ?? 0, 0);
  } finally {
    await f?.stop();
    await own.stop();
  }
});

test(
  "calls in flight when Redis restarts empty settle within ~2 s of its return: read-only ones resent, the others unavailable",
  { timeout: 60_000 },
  async (t) => {
    const own = await OwnRedis.start();
    let f: Fleet | undefined;
    try {
      // A timeout far longer than the budget: settling at it would fail the test.
      f = await fleet(own, 20, false);
      const fl = f;
      // Published, and not yet read by any worker when Redis dies: no reply can ever come for them.
      await aliveButIdleWorker(f.redis, f.keys, f.keys.toolsStream, "tools", "idle");
      const settled = <T>(p: Promise<T>): Promise<{ value: T; at: number }> => p.then((value) => ({ value, at: Date.now() }));
      const charge = settled(fl.registry.execute("charge", { id: "x1", ms: 0 }, { userId: "u", ctx: fl.ctx() }));
      const lookup = settled(fl.registry.execute("lookup", { id: "y1", ms: 0 }, { userId: "u", ctx: fl.ctx() }));
      await eventually(async () => assert.equal(await fl.redis.xLen(fl.keys.toolsStream), 2), 10_000);
      const backAt = await restartEmpty(own);
      // A worker serves the restarted Redis.
      await f.startWorker();
      const [c, l] = await Promise.all([charge, lookup]);
      t.diagnostic(`charge settled ${c.at - backAt} ms after Redis came back; lookup ${l.at - backAt} ms`);

      // Not idempotent: the caller cannot tell whether it ran, so it is neither resent nor run here.
      assert.equal(c.value.kind, "unavailable");
      assert.equal(c.value.text, lostInRestart("charge"));
      assert.equal(c.value.route, "remote");
      assert.ok(c.at - backAt <= SETTLE_BUDGET_MS, `charge settled ${c.at - backAt} ms after Redis came back`);
      assert.equal(f.runs.get("local:charge:x1") ?? 0, 0);
      assert.equal(f.registry.stats.fallbacksRefused, 1);

      // Read-only: sent again to the restarted Redis, and answered by the worker there.
      assert.equal(l.value.kind, "ok", l.value.text);
      assert.equal(l.value.text, "tools found y1");
      assert.equal(l.value.route, "remote");
      assert.ok(l.at - backAt <= SETTLE_BUDGET_MS, `lookup settled ${l.at - backAt} ms after Redis came back`);
      assert.equal(f.registry.stats.fallbacks, 0);
      await sleep(300);
      assert.equal(f.runs.get("tools:charge:x1") ?? 0, 0, "the lost request is not run by the new worker");
    } finally {
      await f?.stop();
      await own.stop();
    }
  },
);

test(
  "a Redis that stalls while a worker runs a non-idempotent call: the call ends as unavailable soon after its timeout, not when Redis answers again",
  { timeout: 60_000 },
  async () => {
    const own = await OwnRedis.start();
    let f: Fleet | undefined;
    try {
      f = await fleet(own, 1);
      const fl = f;
      const started = Date.now();
      const call = fl.registry.execute("charge", { id: "s1", ms: 5000 }, { userId: "u", ctx: fl.ctx() });
      await eventually(() => assert.equal(fl.runs.get("tools:charge:s1"), 1), 10_000);
      // Redis holds every connection open and answers nothing: the call times out, and the check that its
      // request never started (which must come back "pending" or not at all) is bounded.
      own.pause();
      const out = await call;
      const tookMs = Date.now() - started;
      assert.equal(out.kind, "unavailable", `${out.kind}: ${out.text}`);
      assert.notEqual(out.route, "fallback");
      assert.equal(f.runs.get("local:charge:s1") ?? 0, 0, "not run again locally");
      assert.ok(tookMs <= 1000 + CANCEL_UNSTARTED_WAIT_MS + 1500, `the call took ${tookMs} ms with Redis stalled`);
      assert.equal(f.registry.stats.fallbacksRefused, 1);
    } finally {
      own.resume();
      await f?.stop();
      await own.stop();
    }
  },
);
