import assert from "node:assert/strict";
import { test } from "node:test";
import { createCaller, defineConfig, silentLogger, staticConfig, ToolContext } from "../../src/index.js";
import { closeRedis } from "../../src/redis/client.js";
import { wireContextOf } from "../../src/tool-exec/client.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

// Requirement: a call cancelled before its request's XADD has answered (the entry is in the stream, the
// caller does not know its id yet) is still withdrawn, so no worker that comes later runs it. The cancel
// used to go out without the id then, and left the request behind in about half such races.
test("a call cancelled as soon as its request is in the stream is withdrawn, every time", async () => {
  const k = testKeys();
  const redis = await connect();
  const config = staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false }));
  const caller = createCaller({ config, logger: silentLogger, workerId: "cancel-early-caller" });
  const stream = k.poolStream("nobody");
  try {
    await caller.start();
    const client = caller.registry.toolsClient!;
    const ctx = new ToolContext({ userId: "u" });
    let leftBehind = 0;
    for (let i = 0; i < 50; i++) {
      const abort = new AbortController();
      const call = client.call({
        toolName: "mark_once",
        toolArgs: { i },
        userId: "u",
        schemaHash: "",
        ctx: wireContextOf(ctx),
        identity: ctx.identity(),
        timeoutMs: 30_000,
        stream,
        signal: abort.signal,
      });
      // Cancelled the moment the entry is there: mostly before the caller has read the XADD's answer.
      const seen = Date.now() + 5000;
      while ((await redis.xLen(stream)) < 1) assert.ok(Date.now() < seen, "the request never reached its stream");
      abort.abort("not needed");
      await assert.rejects(call, (err: unknown) => err instanceof Error && /cancel/i.test(err.message));
      const gone = Date.now() + 2000;
      while ((await redis.xLen(stream)) > 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 5));
      if ((await redis.xLen(stream)) > 0) {
        leftBehind++;
        await redis.del(stream);
      }
    }
    assert.equal(leftBehind, 0, `${leftBehind} of 50 cancelled requests were left in the stream`);
  } finally {
    await caller.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
