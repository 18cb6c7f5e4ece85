import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { ToolContext, ToolRegistry, defineConfig, defineTool, staticConfig } from "../../src/index.js";
import { closeRedis } from "../../src/redis/client.js";
import { ToolsClient, wireContextOf } from "../../src/tool-exec/client.js";
import { CANCEL_UNSTARTED_WAIT_MS } from "../../src/tool-exec/idempotency.js";
import { ToolExecServer } from "../../src/tool-exec/server.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { OwnRedis, connect, testKeys } from "../support/redis-helpers.js";

// Requirement: a cancel still reaches the worker running the call when Redis was too slow to prove the call had
// not started (the never-started check gave up after its bound): the marks and the notice go out all the same.
test("a call cancelled while Redis stalls past the never-started check's bound is still cancelled on its worker", { timeout: 60_000 }, async () => {
  const own = await OwnRedis.start();
  const logger = new RecordingLogger();
  const redis = await connect(own.url, logger);
  const k = testKeys();
  const config = staticConfig(defineConfig({ namespace: k.namespace, backgroundThreshold: 0 }));
  let started = 0;
  let abortedAt = 0;
  const tool = defineTool({
    name: "wait_for_cancel",
    description: "Runs until its call is cancelled (or 30 s).",
    parameters: z.object({}),
    handler: async (_args, ctx) => {
      started++;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 30_000);
        ctx.signal.addEventListener("abort", () => {
          abortedAt = Date.now();
          clearTimeout(timer);
          resolve();
        });
      });
      return "done";
    },
  });
  const server = new ToolExecServer({
    redis,
    redisUrl: own.url,
    keys: k,
    registry: new ToolRegistry({ config, logger }).register(tool),
    config,
    logger,
    workerId: "w-stall",
    worker: { blockMs: 200, leaseMs: 30_000 },
  });
  const client = new ToolsClient({ redis, redisUrl: own.url, keys: k, workerId: "caller-stall", logger, blockMs: 200 });
  try {
    await server.start();
    await client.start();
    const ctx = new ToolContext({ userId: "u" });
    const abort = new AbortController();
    const call = client.call({
      toolName: "wait_for_cancel",
      toolArgs: {},
      userId: "u",
      schemaHash: "",
      ctx: wireContextOf(ctx),
      identity: ctx.identity(),
      timeoutMs: 60_000,
      signal: abort.signal,
    });
    await eventually(() => assert.equal(started, 1), 10_000, 20);
    own.pause();
    abort.abort("the user moved on");
    await assert.rejects(call, /cancel/i);
    // Past the check's bound, then Redis answers again: the cancel must still go out.
    await sleep(CANCEL_UNSTARTED_WAIT_MS + 300);
    const resumedAt = Date.now();
    own.resume();
    await eventually(() => assert.ok(abortedAt > 0, "the tool heard the cancel"), 10_000, 50);
    assert.ok(abortedAt - resumedAt < 5000, `the tool heard it ${abortedAt - resumedAt} ms after Redis answered again`);
  } finally {
    own.resume();
    await client.stop();
    await server.stop();
    await closeRedis(redis);
    await own.stop();
  }
});
