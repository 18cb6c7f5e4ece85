import { LiveConfig } from "../config/live.js";
import { redactRedisUrl } from "../config/schema.js";
import { ToolfleetError } from "../core/errors.js";
import { createLogger } from "../core/log.js";
import { Dashboard } from "../fleet/dashboard.js";
import { closeRedis, connectFleetRedis } from "../redis/client.js";
import { keys } from "../redis/keys.js";
import type { CommandSpec, Values } from "./args.js";
import { port } from "./serve.js";
import { untilStopSignal } from "./signals.js";

const DASHBOARD_OPTIONS = [
  {
    name: "redis",
    type: "string",
    value: "URL",
    defaultText: "the config's redisUrl",
    description: "the Redis the fleet runs on (with TOOLFLEET_REDIS_CLUSTER_NODES set, only its user, password and TLS count: the nodes are the cluster's)",
  },
  { name: "host", type: "string", value: "HOST", defaultText: "127.0.0.1", description: "the address to serve on" },
  { name: "port", type: "string", value: "N", defaultText: "8790", description: "the port; 0 picks a free one" },
] as const;

export const DASHBOARD_COMMAND = {
  name: "dashboard",
  summary: "a live admin page: workers per pool, catalog, calls/s and latency per tool, errors, dead letters",
  about:
    "Serves a live page for the fleet's admin: workers per pool with health, in flight and version; the catalog and its conflicts; calls per second and p50/p99 per tool; recent errors; dead letters, with requeue and delete. It asks for the admin token (TOOLFLEET_ADMIN_TOKEN, 16+ characters) and refuses to start without one.",
  options: DASHBOARD_OPTIONS,
  notes: "Runs until SIGINT or SIGTERM. Every requeue and delete is logged (audit: dashboard).",
} as const satisfies CommandSpec;

export async function runDashboard({ values }: { values: Values<typeof DASHBOARD_OPTIONS> }): Promise<number> {
  const logger = createLogger("toolfleet.dashboard", process.env.TOOLFLEET_LOG_LEVEL ?? "info");
  const config = new LiveConfig(logger);
  const { adminToken, namespace, redisUrl } = config.get();
  if (!adminToken) throw new ToolfleetError("USAGE", "the dashboard needs an admin token: set TOOLFLEET_ADMIN_TOKEN (16+ characters)");
  const url = values.redis ?? redisUrl;
  const redis = await connectFleetRedis({
    url,
    clusterNodes: config.get().redisClusterNodes,
    logger,
    name: "toolfleet-dashboard",
    waitForRedis: false,
    connectTimeoutMs: 3000,
  });
  const dashboard = new Dashboard({
    redis,
    keys: keys(namespace),
    logger,
    adminToken,
    port: values.port === undefined ? 8790 : port("port", values.port),
    host: values.host ?? "127.0.0.1",
  });
  try {
    await dashboard.start();
    console.log(`dashboard at ${dashboard.url} (namespace ${namespace} on ${redactRedisUrl(url)})`);
    await untilStopSignal(logger, "dashboard", { supervised: false });
  } finally {
    await dashboard.stop();
    await closeRedis(redis);
    config.close();
  }
  return 0;
}
