import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { LiveConfig } from "../config/live.js";
import { redactRedisUrl } from "../config/schema.js";
import { createLogger, errorFields } from "../core/log.js";
import { closeRedis, connectRedis } from "../redis/client.js";
import { keys } from "../redis/keys.js";
import { RedisTaskStore } from "../redis/task-store.js";
import { ConsoleAdapter } from "../gateway/console-adapter.js";
import { createGatewayService } from "../gateway/service.js";
import { ToolsService } from "../tools/service.js";
import { loadPermissionsFile, loadToolModule } from "./load-tools.js";
import { registryFor } from "./local.js";
import { untilStopSignal } from "./signals.js";

export const SERVE_USAGE = `toolfleet tools [options]     start a tools-service worker
toolfleet gateway [options]   start a gateway (console platform adapter) serving execute_tool

  --redis URL         Redis URL (default: config redisUrl)
  --worker-id ID      this worker's consumer name (default: <tools|gateway>-<host>-<pid>)
  --concurrency N     calls run at once (default 16)
  --tools MODULE      a module exporting 'tools' (default: the examples)
  --permissions FILE  JSON: tool name -> user ids ("*" for everyone)
  --lease-ms N        idle time after which a dead worker's call is reclaimed (default 30000)`;

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name}: expected a positive integer, got '${text}'`);
  return n;
}

/** Runs a tools worker or a gateway until SIGINT or SIGTERM, then stops it gracefully. */
export async function runService(kind: "tools" | "gateway", argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      redis: { type: "string" },
      "worker-id": { type: "string" },
      concurrency: { type: "string" },
      tools: { type: "string" },
      permissions: { type: "string" },
      "lease-ms": { type: "string" },
    },
  });
  const logger = createLogger(`toolfleet.${kind}`);
  const config = new LiveConfig(logger).watch();
  const url = values.redis ?? config.get().redisUrl;
  const workerId = values["worker-id"] ?? `${kind}-${hostname()}-${process.pid}`;
  const module = await loadToolModule(values.tools);
  if (values.permissions) module.permissions = loadPermissionsFile(values.permissions);
  const k = keys(config.get().namespace);
  k.heartbeat(kind, workerId); // refuses a worker id that cannot name a key, before anything is opened
  const redis = await connectRedis({ url, logger, name: `${kind}-${workerId}` });
  const registry = registryFor(module, config, logger, config.get().taskStore === "redis" ? new RedisTaskStore(redis, k) : undefined);
  const options = {
    redis,
    redisUrl: url,
    keys: k,
    registry,
    config,
    logger,
    workerId,
    worker: { concurrency: positiveInt("concurrency", values.concurrency, 16), leaseMs: positiveInt("lease-ms", values["lease-ms"], 30_000) },
  };
  const service = kind === "tools" ? new ToolsService(options) : createGatewayService({ ...options, adapter: new ConsoleAdapter() });
  try {
    await service.start();
  } catch (err) {
    // Nothing may stay open behind a failed start, or the process would never exit.
    await service.stop().catch(() => undefined); // the start's own error is the one reported
    config.close();
    await closeRedis(redis);
    throw err;
  }
  console.log(`${kind} worker ${workerId} ready: ${registry.size} tools on ${redactRedisUrl(url)} (namespace ${config.get().namespace})`);

  await untilStopSignal(logger, `${kind} worker ${workerId}`);
  try {
    await service.stop();
  } catch (err) {
    logger.error({ worker: workerId, ...errorFields(err) }, "graceful stop failed");
    return 1;
  } finally {
    config.close();
    await closeRedis(redis);
  }
  console.log(`${kind} worker ${workerId} stopped`);
  return 0;
}
