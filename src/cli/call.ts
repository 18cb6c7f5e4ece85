import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { LiveConfig } from "../config/live.js";
import { TOOLS_SERVICE_MODES, type ToolsServiceMode } from "../config/schema.js";
import { ToolContext } from "../core/context.js";
import { createLogger } from "../core/log.js";
import { ProxyPlatformAdapter } from "../inference/proxy-adapter.js";
import { RemoteToolRegistry } from "../inference/remote-registry.js";
import { closeRedis, connectRedis, type RedisClient } from "../redis/client.js";
import { keys } from "../redis/keys.js";
import { exampleRegistry } from "../fleet/local.js";

export const CALL_USAGE = "usage: toolfleet call <tool> '<json args>' [--user ID] [--mode in_process|remote|shadow]";

/**
 * One call through the inference tier's registry: in process by default,
 * through the tools service and gateway with --mode remote. Prints the
 * result on stdout, and the route and duration on stderr.
 */
export async function runCall(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { user: { type: "string", default: "" }, mode: { type: "string" } },
  });
  const [tool, json = "{}"] = positionals;
  if (!tool || positionals.length > 2) {
    console.error(CALL_USAGE);
    return 2;
  }
  if (values.mode !== undefined && !(TOOLS_SERVICE_MODES as readonly string[]).includes(values.mode)) {
    console.error(`toolfleet call: --mode must be one of ${TOOLS_SERVICE_MODES.join(", ")}, got '${values.mode}'`);
    return 2;
  }
  let args: unknown;
  try {
    args = JSON.parse(json);
  } catch (err) {
    console.error(`toolfleet call: the arguments are not valid JSON: ${(err as Error).message}`);
    return 2;
  }
  const logger = createLogger("toolfleet.call", process.env.TOOLFLEET_LOG_LEVEL ?? "warn");
  const mode = values.mode as ToolsServiceMode | undefined;
  const config = new LiveConfig(logger, { env: mode ? { ...process.env, TOOLFLEET_TOOLS_SERVICE_MODE: mode } : process.env });
  const cfg = config.get();
  const local = await exampleRegistry(config, logger);
  const k = keys(cfg.namespace);
  let redis: RedisClient | undefined;
  if (cfg.toolsServiceMode !== "in_process") redis = await connectRedis({ url: cfg.redisUrl, logger, name: "toolfleet-call" });
  const registry = new RemoteToolRegistry({
    ...(redis ? { redis, redisUrl: cfg.redisUrl } : {}),
    keys: k,
    config,
    local,
    workerId: `call-${hostname()}-${process.pid}`,
    logger,
  });
  try {
    await registry.start();
    const adapter = new ProxyPlatformAdapter("cli", () => registry.toolsClient, k, config);
    const ctx = new ToolContext({ platform: "cli", userId: values.user, userName: values.user, adapter });
    const outcome = await registry.execute(tool, args, { userId: values.user, ctx });
    console.log(outcome.text);
    for (const file of ctx.sentFiles) console.log(`[sent file] ${file.name} (${file.contentType}, ${file.data.length} bytes)`);
    if (ctx.injectedTools) console.log(`[injected tools] ${ctx.injectedTools.join(", ")}`);
    for (const message of ctx.sentRichMessages) console.log(`[rich message] ${JSON.stringify(message)}`);
    console.error(`mode=${cfg.toolsServiceMode} route=${outcome.route} ${outcome.durationMs.toFixed(2)} ms`);
    return failed(outcome.text) ? 1 : 0;
  } finally {
    await registry.stop();
    await local.close();
    await closeRedis(redis);
  }
}

// The registry answers every failure with text for the model; the exit code tells a script apart.
function failed(text: string): boolean {
  return /^(Permission denied: |Unknown tool '|Invalid arguments for tool '|Tool '[^']+' (failed|timed out|was cancelled|requires the gateway|is temporarily unavailable|could not run))/.test(text);
}
