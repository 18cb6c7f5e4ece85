import assert from "node:assert/strict";
import { test } from "node:test";
import { loadToolModule } from "../../src/fleet/load-tools.js";
import { registryFor } from "../../src/fleet/local.js";
import { ToolRegistry, defineConfig, staticConfig } from "../../src/index.js";
import { RemoteToolRegistry } from "../../src/inference/remote-registry.js";
import { ToolsClient } from "../../src/tool-exec/client.js";
import { closeRedis, connectRedis } from "../../src/redis/client.js";
import { ToolExecServer } from "../../src/tool-exec/server.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { OwnRedis, echoCall, testKeys } from "../support/redis-helpers.js";

test("a blocking read that never returns is replaced, and the worker serves again", { timeout: 60_000 }, async () => {
  const own = await OwnRedis.start();
  const logger = new RecordingLogger();
  const redis = await connectRedis({ url: own.url, logger, name: "svc" });
  const control = await connectRedis({ url: own.url, logger, name: "control" });
  const k = testKeys();
  const config = staticConfig(defineConfig({ backgroundThreshold: 0 }));
  const service = new ToolExecServer({
    redis,
    redisUrl: own.url,
    keys: k,
    registry: registryFor(await loadToolModule(), config, logger),
    config,
    logger,
    workerId: "w-stuck",
    worker: { blockMs: 200, watchdogGraceMs: 300 },
  });
  const client = new ToolsClient({ redis, redisUrl: own.url, keys: k, workerId: "caller", logger, blockMs: 200 });
  try {
    await service.start();
    await client.start();
    assert.equal(service.worker.healthy, true);
    // Redis stops answering everyone (the socket stays open): reads neither return nor fail.
    await control.sendCommand(["CLIENT", "PAUSE", "1500", "ALL"]);
    await eventually(() => assert.equal(service.worker.healthy, false), 3000);
    await eventually(() => assert.ok(logger.at("warn").some((r) => r.msg === "blocking read stalled; replacing its connection")), 3000);
    // Once Redis answers again, the loop is live and calls go through.
    await eventually(() => assert.equal(service.worker.healthy, true), 5000);
    const reply = await client.call(echoCall("after the stall", 5000));
    assert.equal(reply.result, "after the stall");
    const beat = JSON.parse((await redis.get(k.heartbeat("tools", "w-stuck"))) ?? "{}") as { healthy?: boolean; workerId?: string };
    assert.equal(beat.workerId, "w-stuck");
  } finally {
    await client.stop();
    await service.stop();
    await closeRedis(control);
    await closeRedis(redis);
    await own.stop();
  }
});

test("stopping the caller while a publish waits for a dead Redis fails the call cleanly", { timeout: 30_000 }, async () => {
  const own = await OwnRedis.start();
  const logger = new RecordingLogger();
  const redis = await connectRedis({ url: own.url, logger, name: "caller" });
  const client = new ToolsClient({ redis, redisUrl: own.url, keys: testKeys(), workerId: "stopper", logger, blockMs: 200 });
  try {
    await client.start();
    await own.kill();
    const pending = client.call(echoCall("never sent", 20_000));
    await new Promise((r) => setTimeout(r, 100));
    const stopping = client.stop();
    // It settles at once as STOPPED (or as a failed publish), not at its 20 s timeout, and nothing is left unhandled.
    await assert.rejects(pending, (err: unknown) => err instanceof Error && /stopped|publish/i.test(err.message));
    await stopping;
    assert.equal(client.pendingCount, 0);
  } finally {
    redis.destroy();
    await own.stop();
  }
});

test("a RemoteToolRegistry's stop() ends while Redis answers nobody", { timeout: 60_000 }, async () => {
  const own = await OwnRedis.start();
  const logger = new RecordingLogger();
  const redis = await connectRedis({ url: own.url, logger, name: "inference" });
  const control = await connectRedis({ url: own.url, logger, name: "control" });
  const config = staticConfig(defineConfig({ toolsServiceMode: "remote", backgroundThreshold: 0 }));
  const registry = new RemoteToolRegistry({
    redis,
    redisUrl: own.url,
    keys: testKeys(),
    config,
    local: new ToolRegistry({ config, logger }),
    workerId: "paused",
    logger,
  });
  try {
    await registry.start();
    // Redis stops answering everyone (the sockets stay open) for longer than stop() may take.
    const pausedUntil = Date.now() + 20_000;
    await control.sendCommand(["CLIENT", "PAUSE", "20000", "ALL"]);
    await registry.stop();
    assert.ok(Date.now() < pausedUntil, "stop() returned while Redis was still paused");
    assert.equal(registry.toolsClient, undefined);
  } finally {
    redis.destroy();
    control.destroy();
    await own.stop();
  }
});

test("a catalog subscription Redis refuses fails start() and leaves no connection open", { timeout: 30_000 }, async () => {
  const own = await OwnRedis.start();
  const logger = new RecordingLogger();
  const admin = await connectRedis({ url: own.url, logger, name: "admin" });
  // A user that may use every key and command, but no pub/sub channel.
  await admin.sendCommand(["ACL", "SETUSER", "nochannels", "on", ">pw", "~*", "resetchannels", "+@all"]);
  const url = `redis://nochannels:pw@127.0.0.1:${own.port}`;
  const redis = await connectRedis({ url, logger, name: "inference" });
  const config = staticConfig(defineConfig({ toolsServiceMode: "remote", backgroundThreshold: 0 }));
  const registry = new RemoteToolRegistry({
    redis,
    redisUrl: url,
    keys: testKeys(),
    config,
    local: new ToolRegistry({ config, logger }),
    workerId: "refused",
    logger,
  });
  try {
    await assert.rejects(registry.start(), /NOPERM/);
    assert.equal(registry.toolsClient, undefined, "half started is not started");
    await eventually(async () => {
      const clients = await admin.sendCommand<string>(["CLIENT", "LIST"]);
      assert.doesNotMatch(clients, /name=catalog-watch/);
      assert.doesNotMatch(clients, /name=reply-refused/);
    }, 3000);
  } finally {
    await registry.stop();
    await closeRedis(redis);
    await closeRedis(admin);
    await own.stop();
  }
});
