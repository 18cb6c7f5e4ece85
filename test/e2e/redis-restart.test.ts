import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { loadToolModule } from "../../src/fleet/load-tools.js";
import { registryFor } from "../../src/fleet/local.js";
import { ToolsClient, type ToolCall } from "../../src/tool-exec/client.js";
import { defineConfig, staticConfig } from "../../src/index.js";
import { closeRedis, connectRedis, type RedisNode } from "../../src/redis/client.js";
import { ToolExecServer } from "../../src/tool-exec/server.js";
import { RecordingLogger } from "../support/helpers.js";
import { OwnRedis, echoCall, testKeys } from "../support/redis-helpers.js";
import { ToolfleetError } from "../../src/core/errors.js";

// Requirement: Redis restarted under load — every in-flight call resolves (a
// result or a clear error) within its timeout, no read loop hangs, and the
// worker serves again within 2 s of Redis coming back. The Redis is the test's
// own (a free port), never the shared one: it is SIGKILLed and comes back EMPTY.

const LOOPS = 12;
const CALL_TIMEOUT_MS = 3000;
/** How late after its timeout a call may settle (event-loop and teardown jitter). */
const SETTLE_SLACK_MS = 1500;
const RECOVERY_BUDGET_MS = 2000;
/**
 * Besides the closed loops, a call starts every this many ms whatever the
 * others are doing: the loops all sit on calls that Redis lost in the crash
 * until those time out, and recovery must be measured by calls that could
 * start as soon as Redis was back.
 */
const ARRIVAL_EVERY_MS = 50;

interface CallRecord {
  /** The closed loop that made it, or -1 for the open-loop arrivals. */
  loop: number;
  startedAt: number;
  endedAt?: number;
  /** `ok`, `reply:<code>` (an error reply), `ToolfleetError:<code>` (no reply: TIMEOUT, STOPPED, PUBLISH_FAILED), `wrong-result` or `error:<name>`. */
  outcome?: string;
  message?: string;
}

function toolCall(text: string): ToolCall {
  return echoCall(text, CALL_TIMEOUT_MS);
}

test("Redis restarted empty under load: every call settles in time, read loops recover, the worker serves again within 2 s", { timeout: 60_000 }, async (t) => {
  const own = await OwnRedis.start();
  const logger = new RecordingLogger();
  let redis: RedisNode | undefined;
  let callerRedis: RedisNode | undefined;
  let service: ToolExecServer | undefined;
  let client: ToolsClient | undefined;
  let loadOn = true;
  let loops: Promise<void>[] = [];
  try {
    redis = await connectRedis({ url: own.url, logger, name: "svc" });
    const k = testKeys();
    const config = staticConfig(defineConfig({ toolsExecTimeout: 3 }));
    const registry = registryFor(await loadToolModule(), config, logger);
    service = new ToolExecServer({
      redis,
      redisUrl: own.url,
      keys: k,
      registry,
      config,
      logger,
      workerId: "w1",
      worker: { blockMs: 500, watchdogGraceMs: 1000, leaseMs: 2000 },
    });
    await service.start();
    callerRedis = await connectRedis({ url: own.url, logger, name: "caller" });
    const caller = new ToolsClient({ redis: callerRedis, redisUrl: own.url, keys: k, workerId: "caller1", logger, blockMs: 500 });
    client = caller;
    await caller.start();

    // ── steady load ───────────────────────────────────────────────────────
    const calls: CallRecord[] = [];
    const one = async (n: number, text: string): Promise<CallRecord> => {
      const rec: CallRecord = { loop: n, startedAt: Date.now() };
      calls.push(rec);
      try {
        const reply = await caller.call(toolCall(text));
        if (reply.status !== "ok") {
          rec.outcome = `reply:${reply.error?.code ?? reply.status}`;
          rec.message = reply.error?.message ?? reply.result;
        } else if (reply.result !== text) {
          rec.outcome = "wrong-result";
          rec.message = `expected '${text}', got '${reply.result}'`;
        } else {
          rec.outcome = "ok";
        }
      } catch (err) {
        rec.outcome = err instanceof ToolfleetError ? `ToolfleetError:${err.code}` : `error:${err instanceof Error ? err.name : typeof err}`;
        rec.message = err instanceof Error ? err.message : String(err);
      }
      rec.endedAt = Date.now();
      return rec;
    };
    const loop = async (n: number): Promise<void> => {
      for (let i = 0; loadOn; i++) {
        const rec = await one(n, `loop${n}-call${i}`);
        // A fast failure must not become a hot spin while Redis is away.
        if (rec.outcome !== "ok") await sleep(20);
      }
    };
    const arrivals = async (): Promise<void> => {
      const started: Promise<CallRecord>[] = [];
      for (let i = 0; loadOn; i++) {
        started.push(one(-1, `arrival-call${i}`));
        await sleep(ARRIVAL_EVERY_MS);
      }
      await Promise.all(started);
    };
    loops = [...Array.from({ length: LOOPS }, (_, n) => loop(n)), arrivals()];

    await sleep(1000);
    const before = calls.filter((c) => c.outcome === "ok").length;
    assert.ok(before > 0, "load is flowing before the restart");

    // ── the restart ───────────────────────────────────────────────────────
    const killedAt = Date.now();
    await own.kill();
    await sleep(1000);
    const spawnedAt = Date.now();
    await own.up(); // same port, EMPTY: no groups, no catalog, no session records
    const cameBackAt = Date.now();
    t.diagnostic(`redis down ${spawnedAt - killedAt} ms; accepting connections ${cameBackAt - spawnedAt} ms after spawn`);

    await sleep(3000);
    loadOn = false;
    // Every loop's last call ends within its timeout; past that (plus slack) something hangs.
    const allDone = await Promise.race([Promise.all(loops).then(() => true), sleep(CALL_TIMEOUT_MS + SETTLE_SLACK_MS + 500, false, { ref: false })]);
    const stoppedAt = Date.now();

    // ── (a) every call settled, in time, with a clear outcome ─────────────
    const counts = new Map<string, number>();
    for (const c of calls) counts.set(c.outcome ?? "UNSETTLED", (counts.get(c.outcome ?? "UNSETTLED") ?? 0) + 1);
    const summary = [...counts].map(([o, n]) => `${o}=${n}`).join(" ");
    t.diagnostic(`calls: ${calls.length} (${summary})`);
    const examples = new Map<string, string>();
    for (const c of calls) if (c.outcome && c.outcome !== "ok" && !examples.has(c.outcome)) examples.set(c.outcome, c.message ?? "");
    for (const [o, m] of examples) t.diagnostic(`  e.g. ${o}: ${m}`);
    const logLines = new Map<string, number>();
    for (const r of logger.records)
      if (r.level === "warn" || r.level === "error") logLines.set(`${r.level} ${r.msg}`, (logLines.get(`${r.level} ${r.msg}`) ?? 0) + 1);
    for (const [line, n] of logLines) t.diagnostic(`  log: ${line} x${n}`);

    const unsettled = calls.filter((c) => c.endedAt === undefined);
    assert.equal(allDone, true, `load loops still waiting ${stoppedAt - cameBackAt} ms after Redis came back`);
    assert.deepEqual(
      unsettled.map((c) => `loop${c.loop} started +${c.startedAt - killedAt} ms`),
      [],
      "calls that never settled",
    );
    const late = calls.filter((c) => c.endedAt !== undefined && c.endedAt - c.startedAt > CALL_TIMEOUT_MS + SETTLE_SLACK_MS);
    assert.deepEqual(
      late.map((c) => `loop${c.loop} took ${(c.endedAt ?? 0) - c.startedAt} ms (${c.outcome})`),
      [],
      `calls that settled later than their ${CALL_TIMEOUT_MS} ms timeout + ${SETTLE_SLACK_MS} ms`,
    );
    const maxDuration = Math.max(...calls.map((c) => (c.endedAt ?? 0) - c.startedAt));
    t.diagnostic(`longest call: ${maxDuration} ms`);
    for (const c of calls) {
      assert.ok(
        c.outcome === "ok" || c.outcome?.startsWith("ToolfleetError:") || c.outcome?.startsWith("reply:"),
        `unclear outcome ${c.outcome}: ${c.message}`,
      );
      if (c.outcome !== "ok") assert.ok((c.message ?? "").trim().length > 10, `an error without a clear message: ${c.outcome}`);
    }
    assert.ok(
      calls.some((c) => c.outcome === "ok" && c.startedAt >= cameBackAt),
      "calls succeed again after the restart",
    );
    const failedAfter = calls.filter((c) => c.outcome !== "ok" && c.startedAt >= cameBackAt);
    t.diagnostic(
      `calls started after Redis came back that failed: ${failedAfter.length} ${failedAfter.map((c) => `[+${c.startedAt - cameBackAt} ms ${c.outcome}]`).join(" ")}`,
    );
    // Only what Redis lost in the crash may fail: a call made once it is back gets its reply.
    assert.deepEqual(
      failedAfter.map((c) => `+${c.startedAt - cameBackAt} ms ${c.outcome}: ${c.message}`),
      [],
      "calls started after Redis came back must succeed",
    );

    // ── (b) the worker serves again within 2 s of Redis coming back ───────
    const firstOk = calls.filter((c) => c.outcome === "ok" && c.startedAt >= cameBackAt).sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0))[0];
    assert.ok(firstOk?.endedAt !== undefined);
    const recoveryMs = firstOk.endedAt - cameBackAt;
    t.diagnostic(
      `first successful call started after the restart finished ${recoveryMs} ms after Redis came back (${firstOk.endedAt - spawnedAt} ms after spawn)`,
    );
    console.log(
      `redis-restart: recovery ${recoveryMs} ms; failed after restart ${failedAfter.length}; calls ${calls.length} (${summary}); longest call ${maxDuration} ms`,
    );
    assert.ok(recoveryMs <= RECOVERY_BUDGET_MS, `recovered in ${recoveryMs} ms; budget ${RECOVERY_BUDGET_MS} ms`);

    // ── (c) no read loop is stuck ──────────────────────────────────────────
    assert.equal(service.worker.healthy, true, "the service worker's read loop makes progress");
    assert.equal(caller.healthy, true, "the client's reply read loop makes progress");
    const after = await caller.call(toolCall("after"));
    assert.equal(after.status, "ok");
    assert.equal(after.result, "after");
  } finally {
    // ── (d) everything stops cleanly; the process must exit by itself ────
    loadOn = false;
    await Promise.race([Promise.allSettled(loops), sleep(CALL_TIMEOUT_MS + SETTLE_SLACK_MS, undefined, { ref: false })]);
    await client?.stop();
    await service?.stop(5000);
    await closeRedis(callerRedis);
    await closeRedis(redis);
    await own.stop();
  }
});

test("a call made while Redis is down for longer than its timeout settles at its timeout", { timeout: 30_000 }, async () => {
  const own = await OwnRedis.start();
  const logger = new RecordingLogger();
  let callerRedis: RedisNode | undefined;
  let client: ToolsClient | undefined;
  try {
    callerRedis = await connectRedis({ url: own.url, logger, name: "caller" });
    const caller = new ToolsClient({ redis: callerRedis, redisUrl: own.url, keys: testKeys(), workerId: "caller1", logger, blockMs: 500 });
    client = caller;
    await caller.start();
    await own.kill();
    // The publish waits in node-redis's offline queue; the deadline must cover that wait.
    const startedAt = Date.now();
    const settled = caller.call({ ...toolCall("down"), timeoutMs: 1000 }).then(
      () => ({ at: Date.now(), err: undefined as unknown }),
      (err: unknown) => ({ at: Date.now(), err }),
    );
    const early = await Promise.race([settled, sleep(1000 + SETTLE_SLACK_MS, undefined, { ref: false })]);
    await own.up();
    const outcome = early ?? (await settled);
    assert.ok(outcome.err instanceof ToolfleetError && outcome.err.code === "TIMEOUT", `expected a TIMEOUT, got ${String(outcome.err)}`);
    assert.ok(outcome.at - startedAt <= 1000 + SETTLE_SLACK_MS, `settled ${outcome.at - startedAt} ms after it started (timeout 1000 ms)`);
  } finally {
    await client?.stop();
    await closeRedis(callerRedis);
    await own.stop();
  }
});
