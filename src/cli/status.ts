import { LiveConfig } from "../config/live.js";
import { createLogger } from "../core/log.js";
import { fleetStatus, type FleetStatus } from "../fleet/status.js";
import { within } from "../core/within.js";
import { closeRedis, connectFleetRedis, type RedisClient } from "../redis/client.js";
import { keys, type Keys } from "../redis/keys.js";
import { loadCatalog } from "../tool-exec/catalog-parts.js";
import type { CatalogConflict, ShardConflict } from "../tool-exec/catalog-merge.js";

function formatConflicts(conflicts: readonly CatalogConflict[]): string[] {
  const lines: string[] = [];
  for (const c of conflicts) {
    lines.push(`  ${c.tool}: ${c.offers.length} schemas (calls go to workers that agree with the schema they were built against)`);
    c.offers.forEach((o, i) => lines.push(`    ${o.schemaHash.slice(0, 12)} ${i === 0 ? "shown " : "      "} ${o.publishers.join(", ")}`));
  }
  return lines;
}

function formatShardConflicts(conflicts: readonly ShardConflict[]): string[] {
  return conflicts.map(
    (c) => `  pool ${c.pool}: calls use ${c.used} shard(s), the fewest its workers read (${c.publishers.map((p) => `${p.publisher}: ${p.shards}`).join(", ")})`,
  );
}

/** How long a one-shot command gives Redis to accept its connection, and to answer what it reads. */
const ONE_SHOT_CONNECT_MS = 3000;
const ONE_SHOT_READ_MS = 10_000;

function formatStatus(status: FleetStatus): string {
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
  lines.push("", "pools:");
  if (status.pools.length === 0) lines.push("  (no tools worker publishes a catalog)");
  for (const p of status.pools)
    lines.push(`  ${p.pool.padEnd(16)} ${p.workers.length} worker(s): ${p.workers.map((w) => `${w.workerId} (${w.tools} tools)`).join(", ")}`);
  if (status.conflicts.length > 0) lines.push("", "schema conflicts:", ...formatConflicts(status.conflicts));
  if (status.shardConflicts.length > 0) lines.push("", "shard conflicts:", ...formatShardConflicts(status.shardConflicts));
  return lines.join("\n");
}

/** `toolfleet status` and `toolfleet catalog`: read-only views of a running fleet. */
export async function runInspect(kind: "status" | "catalog", { values }: { values: { redis: string | undefined; json: boolean } }): Promise<number> {
  const logger = createLogger(`toolfleet.${kind}`, process.env.TOOLFLEET_LOG_LEVEL ?? "warn");
  const config = new LiveConfig(logger);
  const url = values.redis ?? config.get().redisUrl;
  let redis: RedisClient | undefined;
  try {
    // A one-shot: with Redis away it says so and ends (REDIS_UNAVAILABLE, naming the URL), rather than wait.
    redis = await connectFleetRedis({
      url,
      clusterNodes: config.get().redisClusterNodes,
      logger,
      name: `toolfleet-${kind}`,
      waitForRedis: false,
      connectTimeoutMs: ONE_SHOT_CONNECT_MS,
    });
    // Connected, Redis may still go away mid-read: the commands would wait for it to come back, so bound them.
    return await within(inspect(kind, redis, keys(config.get().namespace), values.json), ONE_SHOT_READ_MS, `toolfleet ${kind}: reading from Redis`);
  } finally {
    config.close();
    await closeRedis(redis);
  }
}

async function inspect(kind: "status" | "catalog", redis: RedisClient, k: Keys, json: boolean): Promise<number> {
  if (kind === "status") {
    const status = await fleetStatus(redis, k);
    console.log(json ? JSON.stringify(status, null, 2) : formatStatus(status));
    return 0;
  }
  const catalog = await loadCatalog(redis, k);
  if (!catalog) {
    console.error(`toolfleet catalog: no live tools worker publishes a catalog in namespace ${k.namespace} (is a tools worker running?)`);
    return 1;
  }
  if (json) {
    console.log(JSON.stringify(catalog, null, 2));
    return 0;
  }
  console.log(
    `catalog ${catalog.schemaHash.slice(0, 12)}  ${catalog.tools.length} tools from ${catalog.publishers.length} worker(s)  last published ${new Date(catalog.publishedAt).toISOString()}`,
  );
  const offeredBy = new Map<string, string[]>();
  for (const c of catalog.conflicts) offeredBy.set(c.tool, []);
  // The name column as wide as the longest name: a long one (discord_message_reactions) must not push the rest out of line.
  const nameWidth = Math.max(24, ...catalog.tools.map((t) => t.name.length));
  for (const t of catalog.tools) {
    const flags = [
      t.allowRepeat && "repeat",
      t.noBackground && "no-background",
      t.annotations.readOnly && "read-only",
      t.annotations.idempotent && "idempotent",
      t.annotations.destructive && "destructive",
      t.annotations.openWorldHint && "open-world",
      t.pin && `pin:${t.pin}`,
      t.timeoutMs !== undefined && `timeout:${t.timeoutMs / 1000}s`,
      t.outputSchema && "structured",
      offeredBy.has(t.name) && "CONFLICT",
    ].filter(Boolean);
    const who = Object.prototype.hasOwnProperty.call(catalog.permissions, t.name) ? catalog.permissions[t.name] : undefined;
    console.log(`  ${t.name.padEnd(nameWidth)} ${t.schemaHash.slice(0, 12)}  ${flags.join(",").padEnd(30)} ${who ? `users: ${who.join(",")}` : "everyone"}`);
  }
  console.log("\npublishers:");
  for (const p of catalog.publishers)
    console.log(`  ${`${p.pool}/${p.workerId}`.padEnd(40)} ${p.tools} tools  ${p.schemaHash.slice(0, 12)}${p.shards ? `  ${p.shards} shards` : ""}`);
  if (catalog.conflicts.length > 0) console.log(["", "schema conflicts:", ...formatConflicts(catalog.conflicts)].join("\n"));
  if (catalog.shardConflicts.length > 0) console.log(["", "shard conflicts:", ...formatShardConflicts(catalog.shardConflicts)].join("\n"));
  for (const u of catalog.unreadable) console.log(`  unreadable: ${u}`);
  return 0;
}
