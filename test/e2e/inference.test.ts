import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { closeRedis } from "../../src/redis/client.js";
import { REDIS_URL, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

test("after stop(), a process with a started registry exits on its own", { timeout: 30_000 }, async () => {
  const k = testKeys();
  const script = fileURLToPath(new URL("../support/fixtures/start-stop.js", import.meta.url));
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_TEST_REDIS_URL: REDIS_URL },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const started = Date.now();
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  assert.equal(code, 0, output);
  assert.match(output, /started; stopping/);
  // The script never calls process.exit: leaving within a few seconds means no handle was left open.
  assert.ok(Date.now() - started < 15_000);
  const redis = await connect();
  await dropNamespace(redis, k);
  await closeRedis(redis);
});
