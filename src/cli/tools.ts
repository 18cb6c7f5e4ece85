import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { LiveConfig } from "../config/live.js";
import { redactRedisUrl } from "../config/schema.js";
import { createLogger, errorFields } from "../core/log.js";
import { closeRedis, connectRedis } from "../redis/client.js";
import { keys } from "../redis/keys.js";
import { RedisTaskStore } from "../redis/task-store.js";
import { ToolsService } from "../tools/service.js";
import { loadPermissionsFile, loadToolModule } from "./load-tools.js";
import { registryFor } from "./local.js";

export const TOOLS_USAGE = `toolfleet tools [options]   start a tools-service worker

  --redis URL         Redis URL (default: config redisUrl)
  --worker-id ID      this worker's consumer name (default: tools-<host>-<pid>)
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

/** Runs a tools worker until SIGINT or SIGTERM, then stops it gracefully. */
export async function runToolsWorker(argv: string[]): Promise<number> {
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
  const logger = createLogger("toolfleet.tools");
  const config = new LiveConfig(logger).watch();
  const url = values.redis ?? config.get().redisUrl;
  const workerId = values["worker-id"] ?? `tools-${hostname()}-${process.pid}`;
  const module = await loadToolModule(values.tools);
  if (values.permissions) module.permissions = loadPermissionsFile(values.permissions);
  const redis = await connectRedis({ url, logger, name: `tools-${workerId}` });
  const k = keys(config.get().namespace);
  const registry = registryFor(module, config, logger, config.get().taskStore === "redis" ? new RedisTaskStore(redis, k) : undefined);
  const service = new ToolsService({
    redis,
    redisUrl: url,
    keys: k,
    registry,
    config,
    logger,
    workerId,
    worker: { concurrency: positiveInt("concurrency", values.concurrency, 16), leaseMs: positiveInt("lease-ms", values["lease-ms"], 30_000) },
  });
  await service.start();
  console.log(`tools worker ${workerId} ready: ${registry.size} tools on ${redactRedisUrl(url)} (namespace ${config.get().namespace})`);

  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal, worker: workerId }, "stopping: finishing in-flight calls");
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      // A second signal means: stop now.
      process.once("SIGINT", () => process.exit(130));
      process.once("SIGTERM", () => process.exit(143));
      resolve();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  try {
    await service.stop();
  } catch (err) {
    logger.error({ worker: workerId, ...errorFields(err) }, "graceful stop failed");
    return 1;
  } finally {
    config.close();
    await closeRedis(redis);
  }
  console.log(`tools worker ${workerId} stopped`);
  return 0;
}
