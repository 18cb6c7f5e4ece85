// A Redis Cluster of a test's own: 3 masters and 3 replicas, each a redis-server on free ports in a
// temporary directory, killed and removed by stop(). One per test file (starting one takes a few seconds).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { createClient } from "redis";
import { freePort } from "./redis-helpers.js";

const run = promisify(execFile);

/** Why a cluster test cannot run here (no redis-server or redis-cli on PATH), or null when it can. */
export function clusterUnavailable(): string | null {
  const onPath = (name: string): boolean =>
    (process.env.PATH ?? "").split(delimiter).some((dir) => {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return true;
      } catch {
        // not in this directory
        return false;
      }
    });
  const missing = ["redis-server", "redis-cli"].filter((name) => !onPath(name));
  return missing.length === 0 ? null : `skipped: ${missing.join(" and ")} not found on PATH (the cluster tests start a Redis Cluster of their own)`;
}

/** One command to the Redis on 127.0.0.1:`port`, on a connection of its own, its reply as it is. */
export async function askNode<T>(port: number, args: string[]): Promise<T> {
  const client = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false, connectTimeout: 1000 } });
  client.on("error", () => undefined); // a node not up yet: the caller's wait retries
  try {
    await client.connect();
    return await client.sendCommand<T>(args);
  } finally {
    if (client.isOpen) client.destroy();
  }
}

interface Node {
  port: number;
  busPort: number;
  process: ChildProcess;
}

/** What `CLUSTER NODES` says of one node. */
export interface ClusterNodeInfo {
  port: number;
  role: "master" | "slave";
  failed: boolean;
}

/** Clusters not stopped yet: killed and removed when the test process exits without stopping them. */
const live = new Set<OwnCluster>();
process.once("exit", () => {
  for (const cluster of live) cluster.killNow();
});

export class OwnCluster {
  private readonly dir = mkdtempSync(join(tmpdir(), "toolfleet-cluster-"));
  private readonly nodes: Node[] = [];
  /** Set once a node was killed: a promoted replica then has no replica of its own. */
  private lostReplica = false;

  private constructor() {
    live.add(this);
  }

  /** 3 masters, 3 replicas; resolves once every node says the cluster is ok, or throws after `deadlineMs`. */
  static async start(deadlineMs = 30_000): Promise<OwnCluster> {
    const cluster = new OwnCluster();
    try {
      for (let i = 0; i < 6; i++) cluster.spawnNode(await freePort(), await freePort());
      await cluster.waitFor(
        async () => (await Promise.all(cluster.nodes.map((n) => cluster.command(n.port, ["PING"])))).every((r) => r === "PONG"),
        deadlineMs,
        "every node to answer PING",
      );
      await run("redis-cli", ["--cluster", "create", ...cluster.nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "1", "--cluster-yes"], {
        timeout: deadlineMs,
      });
      await cluster.waitUntilOk(deadlineMs);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** `host:port,…` for TOOLFLEET_REDIS_CLUSTER_NODES. */
  get nodeList(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(",");
  }

  get ports(): number[] {
    return this.nodes.map((n) => n.port);
  }

  /** Waits until every live node reports `cluster_state:ok` with all slots served, and every replica is in sync. */
  async waitUntilOk(deadlineMs: number): Promise<void> {
    await this.waitFor(
      async () => {
        for (const node of this.nodes.filter((n) => n.process.exitCode === null && n.process.signalCode === null)) {
          const info = await this.command(node.port, ["CLUSTER", "INFO"]);
          if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
          // A replica that has not finished its first sync would lose everything in a failover.
          const replication = await this.command(node.port, ["INFO", "replication"]);
          if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication)) return false;
          if (/role:master/.test(replication) && !/connected_slaves:[1-9]/.test(replication) && !this.lostReplica) return false;
        }
        return true;
      },
      deadlineMs,
      "the cluster to be ok on every node",
    );
  }

  /** Every node as the node on `port` sees it. */
  async topology(port = this.ports[0]!): Promise<ClusterNodeInfo[]> {
    const text = await this.command(port, ["CLUSTER", "NODES"]);
    return text
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [, address = "", flags = ""] = line.split(" ");
        return { port: Number(/:(\d+)@/.exec(address)?.[1]), role: flags.includes("master") ? "master" : "slave", failed: /fail/.test(flags) };
      });
  }

  /** The port of the master that serves `slot`. */
  async masterOf(slot: number, askPort = this.ports[0]!): Promise<number> {
    const shards = await this.ask<unknown[]>(askPort, ["CLUSTER", "SLOTS"]);
    for (const shard of shards as [number, number, [string, number]][]) if (slot >= shard[0] && slot <= shard[1]) return Number(shard[2][1]);
    throw new Error(`no master serves slot ${slot}`);
  }

  /** SIGKILL one node, as in a crash. */
  async kill(port: number): Promise<void> {
    const node = this.nodes.find((n) => n.port === port);
    if (!node || node.process.exitCode !== null || node.process.signalCode !== null) return;
    const exited = new Promise((resolve) => node.process.once("exit", resolve));
    this.lostReplica = true;
    node.process.kill("SIGKILL");
    await exited;
  }

  async stop(): Promise<void> {
    try {
      await Promise.all(this.nodes.map((n) => this.kill(n.port)));
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      live.delete(this);
    }
  }

  /** At exit (no awaiting there): SIGKILL every node still running, remove the directory. */
  killNow(): void {
    for (const n of this.nodes) if (n.process.exitCode === null && n.process.signalCode === null) n.process.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** One command to one node, its reply as text. */
  async command(port: number, args: string[]): Promise<string> {
    return String(await this.ask(port, args));
  }

  /** One command to one node, its reply as it is. */
  ask<T>(port: number, args: string[]): Promise<T> {
    return askNode<T>(port, args);
  }

  private spawnNode(port: number, busPort: number): void {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-port", String(busPort)];
    args.push("--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--dir", this.dir);
    this.nodes.push({ port, busPort, process: spawn("redis-server", args, { stdio: "ignore" }) });
  }

  private async waitFor(check: () => Promise<boolean>, deadlineMs: number, what: string): Promise<void> {
    const until = Date.now() + deadlineMs;
    let last: unknown;
    while (Date.now() < until) {
      try {
        if (await check()) return;
      } catch (err) {
        last = err;
      }
      await sleep(100);
    }
    throw new Error(`waited ${deadlineMs} ms for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ""}`);
  }
}
