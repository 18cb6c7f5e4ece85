import { z } from "zod";
import { parseJson } from "../core/json.js";
import { scanKeys, type RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { POOL_PATTERN } from "../redis/keys.js";
import { readLiveParts } from "../tool-exec/catalog-parts.js";
import { mergeCatalog, shardConflicts, type CatalogConflict, type CatalogPublisher, type ShardConflict } from "../tool-exec/catalog-merge.js";

export interface PoolWorker extends CatalogPublisher {
  /** Stopping: it finishes what it holds, and takes nothing new. */
  draining: boolean;
}

const heartbeatSchema = z.object({
  service: z.string(),
  workerId: z.string(),
  pid: z.number(),
  host: z.string(),
  startedAt: z.number(),
  lastProgressAt: z.number(),
  inFlight: z.number(),
  processed: z.number(),
  deadLettered: z.number(),
  healthy: z.boolean(),
});

export interface WorkerStatus extends z.infer<typeof heartbeatSchema> {
  /** Milliseconds since its read loop last made progress. */
  sinceProgressMs: number;
}

export interface StreamStatus {
  stream: string;
  length: number;
  /** Delivered to a worker and not yet acknowledged. */
  pending: number;
  deadLettered: number;
}

export interface FleetStatus {
  namespace: string;
  /** Workers with a live heartbeat; a dead worker's heartbeat expires within seconds. */
  workers: WorkerStatus[];
  /** Heartbeat records that could not be read (reported, not hidden). */
  unreadable: string[];
  streams: StreamStatus[];
  /** The tools workers publishing catalog parts, by pool (draining ones marked). */
  pools: { pool: string; workers: PoolWorker[] }[];
  /** Tools offered with more than one schema (a rolling deploy). */
  conflicts: CatalogConflict[];
  /** Pools whose live workers read different numbers of shard streams (calls use the fewest). */
  shardConflicts: ShardConflict[];
}

/** What an operator needs to see: live workers from their heartbeats, and the request streams' backlog. */
export async function fleetStatus(redis: RedisClient, k: Keys, now = Date.now()): Promise<FleetStatus> {
  const workers: WorkerStatus[] = [];
  const unreadable: string[] = [];
  for (const service of ["gateway", "inference", "tools"]) {
    const found: string[] = [];
    for await (const batch of scanKeys(redis, `${k.heartbeatPrefix(service)}*`)) found.push(...batch);
    for (const key of found.sort()) {
      const raw = await redis.get(key);
      if (raw === null) continue; // expired between SCAN and GET: that worker is gone
      const beat = parseJson(heartbeatSchema, raw);
      if (beat.ok) workers.push({ ...beat.value, sinceProgressMs: Math.max(0, now - beat.value.lastProgressAt) });
      else unreadable.push(`${key}: ${beat.reason}`);
    }
  }
  // Every publisher, draining ones too, and every pool stream there is (a dead pool's backlog and dead letters
  // matter most when no worker of it is left).
  const { parts, unreadable: badParts } = await readLiveParts(redis, k);
  const merged = mergeCatalog(parts.filter((p) => !p.draining));
  const pools = new Map<string, PoolWorker[]>();
  for (const p of parts) {
    const w = {
      pool: p.pool,
      workerId: p.workerId,
      tools: p.catalog.tools.length,
      schemaHash: p.catalog.schemaHash,
      publishedAt: p.catalog.publishedAt,
      draining: p.draining,
    };
    pools.set(p.pool, [...(pools.get(p.pool) ?? []), w]);
  }
  const poolStreams = new Set<string>();
  for (const pool of pools.keys()) if (k.poolStream(pool) !== k.toolsStream) poolStreams.add(k.poolStream(pool));
  // Shard streams (docs/protocol.md §1.3) of every live worker that reads more than one.
  for (const p of parts) for (let i = 1; i < (p.shards ?? 1); i++) poolStreams.add(k.poolShardStream(p.pool, i));
  const prefix = k.poolStreamPrefix;
  for await (const batch of scanKeys(redis, `${prefix}*`)) for (const key of batch) if (POOL_PATTERN.test(key.slice(prefix.length))) poolStreams.add(key);
  const streams: StreamStatus[] = [];
  for (const stream of [k.chatStream, k.toolsStream, ...[...poolStreams].sort(), k.gatewayStream()]) {
    const length = Number(await redis.sendCommand(["XLEN", stream]));
    let pending = 0;
    try {
      const summary = await redis.sendCommand<unknown[]>(["XPENDING", stream, k.group(stream)]);
      pending = Number(summary[0] ?? 0);
    } catch (err) {
      // NOGROUP: no worker has ever read this stream, so nothing is pending.
      if (!(err instanceof Error && err.message.startsWith("NOGROUP"))) throw err;
    }
    const deadLettered = Number(await redis.sendCommand(["XLEN", k.deadLetter(stream)]));
    streams.push({ stream, length, pending, deadLettered });
  }
  unreadable.push(...badParts);
  return {
    namespace: k.namespace,
    workers,
    unreadable,
    streams,
    pools: [...pools]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([pool, w]) => ({ pool, workers: w.sort((a, b) => (a.workerId < b.workerId ? -1 : a.workerId > b.workerId ? 1 : 0)) })),
    conflicts: merged?.conflicts ?? [],
    shardConflicts: shardConflicts(parts),
  };
}
