import { parseArgs } from "node:util";
import { z } from "zod";
import { LiveConfig } from "../config/live.js";
import { parseJson } from "../core/json.js";
import { createLogger } from "../core/log.js";
import { loadCatalog } from "../tool-exec/catalog.js";
import { closeRedis, connectRedis, type RedisClient } from "../redis/client.js";
import { keys, type Keys } from "../redis/keys.js";

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
}

/** What an operator needs to see: live workers from their heartbeats, and the request streams' backlog. */
export async function fleetStatus(redis: RedisClient, k: Keys, now = Date.now()): Promise<FleetStatus> {
  const workers: WorkerStatus[] = [];
  const unreadable: string[] = [];
  for (const service of ["gateway", "inference", "tools"]) {
    const found: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: `${k.heartbeatPrefix(service)}*`, COUNT: 1000 })) found.push(...batch);
    for (const key of found.sort()) {
      const raw = await redis.get(key);
      if (raw === null) continue; // expired between SCAN and GET: that worker is gone
      const beat = parseJson(heartbeatSchema, raw);
      if (beat.ok) workers.push({ ...beat.value, sinceProgressMs: Math.max(0, now - beat.value.lastProgressAt) });
      else unreadable.push(`${key}: ${beat.reason}`);
    }
  }
  const streams: StreamStatus[] = [];
  for (const stream of [k.chatStream, k.toolsStream, k.gatewayStream()]) {
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
  return { namespace: k.namespace, workers, unreadable, streams };
}

export function formatStatus(status: FleetStatus): string {
  const lines = [`namespace ${status.namespace}`, "", "workers:"];
  if (status.workers.length === 0) lines.push("  (none alive)");
  for (const w of status.workers) {
    lines.push(
      `  ${w.service.padEnd(9)} ${w.workerId.padEnd(28)} ${w.healthy ? "alive  " : "STALLED"} pid ${w.pid}@${w.host}  in flight ${w.inFlight}  processed ${w.processed}  dead-lettered ${w.deadLettered}  last progress ${(w.sinceProgressMs / 1000).toFixed(1)}s ago`,
    );
  }
  for (const u of status.unreadable) lines.push(`  unreadable heartbeat ${u}`);
  lines.push("", "streams:");
  for (const s of status.streams) lines.push(`  ${s.stream.padEnd(32)} length ${s.length}  pending ${s.pending}  dead-lettered ${s.deadLettered}`);
  return lines.join("\n");
}

/** `toolfleet status` and `toolfleet catalog`: read-only views of a running fleet. */
export async function runInspect(kind: "status" | "catalog", argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { redis: { type: "string" }, json: { type: "boolean", default: false } } });
  const logger = createLogger(`toolfleet.${kind}`, process.env.TOOLFLEET_LOG_LEVEL ?? "warn");
  const config = new LiveConfig(logger);
  const url = values.redis ?? config.get().redisUrl;
  const redis = await connectRedis({ url, logger, name: `toolfleet-${kind}` });
  try {
    const k = keys(config.get().namespace);
    if (kind === "status") {
      const status = await fleetStatus(redis, k);
      console.log(values.json ? JSON.stringify(status, null, 2) : formatStatus(status));
      return 0;
    }
    const catalog = await loadCatalog(redis, k);
    if (!catalog) {
      console.error(`toolfleet catalog: no catalog published at ${k.catalog} (is a tools worker running?)`);
      return 1;
    }
    if (values.json) console.log(JSON.stringify(catalog, null, 2));
    else {
      console.log(`catalog ${catalog.schemaHash.slice(0, 12)}  published ${new Date(catalog.publishedAt).toISOString()}  ${catalog.tools.length} tools`);
      for (const t of catalog.tools) {
        const flags = [t.allowRepeat && "repeat", t.noBackground && "no-background", t.annotations.readOnly && "read-only", t.annotations.idempotent && "idempotent", t.annotations.destructive && "destructive"].filter(Boolean);
        const who = catalog.permissions[t.name];
        console.log(`  ${t.name.padEnd(24)} ${t.schemaHash.slice(0, 12)}  ${flags.join(",").padEnd(30)} ${who ? `users: ${who.join(",")}` : "everyone"}`);
      }
    }
    return 0;
  } finally {
    config.close();
    await closeRedis(redis);
  }
}
