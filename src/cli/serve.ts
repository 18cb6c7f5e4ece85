import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { LiveConfig } from "../config/live.js";
import { redactRedisUrl } from "../config/schema.js";
import type { PlatformAdapter } from "../core/context.js";
import { createLogger, errorFields, type Logger } from "../core/log.js";
import { ToolRegistry } from "../core/registry.js";
import type { TaskStore } from "../core/tasks.js";
import { ChatBridge } from "../gateway/bridge.js";
import { ConsoleAdapter } from "../gateway/console-adapter.js";
import { HttpChatAdapter } from "../gateway/http-adapter.js";
import type { ChatPlatform } from "../gateway/platform.js";
import { createGatewayService } from "../gateway/tool-server.js";
import { ChatResponder, describeModel } from "../inference/chat-responder.js";
import { CHAT_CONCURRENCY, ChatService } from "../inference/chat-consumer.js";
import { ProxyPlatformAdapter } from "../inference/proxy-adapter.js";
import { RemoteToolRegistry } from "../inference/remote-registry.js";
import { closeRedis, connectRedis, type RedisClient } from "../redis/client.js";
import { keys, type Keys } from "../redis/keys.js";
import { RedisTaskStore } from "../tool-exec/task-store.js";
import { ToolsService } from "../tool-exec/server.js";
import { loadPermissionsFile, loadToolModule } from "../fleet/load-tools.js";
import { registryFor, taskManagerFor } from "../fleet/local.js";
import { untilStopSignal } from "./signals.js";

export const SERVE_USAGE = `toolfleet tools [options]       start a tools-service worker
toolfleet gateway [options]     start a gateway: a chat platform adapter, and execute_tool for gateway-pinned tools
toolfleet inference [options]   start an inference worker: answers chat messages with the LLM tool loop

  --redis URL         Redis URL (default: config redisUrl)
  --worker-id ID      this worker's consumer name (default: <kind>-<host>-<pid>)
  --concurrency N     calls (inference: chats) handled at once (default 16; inference 8)
  --tools MODULE      a module exporting 'tools' (default: the examples; inference: none, the catalog is enough)
  --permissions FILE  JSON: tool name -> user ids ("*" for everyone)
  --lease-ms N        idle time after which a dead worker's work is reclaimed (default 30000)
gateway only:
  --adapter KIND      console (chat in this terminal, the default) or http (a web chat page)
  --host HOST         http adapter address (default 127.0.0.1)
  --port N            http adapter port; 0 picks a free one (default 8787)
  --shard NAME        serve the gateway stream sg:stream:gateway:<NAME> instead of the shared one; with
                      several gateways, give each its own, so a chat's gateway-pinned calls come back to it`;

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
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name}: expected a positive integer, got '${text}'`);
  return n;
}

/** A `--port` value: 0-65535, 0 picking a free port. */
export function port(text: string | undefined): number {
  if (text === undefined) return 8787;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port: expected 0-65535, got '${text}'`);
  return n;
}

interface Running {
  description: string;
  url?: string;
  stop(): Promise<void>;
}

interface Setup {
  redis: RedisClient;
  url: string;
  keys: Keys;
  config: LiveConfig;
  logger: Logger;
  workerId: string;
  values: Record<string, string | undefined>;
}

/** Runs a tools worker, a gateway or an inference worker until SIGINT or SIGTERM, then stops it gracefully. */
export async function runService(kind: ServiceKind, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      redis: { type: "string" },
      "worker-id": { type: "string" },
      concurrency: { type: "string" },
      tools: { type: "string" },
      permissions: { type: "string" },
      "lease-ms": { type: "string" },
      adapter: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      shard: { type: "string" },
    },
  });
  if (kind !== "gateway" && (values.adapter ?? values.host ?? values.port ?? values.shard) !== undefined) throw new Error("--adapter, --host, --port and --shard are gateway options");
  // Under `toolfleet up`, the supervisor decides when to stop; one that goes away before this worker is ready ends it.
  const supervised = process.env.TOOLFLEET_SUPERVISED === "1" && process.connected;
  const goneBeforeReady = (): void => process.exit(1); // nothing served yet: nothing to finish
  if (supervised) process.once("disconnect", goneBeforeReady);
  const logger = createLogger(`toolfleet.${kind}`);
  const config = new LiveConfig(logger).watch();
  if (kind === "inference" && config.get().toolsServiceMode === "in_process") {
    config.close();
    throw new Error("an inference worker sends tool calls to the tools service: set TOOLFLEET_TOOLS_SERVICE_MODE=remote (or shadow); for one process with no Redis, use `toolfleet up` without Redis or `toolfleet demo`");
  }
  const url = values.redis ?? config.get().redisUrl;
  const workerId = values["worker-id"] ?? `${kind}-${hostname()}-${process.pid}`;
  const k = keys(config.get().namespace);
  k.heartbeat(kind, workerId); // refuses a worker id that cannot name a key, before anything is opened
  const redis = await connectRedis({ url, logger, name: `${kind}-${workerId}` });
  const setup: Setup = { redis, url, keys: k, config, logger, workerId, values };
  let running: Running;
  try {
    running = kind === "inference" ? await startInference(setup) : await startToolsOrGateway(kind, setup);
  } catch (err) {
    config.close();
    await closeRedis(redis);
    throw err;
  }
  console.log(`${kind} worker ${workerId} ready: ${running.description} on ${redactRedisUrl(url)} (namespace ${config.get().namespace})`);
  const ready: ReadyMessage = { type: "ready", kind, pid: process.pid, ...(running.url ? { url: running.url } : {}) };
  if (supervised) {
    process.off("disconnect", goneBeforeReady);
    if (process.connected) process.send?.(ready);
  }

  await untilStopSignal(logger, `${kind} worker ${workerId}`, { supervised });
  try {
    await running.stop();
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

async function startToolsOrGateway(kind: "tools" | "gateway", s: Setup): Promise<Running> {
  const module = await loadToolModule(s.values.tools);
  if (s.values.permissions) module.permissions = loadPermissionsFile(s.values.permissions);
  const registry = registryFor(module, s.config, s.logger, taskStoreOf(s));
  const options = {
    redis: s.redis,
    redisUrl: s.url,
    keys: s.keys,
    registry,
    config: s.config,
    logger: s.logger,
    workerId: s.workerId,
    worker: { concurrency: positiveInt("concurrency", s.values.concurrency, 16), leaseMs: positiveInt("lease-ms", s.values["lease-ms"], 30_000) },
  };
  if (kind === "tools") {
    const service = new ToolsService(options);
    await startOrUndo(service);
    return { description: `${registry.size} tools`, stop: () => service.stop() };
  }
  const platform = gatewayPlatform(s);
  const shard = s.values.shard;
  if (shard !== undefined) s.keys.gatewayStream(shard); // refuses a shard that cannot name a key
  const service = createGatewayService({ ...options, adapter: platform, ...(shard !== undefined ? { shard } : {}) });
  await startOrUndo(service);
  const bridge = new ChatBridge({ redis: s.redis, redisUrl: s.url, keys: s.keys, config: s.config, logger: s.logger, gatewayId: s.workerId, platform, ...(shard !== undefined ? { shard } : {}) });
  await startOrUndo(bridge).catch(async (err: unknown) => {
    await service.stop();
    throw err;
  });
  const url = platform instanceof HttpChatAdapter ? platform.url : undefined;
  return {
    description: `${platform.platform} chat${url ? ` at ${url}` : ""}, ${registry.size} tools for execute_tool`,
    ...(url ? { url } : {}),
    stop: async () => {
      // No new chats first; then the gateway-pinned calls in flight finish.
      await bridge.stop();
      await service.stop();
    },
  };
}

/** Where background tasks are kept: Redis when `taskStore` says so, so any worker can answer for them. */
function taskStoreOf(s: Setup): TaskStore | undefined {
  return s.config.get().taskStore === "redis" ? new RedisTaskStore(s.redis, s.keys) : undefined;
}

function gatewayPlatform(s: Setup): ChatPlatform {
  const kind = s.values.adapter ?? "console";
  if (kind === "console") {
    if (s.values.host !== undefined || s.values.port !== undefined) throw new Error("--host and --port are for --adapter http");
    return new ConsoleAdapter();
  }
  if (kind === "http") {
    const secret = s.config.get().webSecret;
    return new HttpChatAdapter({ logger: s.logger, host: s.values.host ?? "127.0.0.1", port: port(s.values.port), ...(secret ? { secret } : {}) });
  }
  throw new Error(`--adapter: expected console or http, got '${kind}'`);
}

async function startInference(s: Setup): Promise<Running> {
  // The inference tier shows the model the published catalog; it imports tool handlers only when asked to (--tools).
  const module = s.values.tools ? await loadToolModule(s.values.tools) : { tools: [], permissions: {} };
  if (s.values.permissions) module.permissions = loadPermissionsFile(s.values.permissions);
  // The loop's own tools (extend_tool_loop, call_subagent) are the loop's: they need no registration.
  // Its background tasks (long inference-pinned tools) go to the same store as the tools service's,
  // where get_task_result, which runs there, looks for them.
  const local = new ToolRegistry({ config: s.config, logger: s.logger, taskManager: taskManagerFor(s.config, s.logger, taskStoreOf(s)) }).register(...module.tools);
  local.setPermissions(module.permissions);
  const registry = new RemoteToolRegistry({ redis: s.redis, redisUrl: s.url, keys: s.keys, config: s.config, local, workerId: s.workerId, logger: s.logger });
  await startOrUndo(registry);
  // A proxy is a few fields: one per chat, aimed at the gateway (shard) that holds it.
  const adapterFor = (platform: string, shard: string | undefined): PlatformAdapter => new ProxyPlatformAdapter(platform, () => registry.toolsClient, s.keys, s.config, shard);
  const responder = new ChatResponder({ registry, config: s.config, logger: s.logger });
  const chat = new ChatService({
    redis: s.redis,
    redisUrl: s.url,
    keys: s.keys,
    logger: s.logger,
    workerId: s.workerId,
    responder,
    adapterFor,
    worker: { concurrency: positiveInt("concurrency", s.values.concurrency, CHAT_CONCURRENCY), leaseMs: positiveInt("lease-ms", s.values["lease-ms"], 30_000) },
  });
  await startOrUndo(chat).catch(async (err: unknown) => {
    await registry.stop();
    throw err;
  });
  return {
    description: `${registry.size} tools in the catalog, ${describeModel(s.config)}`,
    stop: async () => {
      await chat.stop();
      await registry.stop();
      await local.close();
    },
  };
}

/** Starts a part; a failed start is undone, so nothing stays open behind it. */
async function startOrUndo(part: { start(): Promise<void>; stop(): Promise<unknown> }): Promise<void> {
  try {
    await part.start();
  } catch (err) {
    await part.stop().catch(() => undefined); // the start's own error is the one reported
    throw err;
  }
}
