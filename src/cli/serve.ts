import { LiveConfig } from "../config/live.js";
import { describeRedis, type Config } from "../config/schema.js";
import { ToolfleetError } from "../core/errors.js";
import { createLogger, errorFields, type Logger } from "../core/log.js";
import { ConsoleAdapter } from "../gateway/console-adapter.js";
import { DiscordAdapter } from "../gateway/discord/adapter.js";
import { withDiscordTools } from "../gateway/discord/tools.js";
import { HttpChatAdapter } from "../gateway/http-adapter.js";
import type { ChatPlatform } from "../gateway/platform.js";
import { DEFAULT_CONCURRENCY, DEFAULT_LEASE_MS, type FleetMember } from "../fleet/common.js";
import { DEFAULT_POOL, MAX_SHARDS } from "../redis/keys.js";
import { createGateway } from "../fleet/gateway.js";
import { createInferenceWorker } from "../fleet/inference-worker.js";
import { loadPermissionsFile, loadToolModule } from "../fleet/load-tools.js";
import { createToolsWorker } from "../fleet/tools-worker.js";
import { CHAT_CONCURRENCY } from "../inference/chat-consumer.js";
import type { CommandSpec, OptionSpec, Parsed, Values } from "./args.js";
import { sourcesFromOptions } from "../mcp/source-spec.js";
import { untilStopSignal } from "./signals.js";
import { startTelemetry } from "./telemetry.js";

/** The web chat's port when none is given. */
export const DEFAULT_PORT = 8787;

/** The options every server takes, worded for its kind: what it runs at once, and which tools it loads by default. */
function serveOptions(kind: ServiceKind, concurrency: { what: string; default: number }, tools: { default: string; description: string }) {
  return [
    {
      name: "redis",
      type: "string",
      value: "URL",
      defaultText: "the config's redisUrl",
      description: "the Redis to serve on (with TOOLFLEET_REDIS_CLUSTER_NODES set, only its user, password and TLS count: the nodes are the cluster's)",
    },
    { name: "worker-id", type: "string", value: "ID", defaultText: `${kind}-<host>-<pid>`, description: "this worker's consumer name and heartbeat" },
    { name: "concurrency", type: "string", value: "N", defaultText: String(concurrency.default), description: `${concurrency.what} handled at once` },
    { name: "tools", type: "string", value: "MODULE", defaultText: tools.default, description: tools.description },
    { name: "permissions", type: "string", value: "FILE", description: 'JSON: tool name -> user ids ("*" for everyone)' },
    {
      name: "metrics-port",
      type: "string",
      value: "N",
      defaultText: "none",
      description: "serve Prometheus /metrics, /healthz and /readyz on this port (0 picks a free one)",
    },
    { name: "metrics-host", type: "string", value: "HOST", defaultText: "127.0.0.1", description: "the address of --metrics-port" },
    {
      name: "lease-ms",
      type: "string",
      value: "N",
      defaultText: String(DEFAULT_LEASE_MS),
      description: "idle time after which a dead worker's work is reclaimed",
    },
  ] as const satisfies readonly OptionSpec[];
}

const TOOL_MODULE = { default: "the example tools", description: "a module exporting 'tools' (and optionally 'permissions')" };

const GATEWAY_OPTIONS = [
  {
    name: "adapter",
    type: "string",
    choices: ["console", "http", "discord"],
    defaultText: "console",
    description: "the chat platform: console (chat in this terminal), http (a web chat page) or discord (a Discord bot: TOOLFLEET_DISCORD_TOKEN)",
  },
  { name: "host", type: "string", value: "HOST", defaultText: "127.0.0.1", description: "the http adapter's address" },
  { name: "port", type: "string", value: "N", defaultText: String(DEFAULT_PORT), description: "the http adapter's port; 0 picks a free one" },
  {
    name: "shard",
    type: "string",
    value: "NAME",
    description:
      "serve the gateway stream sg:stream:gateway:<NAME> instead of the shared one; with several gateways, give each its own, so a chat's gateway-pinned calls come back to it. With --adapter discord, NAME is this gateway's Discord shard id (0 to --shard-count - 1)",
  },
  {
    name: "shard-count",
    type: "string",
    value: "N",
    description: "with --adapter discord and --shard: how many Discord shards there are in all (one gateway process each), so they split the servers",
  },
] as const satisfies readonly OptionSpec[];

const TOOLS_OPTIONS = [
  {
    name: "pool",
    type: "string",
    value: "NAME",
    defaultText: DEFAULT_POOL,
    description: "the pool this worker serves: its own request stream and consumer group (1-32 of letters, digits, _ and -)",
  },
  {
    name: "shards",
    type: "string",
    value: "K",
    defaultText: "toolsShards (1)",
    description: "spread the pool's requests over K streams (1-64), each on its own cluster slot; every worker of a pool should use the same K",
  },
  {
    name: "mcp",
    type: "string",
    multiple: true,
    value: "COMMAND",
    description: "run the tools of this MCP server (started over stdio; quote the command line); repeatable",
  },
  {
    name: "mcp-url",
    type: "string",
    multiple: true,
    value: "URL",
    description: "run the tools of the MCP server at this Streamable HTTP URL; repeatable",
  },
  {
    name: "mcp-prefix",
    type: "string",
    multiple: true,
    value: "PREFIX",
    description: "put PREFIX before the tool names of the --mcp or --mcp-url given just before it",
  },
] as const satisfies readonly OptionSpec[];

const SERVE_NOTES = "Runs until SIGINT or SIGTERM, then finishes the calls in flight and stops (a second signal exits at once).";

export const TOOLS_COMMAND = {
  name: "tools",
  summary: "start a tools-service worker",
  about: "Starts a tools-service worker: it publishes the catalog of its tools and runs the calls sent to them on the tools stream.",
  options: [...serveOptions("tools", { what: "calls", default: DEFAULT_CONCURRENCY }, TOOL_MODULE), ...TOOLS_OPTIONS],
  notes: `${SERVE_NOTES} Workers that run different tools belong in different pools (a GPU pool, a pool for a heavy dependency): each pool has its own request stream, and a call goes to a pool whose live workers run its tool.`,
} as const satisfies CommandSpec;

export const GATEWAY_COMMAND = {
  name: "gateway",
  summary: "start a gateway: a chat platform adapter (console, http or discord) and execute_tool for gateway-pinned tools",
  about:
    "Starts a gateway: it holds the chat platform (console, web chat or Discord), sends each chat message to the inference tier, and runs the gateway-pinned tools.",
  options: [...serveOptions("gateway", { what: "gateway-pinned calls", default: DEFAULT_CONCURRENCY }, TOOL_MODULE), ...GATEWAY_OPTIONS],
  notes: SERVE_NOTES,
} as const satisfies CommandSpec;

export const INFERENCE_COMMAND = {
  name: "inference",
  summary: "start an inference worker: chat messages -> LLM tool loop -> answers",
  about: "Starts an inference worker: it answers the gateways' chat messages with the LLM tool loop over the published catalog.",
  options: serveOptions(
    "inference",
    { what: "chat messages", default: CHAT_CONCURRENCY },
    { default: "none: the published catalog is enough", description: "a module of tools to run here too (inference-pinned tools, fallbacks)" },
  ),
  notes: SERVE_NOTES,
} as const satisfies CommandSpec;

type ServeValues = Values<ReturnType<typeof serveOptions>> & Partial<Values<typeof GATEWAY_OPTIONS>> & Partial<Values<typeof TOOLS_OPTIONS>>;

export type ServiceKind = "tools" | "gateway" | "inference";

/** What a worker tells a supervising `toolfleet up` over IPC once it serves. */
export interface ReadyMessage {
  type: "ready";
  kind: ServiceKind;
  pid: number;
  /** The gateway's web chat, when it runs the http adapter. */
  url?: string;
}

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new ToolfleetError("USAGE", `--${name}: expected a positive integer, got '${text}'`);
  return n;
}

/** A `--shards` value: an integer 1..MAX_SHARDS. */
function shardCount(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > MAX_SHARDS) throw new ToolfleetError("USAGE", `--shards: expected an integer from 1 to ${MAX_SHARDS}, got '${text}'`);
  return n;
}

/** A `--port` (or `--<name>`) value: 0-65535, 0 picking a free port. */
export function port(name: string, text: string | undefined): number {
  if (text === undefined) return DEFAULT_PORT;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isInteger(n) || n < 0 || n > 65535) throw new ToolfleetError("USAGE", `--${name}: expected 0-65535, got '${text}'`);
  return n;
}

/** Runs a tools worker, a gateway or an inference worker until SIGINT or SIGTERM, then stops it gracefully. */
export async function runService(
  kind: ServiceKind,
  { values, order = [] }: { values: ServeValues; order?: Parsed<readonly OptionSpec[]>["order"] },
): Promise<number> {
  // Under `toolfleet up`, the supervisor decides when to stop; one that goes away before this worker is ready ends it.
  const supervised = process.env.TOOLFLEET_SUPERVISED === "1" && process.connected;
  const goneBeforeReady = (): void => process.exit(1); // nothing served yet: nothing to finish
  if (supervised) process.once("disconnect", goneBeforeReady);
  const logger = createLogger(`toolfleet.${kind}`);
  const stopTelemetry = await startTelemetry(kind, logger);
  const config = new LiveConfig(logger).watch();
  const common = {
    config,
    logger,
    ...(values.redis !== undefined ? { redisUrl: values.redis } : {}),
    ...(values["worker-id"] !== undefined ? { workerId: values["worker-id"] } : {}),
    ...(values["lease-ms"] !== undefined ? { leaseMs: positiveInt("lease-ms", values["lease-ms"], DEFAULT_LEASE_MS) } : {}),
    ...(values.concurrency !== undefined ? { concurrency: positiveInt("concurrency", values.concurrency, DEFAULT_CONCURRENCY) } : {}),
    ...(values["metrics-port"] !== undefined ? { metricsPort: port("metrics-port", values["metrics-port"]) } : {}),
    ...(values["metrics-host"] !== undefined ? { metricsHost: values["metrics-host"] } : {}),
  };
  let member: FleetMember;
  let platform: ChatPlatform | undefined;
  try {
    // The inference tier shows the model the published catalog; it imports tool handlers only when asked to (--tools).
    const module = kind === "inference" && !values.tools ? { tools: [], permissions: {} } : await loadToolModule(values.tools);
    if (values.permissions) module.permissions = loadPermissionsFile(values.permissions);
    const toolSet = { tools: module.tools, permissions: module.permissions };
    member =
      kind === "tools"
        ? createToolsWorker({
            ...common,
            ...toolSet,
            ...(values.pool !== undefined ? { pool: values.pool } : {}),
            ...(values.shards !== undefined ? { shards: shardCount(values.shards) } : {}),
            mcp: sourcesFromOptions(order),
          })
        : kind === "gateway"
          ? createGateway({
              ...common,
              ...toolSet,
              // A Discord gateway runs the Discord tools the module does not define itself.
              ...(values.adapter === "discord" ? { tools: withDiscordTools(toolSet.tools) } : {}),
              platform: (platform = gatewayPlatform(values, config, logger)),
              ...(values.shard !== undefined ? { shard: values.shard } : {}),
            })
          : createInferenceWorker({ ...common, ...toolSet });
    await member.start();
  } catch (err) {
    config.close();
    await stopTelemetry?.();
    throw err;
  }
  const { workerId } = member;
  console.log(
    `${kind} worker ${workerId} ready: ${member.description} on ${describeRedis(member.redisUrl, config.get().redisClusterNodes)} (namespace ${config.get().namespace})${member.metricsUrl ? `; metrics at ${member.metricsUrl}` : ""}`,
  );
  const ready: ReadyMessage = { type: "ready", kind, pid: process.pid, ...(member.url ? { url: member.url } : {}) };
  if (supervised) {
    process.off("disconnect", goneBeforeReady);
    if (process.connected) process.send?.(ready);
  }

  // A console chat also ends with its input (a piped file, or Ctrl-D), once every message has had its answer.
  const chatOver = platform instanceof ConsoleAdapter ? platform.finished : new Promise<never>(() => undefined);
  await Promise.race([untilStopSignal(logger, `${kind} worker ${workerId}`, { supervised }), chatOver]);
  try {
    await member.stop();
  } catch (err) {
    logger.error({ worker: workerId, ...errorFields(err) }, "graceful stop failed");
    return 1;
  } finally {
    config.close();
    await stopTelemetry?.();
  }
  console.log(`${kind} worker ${workerId} stopped`);
  return 0;
}

function gatewayPlatform(values: ServeValues, config: LiveConfig, logger: Logger): ChatPlatform {
  const kind = values.adapter ?? "console";
  if (kind !== "discord" && values["shard-count"] !== undefined) throw new ToolfleetError("USAGE", "--shard-count is for --adapter discord");
  if (kind === "discord") {
    if (values.host !== undefined || values.port !== undefined) throw new ToolfleetError("USAGE", "--host and --port are for --adapter http");
    return discordAdapter(config.get(), logger, discordShard(values.shard, values["shard-count"]));
  }
  if (kind === "console") {
    if (values.host !== undefined || values.port !== undefined) throw new ToolfleetError("USAGE", "--host and --port are for --adapter http");
    return new ConsoleAdapter();
  }
  if (kind === "http") {
    const secret = config.get().webSecret;
    return new HttpChatAdapter({ logger, host: values.host ?? "127.0.0.1", port: port("port", values.port), ...(secret ? { secret } : {}) });
  }
  throw new ToolfleetError("USAGE", `--adapter: expected console, http or discord, got '${kind}'`);
}

/** `--shard I --shard-count N` as a Discord shard; neither: every shard in this process. */
export function discordShard(shard: string | undefined, count: string | undefined): { id: number; count: number } | undefined {
  if (shard === undefined && count === undefined) return undefined;
  if (shard === undefined || count === undefined)
    throw new ToolfleetError("USAGE", "with --adapter discord, give --shard and --shard-count together (or neither)");
  const n = positiveInt("shard-count", count, 1);
  const id = Number(shard);
  if (!/^\d+$/.test(shard) || id >= n)
    throw new ToolfleetError("USAGE", `--shard: with --adapter discord, a Discord shard id from 0 to ${n - 1}, got '${shard}'`);
  return { id, count: n };
}

/** The Discord adapter from the config; a clear error when the token is missing (it is never printed). */
export function discordAdapter(config: Config, logger: Logger, shard?: { id: number; count: number }): DiscordAdapter {
  if (!config.discordToken) {
    throw new ToolfleetError(
      "CONFIG_INVALID",
      "--adapter discord needs the bot's token: set TOOLFLEET_DISCORD_TOKEN (or discordToken in the config file); the README's Discord section shows where to get it",
    );
  }
  return new DiscordAdapter({
    token: config.discordToken,
    logger,
    channels: config.discordChannels,
    apiUrl: config.discordApiUrl,
    ...(shard ? { shard } : {}),
  });
}
