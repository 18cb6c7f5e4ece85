import { LiveConfig } from "../config/live.js";
import { createLogger } from "../core/log.js";
import { fleetStatus, type FleetStatus } from "../fleet/status.js";
import { closeRedis, connectRedis } from "../redis/client.js";
import { keys } from "../redis/keys.js";
import { loadCatalog } from "../tool-exec/catalog.js";

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
  return lines.join("\n");
}

/** `toolfleet status` and `toolfleet catalog`: read-only views of a running fleet. */
export async function runInspect(kind: "status" | "catalog", { values }: { values: { redis: string | undefined; json: boolean } }): Promise<number> {
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
        const flags = [
          t.allowRepeat && "repeat",
          t.noBackground && "no-background",
          t.annotations.readOnly && "read-only",
          t.annotations.idempotent && "idempotent",
          t.annotations.destructive && "destructive",
        ].filter(Boolean);
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
