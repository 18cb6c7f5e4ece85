import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { closeRedis } from "../../src/redis/client.js";
import { eventually } from "../support/helpers.js";
import { CLI, REDIS_URL, connect, dropNamespace, exited, startToolsProcess, testKeys } from "../support/redis-helpers.js";
import { fleetStatus, type FleetStatus } from "../../src/fleet/status.js";

const run = promisify(execFile);

test("status shows live workers from their heartbeats, and a killed worker as gone", { timeout: 60_000 }, async () => {
  const k = testKeys();
  const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL };
  const a = await startToolsProcess(["--worker-id", "status-a"], env);
  const b = await startToolsProcess(["--worker-id", "status-b"], env);
  const gw = await startToolsProcess(["--worker-id", "status-gw"], env, "gateway");
  const redis = await connect();
  try {
    const names = (s: FleetStatus): string[] => s.workers.map((w) => `${w.service}:${w.workerId}`).sort();
    await eventually(async () => assert.deepEqual(names(await fleetStatus(redis, k)), ["gateway:status-gw", "tools:status-a", "tools:status-b"]));
    const status = await fleetStatus(redis, k);
    assert.ok(status.workers.every((w) => w.healthy && w.inFlight === 0));
    assert.deepEqual(
      status.streams.map((s) => [s.stream, s.length, s.pending, s.deadLettered]),
      [
        [k.chatStream, 0, 0, 0],
        [k.toolsStream, 0, 0, 0],
        [k.gatewayStream(), 0, 0, 0],
      ],
    );

    // The CLI shows the same, as text and as JSON; and the catalog a worker published.
    const text = await run(process.execPath, [CLI, "status"], { env: { ...process.env, ...env } });
    assert.match(text.stdout, /tools\s+status-a\s+alive/);
    assert.match(text.stdout, /\npools:\n {2}default +2 worker\(s\): status-a \(\d+ tools\), status-b \(\d+ tools\)\n/);
    const json = JSON.parse((await run(process.execPath, [CLI, "status", "--json"], { env: { ...process.env, ...env } })).stdout) as FleetStatus;
    assert.equal(json.workers.length, 3);
    const catalog = await run(process.execPath, [CLI, "catalog"], { env: { ...process.env, ...env } });
    assert.match(catalog.stdout, /^catalog [0-9a-f]{12} {2}\d+ tools from 2 worker\(s\) {2}last published \S+\n/);
    assert.match(catalog.stdout, /\npublishers:\n {2}default\/status-a +\d+ tools {2}[0-9a-f]{12}\n {2}default\/status-b +\d+ tools/);
    assert.match(catalog.stdout, /admin_stats\s+[0-9a-f]{12}\s+read-only\s+users: admin/);

    b.kill("SIGKILL");
    await exited(b);
    // Its heartbeat expires (3 beats) and it is no longer listed.
    await eventually(async () => assert.deepEqual(names(await fleetStatus(redis, k)), ["gateway:status-gw", "tools:status-a"]), 15_000, 250);
  } finally {
    // b too, when an assertion failed before its kill: a live child would hold the test process open.
    for (const p of [a, b, gw]) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    await Promise.all([exited(a), exited(b), exited(gw)]);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("catalog says so when none is published", async () => {
  const k = testKeys();
  await assert.rejects(
    run(process.execPath, [CLI, "catalog"], { env: { ...process.env, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL } }),
    (err: unknown) => {
      const e = err as { code: number; stderr: string };
      return (
        e.code === 1 && /^toolfleet catalog: no live tools worker publishes a catalog in namespace tftest-\S+ \(is a tools worker running\?\)\n$/.test(e.stderr)
      );
    },
  );
});
