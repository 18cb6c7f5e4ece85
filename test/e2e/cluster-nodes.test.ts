// Redis Cluster edges (found in the review of issue #23): a node listed in TOOLFLEET_REDIS_CLUSTER_NODES
// that is down while the cluster itself is fine (the state right after a failover, until that node is
// replaced) must not stop a fleet from connecting: "a few are enough to find the rest" (README). A
// pipeline must not send a command whose keys span slots to one node. The ACL users of docs/security.md
// connect, and a user refused the commands a cluster client needs stops at once with the reason. A cluster
// of this file's own; skipped where redis-server is absent.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ToolfleetError } from "../../src/core/errors.js";
import { closeRedis, connectFleetRedis, duplicateConnection } from "../../src/redis/client.js";
import { slotOf } from "../../src/redis/slots.js";
import { extendClaimArgs } from "../../src/tool-exec/idempotency.js";
import { RecordingLogger } from "../support/helpers.js";
import { CLI, REDIS_URL, exited, freePort, startToolsProcess, testKeys, type CliChild } from "../support/redis-helpers.js";
import { OwnCluster, clusterUnavailable } from "../support/own-cluster.js";

const run = promisify(execFile);
const skip = clusterUnavailable();
const TRIES = 12;

describe("Redis Cluster: a listed node down, cross-slot pipelines, ACL users", { skip: skip ?? false }, () => {
  let cluster: OwnCluster;
  /** The node list with a port nothing listens on first, then the live nodes. */
  let nodes: string[];
  before(async () => {
    cluster = await OwnCluster.start();
    nodes = [`127.0.0.1:${await freePort()}`, ...cluster.nodeList.split(",").slice(0, 2)];
  });
  after(async () => {
    await cluster?.stop();
  });

  test("connectFleetRedis (no wait) and duplicateConnection connect every time through the live nodes", { timeout: 60_000 }, async () => {
    const logger = new RecordingLogger();
    const failures: string[] = [];
    for (let i = 0; i < TRIES; i++) {
      try {
        await closeRedis(await connectFleetRedis({ url: REDIS_URL, clusterNodes: nodes, logger, waitForRedis: false }));
      } catch (err) {
        failures.push(`connectFleetRedis: ${(err as Error).message}`);
      }
    }
    const main = await connectFleetRedis({ url: REDIS_URL, clusterNodes: nodes, logger });
    try {
      for (let i = 0; i < TRIES; i++) {
        try {
          await closeRedis(await duplicateConnection(main, { url: REDIS_URL, logger }));
        } catch (err) {
          failures.push(`duplicateConnection: ${(err as Error).message}`);
        }
      }
    } finally {
      await closeRedis(main);
    }
    assert.deepEqual(failures, [], `${failures.length} of ${2 * TRIES} connections failed`);
  });

  test("a connection emits 'ready' only when the cluster is whole again after a failure, not as each node first connects", { timeout: 30_000 }, async () => {
    const logger = new RecordingLogger();
    const main = await connectFleetRedis({ url: REDIS_URL, clusterNodes: nodes, logger, waitForRedis: false });
    // A duplicate connects to a node when first sent a command there (src/redis/cluster.ts): a key on every master.
    const copy = await duplicateConnection(main, { url: REDIS_URL, logger, name: "ready-count" });
    let readies = 0;
    copy.on("ready", () => readies++);
    try {
      const k = testKeys();
      const masters = new Set<number>();
      for (let i = 0; masters.size < 3 && i < 1000; i++) {
        const key = `${k.namespace}:spread:${i}`;
        const master = await cluster.masterOf(slotOf(key));
        if (masters.has(master)) continue;
        masters.add(master);
        assert.equal(await copy.get(key), null);
      }
      assert.equal(masters.size, 3, "a key on each master");
      // ToolsClient takes a 'ready' for a reconnect to a Redis that may have lost writes (src/tool-exec/client.ts).
      assert.equal(readies, 0, "no 'ready' for a node's first connect");
    } finally {
      await closeRedis(copy);
      await closeRedis(main);
    }
  });

  test("tools workers started with that node list all become ready", { timeout: 90_000 }, async () => {
    const k = testKeys();
    const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_CLUSTER_NODES: nodes.join(",") };
    const procs: CliChild[] = [];
    const failures: string[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        try {
          procs.push(await startToolsProcess(["--worker-id", `seed-${i}`], env));
        } catch (err) {
          failures.push((err as Error).message.split("\n").slice(-2).join(" "));
        }
      }
    } finally {
      for (const p of procs) p.kill("SIGTERM");
      await Promise.all(procs.map(exited));
    }
    assert.deepEqual(failures, []);
  });

  test("toolfleet up runs the distributed fleet on the cluster, not in one process", { timeout: 90_000 }, async () => {
    const k = testKeys();
    const { stdout } = await run(process.execPath, [CLI, "up", "--port", "0", "--tools-workers", "1", "--exit-after-walkthrough"], {
      env: {
        ...process.env,
        TOOLFLEET_NAMESPACE: k.namespace,
        TOOLFLEET_REDIS_CLUSTER_NODES: nodes.join(","),
        TOOLFLEET_LOG_LEVEL: "warn",
        TOOLFLEET_LLM_API_KEY: "",
      },
      timeout: 80_000,
    });
    assert.doesNotMatch(stdout, /in_process mode/);
    assert.match(stdout, /a distributed fleet on the Redis Cluster/);
  });

  test(
    "the lease tick's pipeline (claims extended, then the MGET of the cancel marks) is not refused when a mark shares the last claim's slot",
    { timeout: 30_000 },
    async () => {
      // As ToolServer.extendClaims builds it (src/tool-exec/server.ts): one PEXPIRE per running call, then
      // ControlCalls.markCheck's MGET (src/redis/control.ts). Two running calls, found so that the first
      // mark's slot is the last claim's (1 in 16384 per tick by chance): the client then puts the MGET,
      // whose keys span two slots, in one node's pipeline.
      const k = testKeys();
      let a = "";
      let b = "";
      // Ids as callers make them (hex, not a counter: CRC16 is linear, so ids must vary in many bits);
      // a bounded search, about 12 matches expected in 200,000 tries.
      for (let i = 0; i < 200_000 && !a; i++) {
        const [x, y] = [`tr:${randomBytes(8).toString("hex")}`, `tr:${randomBytes(8).toString("hex")}`];
        if (slotOf(k.cancelMark(x)) === slotOf(k.idempotency(y)) && slotOf(k.cancelMark(x)) !== slotOf(k.cancelMark(y))) [a, b] = [x, y];
      }
      assert.ok(a && b, "two ids whose keys fall as described");
      const redis = await connectFleetRedis({ url: REDIS_URL, clusterNodes: cluster.nodeList.split(","), logger: new RecordingLogger(), waitForRedis: false });
      try {
        const tick = redis.multi();
        for (const id of [a, b]) tick.addCommand(extendClaimArgs(k, id, 1000));
        tick.addCommand(["MGET", k.cancelMark(a), k.cancelMark(b)]);
        const results = await tick.execAsPipeline();
        assert.deepEqual(results.at(-1), [null, null]);
      } finally {
        await closeRedis(redis);
      }
    },
  );

  test("the tools tier's ACL user of docs/security.md connects to the cluster (README: ACL users as for one node)", { timeout: 30_000 }, async () => {
    const k = testKeys();
    const password = "tools-pw-0123456789";
    // The tools user's ACL SETUSER lines of docs/security.md §1, on every node (a cluster's ACLs are per node).
    const doc = readFileSync(new URL("../../../docs/security.md", import.meta.url), "utf8");
    const lines = doc.split("\n").filter((l) => l.startsWith("ACL SETUSER toolfleet-tools "));
    assert.ok(lines.length >= 3, "docs/security.md lists the tools user");
    for (const port of cluster.ports)
      for (const line of lines) {
        const text = line.replaceAll("<ns>", k.namespace).replace("<tools-password>", password);
        await cluster.ask(
          port,
          [...text.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!),
        );
      }
    const url = `redis://toolfleet-tools:${password}@127.0.0.1:${cluster.ports[0]}`;
    const redis = await connectFleetRedis({ url, clusterNodes: cluster.nodeList.split(","), logger: new RecordingLogger(), waitForRedis: false });
    await closeRedis(redis);
  });

  test("a user without CLUSTER SLOTS, or a wrong password, stops a waiting connect at once with the reason", { timeout: 30_000 }, async () => {
    const user = `tf-noperm-${randomBytes(4).toString("hex")}`;
    for (const port of cluster.ports) await cluster.ask(port, ["ACL", "SETUSER", user, "reset", "on", ">pw-0123456789", "+@connection", "+ping"]);
    try {
      for (const [url, reason] of [
        [`redis://${user}:pw-0123456789@127.0.0.1:${cluster.ports[0]}`, /NOPERM.*\+cluster\|slots and \+cluster\|shards/],
        [`redis://${user}:wrong@127.0.0.1:${cluster.ports[0]}`, /WRONGPASS/],
      ] as const) {
        const logger = new RecordingLogger();
        // waitForRedis (the workers' default) would retry a node that is not up yet: a refusal must not be.
        await assert.rejects(
          connectFleetRedis({ url, clusterNodes: nodes, logger, waitForRedis: { logEveryMs: 1000 } }),
          (err: unknown) =>
            err instanceof ToolfleetError && err.code === "REDIS_UNAVAILABLE" && reason.test(err.message) && nodes.every((n) => err.message.includes(n)),
        );
      }
    } finally {
      for (const port of cluster.ports) await cluster.ask(port, ["ACL", "DELUSER", user]);
    }
  });
});
