import { parseArgs } from "node:util";
import { LiveConfig } from "../config/live.js";
import { redactRedisUrl } from "../config/schema.js";
import { ToolfleetError } from "../core/errors.js";
import { createLogger, errorFields, type Logger } from "../core/log.js";
import { ConsoleAdapter } from "../gateway/console-adapter.js";
import { HttpChatAdapter } from "../gateway/http-adapter.js";
import type { ChatPlatform } from "../gateway/platform.js";
import type { FleetMember } from "../fleet/common.js";
import { createGateway } from "../fleet/gateway.js";
import { createInferenceWorker } from "../fleet/inference-worker.js";
import { loadPermissionsFile, loadToolModule } from "../fleet/load-tools.js";
import { createToolsWorker } from "../fleet/tools-worker.js";
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
  if (!Number.isInteger(n) || n <= 0) throw new ToolfleetError("USAGE", `--${name}: expected a positive integer, got '${text}'`);
  return n;
}

/** A `--port` value: 0-65535, 0 picking a free port. */
export function port(text: string | undefined): number {
  if (text === undefined) return 8787;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ToolfleetError("USAGE", `--port: expected 0-65535, got '${text}'`);
  return n;
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
  if (kind !== "gateway" && (values.adapter ?? values.host ?? values.port ?? values.shard) !== undefined)
    throw new ToolfleetError("USAGE", "--adapter, --host, --port and --shard are gateway options");
  // Under `toolfleet up`, the supervisor decides when to stop; one that goes away before this worker is ready ends it.
  const supervised = process.env.TOOLFLEET_SUPERVISED === "1" && process.connected;
  const goneBeforeReady = (): void => process.exit(1); // nothing served yet: nothing to finish
  if (supervised) process.once("disconnect", goneBeforeReady);
  const logger = createLogger(`toolfleet.${kind}`);
  const config = new LiveConfig(logger).watch();
  const common = {
    config,
    logger,
    ...(values.redis !== undefined ? { redisUrl: values.redis } : {}),
    ...(values["worker-id"] !== undefined ? { workerId: values["worker-id"] } : {}),
    ...(values["lease-ms"] !== undefined ? { leaseMs: positiveInt("lease-ms", values["lease-ms"], 30_000) } : {}),
    ...(values.concurrency !== undefined ? { concurrency: positiveInt("concurrency", values.concurrency, 16) } : {}),
  };
  let member: FleetMember;
  try {
    // The inference tier shows the model the published catalog; it imports tool handlers only when asked to (--tools).
    const module = kind === "inference" && !values.tools ? { tools: [], permissions: {} } : await loadToolModule(values.tools);
    if (values.permissions) module.permissions = loadPermissionsFile(values.permissions);
    const toolSet = { tools: module.tools, permissions: module.permissions };
    member =
      kind === "tools"
        ? createToolsWorker({ ...common, ...toolSet })
        : kind === "gateway"
          ? createGateway({
              ...common,
              ...toolSet,
              platform: gatewayPlatform(values, config, logger),
              ...(values.shard !== undefined ? { shard: values.shard } : {}),
            })
          : createInferenceWorker({ ...common, ...toolSet });
    await member.start();
  } catch (err) {
    config.close();
    throw err;
  }
  const { workerId } = member;
  console.log(`${kind} worker ${workerId} ready: ${member.description} on ${redactRedisUrl(member.redisUrl)} (namespace ${config.get().namespace})`);
  const ready: ReadyMessage = { type: "ready", kind, pid: process.pid, ...(member.url ? { url: member.url } : {}) };
  if (supervised) {
    process.off("disconnect", goneBeforeReady);
    if (process.connected) process.send?.(ready);
  }

  await untilStopSignal(logger, `${kind} worker ${workerId}`, { supervised });
  try {
    await member.stop();
  } catch (err) {
    logger.error({ worker: workerId, ...errorFields(err) }, "graceful stop failed");
    return 1;
  } finally {
    config.close();
  }
  console.log(`${kind} worker ${workerId} stopped`);
  return 0;
}

function gatewayPlatform(values: Record<string, string | undefined>, config: LiveConfig, logger: Logger): ChatPlatform {
  const kind = values.adapter ?? "console";
  if (kind === "console") {
    if (values.host !== undefined || values.port !== undefined) throw new ToolfleetError("USAGE", "--host and --port are for --adapter http");
    return new ConsoleAdapter();
  }
  if (kind === "http") {
    const secret = config.get().webSecret;
    return new HttpChatAdapter({ logger, host: values.host ?? "127.0.0.1", port: port(values.port), ...(secret ? { secret } : {}) });
  }
  throw new ToolfleetError("USAGE", `--adapter: expected console or http, got '${kind}'`);
}
