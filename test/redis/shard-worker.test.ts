import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { registryFor } from "../../src/fleet/local.js";
import { defineConfig, defineTool, staticConfig } from "../../src/index.js";
import { ToolsClient } from "../../src/tool-exec/client.js";
import { closeRedis } from "../../src/redis/client.js";
import { ToolExecServer } from "../../src/tool-exec/server.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";
import { identity, wireCtx } from "../support/wire-samples.js";

test("one worker reading 3 shards keeps to its one concurrency limit, answers every call once, and beats once with the totals", async (t) => {
  const logger = new RecordingLogger();
  const redis = await connect(REDIS_URL, logger);
  const k = testKeys();
  const config = staticConfig(defineConfig({ backgroundThreshold: 0 }));
  const load = { now: 0, max: 0 };
  const slow = defineTool({
    name: "slow",
    description: "Works for a while, counting how many run at once.",
    parameters: z.object({ i: z.number() }),
    handler: async ({ i }) => {
      load.max = Math.max(load.max, ++load.now);
      await sleep(150);
      load.now--;
      return `did ${i}`;
    },
  });
  const concurrency = 4;
  const service = new ToolExecServer({
    redis,
    redisUrl: REDIS_URL,
    keys: k,
    registry: registryFor({ tools: [slow], permissions: {} }, config, logger),
    config,
    logger,
    workerId: "sw-1",
    shards: 3,
    worker: { blockMs: 200, concurrency },
  });
  const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "sw-caller", logger, blockMs: 200 });
  const shards = [0, 1, 2].map((i) => k.poolShardStream("default", i));
  try {
    await service.start();
    await client.start();
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        client.call({ toolName: "slow", toolArgs: { i }, userId: "u", schemaHash: "", ctx: wireCtx("u"), identity: identity("u"), timeoutMs: 20_000, shards }),
      ),
    );
    replies.forEach((r, i) => assert.deepEqual([r.status, r.result], ["ok", `did ${i}`]));
    t.diagnostic(`at most ${load.max} ran at once (limit ${concurrency})`);
    // The three readers each ask for their share of the free slots: at most the limit plus K - 1, not 3 × it.
    assert.ok(load.max >= concurrency && load.max <= concurrency + 2, `at most ${load.max} ran at once`);
    // Every shard took calls (entries-added, which trimming does not lower; RESP3 answers a map).
    for (const s of shards) {
      const info = await redis.sendCommand<unknown>(["XINFO", "STREAM", s]);
      const added: unknown =
        info instanceof Map
          ? info.get("entries-added")
          : Array.isArray(info)
            ? info[info.indexOf("entries-added") + 1]
            : (info as Record<string, unknown>)["entries-added"];
      assert.ok(Number(added) > 0, `${s}: ${String(added)} entries`);
    }
    const beat = await eventually(
      async () => {
        const raw = await redis.get(k.heartbeat("tools", "sw-1"));
        assert.ok(raw);
        const record = JSON.parse(raw) as { shards?: number; processed?: number };
        assert.equal(record.processed, 30);
        return record;
      },
      5000,
      100,
    );
    assert.equal(beat.shards, 3);
  } finally {
    await client.stop();
    await service.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
