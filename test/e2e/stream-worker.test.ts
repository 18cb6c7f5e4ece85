// The stream engine against the real Redis while this process itself stalls,
// with another process adding the entry meanwhile.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { BlockingReader } from "../../src/redis/blocking-reader.js";
import { closeRedis } from "../../src/redis/client.js";
import { ensureGroup, type StreamEntry } from "../../src/redis/streams.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

test("after a stall of the process itself, a reply already in the socket is delivered, not dropped with the connection", { timeout: 30_000 }, async () => {
  const redis = await connect();
  const k = testKeys();
  const logger = new RecordingLogger();
  const stream = k.toolsReplyStream("stall");
  await ensureGroup(redis, stream, k.group(stream), "$");
  // NOACK, as a reply inbox reads: an entry read and then dropped is gone for good.
  const reader = new BlockingReader({
    redis,
    redisUrl: REDIS_URL,
    logger,
    name: "stall",
    stream,
    group: k.group(stream),
    consumer: "c",
    groupStart: "$",
    blockMs: 1000,
    watchdogGraceMs: 100,
    noAck: true,
  });
  const delivered: StreamEntry[] = [];
  try {
    await reader.open();
    reader.start({ room: () => Promise.resolve(10), onEntries: (entries) => delivered.push(...entries) });
    await sleep(50); // the read is waiting in Redis
    // Another process adds the entry while this one is busy (its watchdog comes due meanwhile).
    const script = `const { createClient } = await import("redis"); const c = createClient({ url: ${JSON.stringify(REDIS_URL)} }); await c.connect(); await new Promise((r) => setTimeout(r, 300)); await c.sendCommand(["XADD", ${JSON.stringify(stream)}, "*", "f", "v"]); await c.close();`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: process.cwd(), stdio: "inherit" });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    // A long synchronous task, past the read's block time and grace (1.1 s). Run from the event
    // loop's check phase, so the next turn starts with its timers, the watchdog's among them.
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        const busyUntil = Date.now() + 1600;
        while (Date.now() < busyUntil) {
          // busy
        }
        resolve();
      }),
    );
    await exited;
    await eventually(() => assert.equal(delivered.length, 1), 3000);
    assert.ok(!logger.at("warn").some((r) => r.msg === "blocking read stalled; replacing its connection"), "the connection was kept");
  } finally {
    await reader.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
