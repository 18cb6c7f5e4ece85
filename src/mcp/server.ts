import { createHash } from "node:crypto";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  SetLevelRequestSchema,
  type CallToolResult,
  type LoggingLevel,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { ToolContext } from "../core/context.js";
import { errorFields, type Logger } from "../core/log.js";
import { LOG_LEVELS, type ProgressUpdate, type ToolLog } from "../core/progress.js";
import type { ToolDefinition, ToolPin } from "../core/tool.js";
import { packageVersion } from "../core/version.js";
import type { RemoteToolRegistry } from "../inference/remote-registry.js";
import type { CatalogTool } from "../tool-exec/catalog.js";
import { resultToMcp, toolToMcp } from "./content.js";

/**
 * One JSON Schema validator for every server instance: the SDK's default makes an Ajv of its own per
 * server, and over HTTP a server is made per request (its validator serves only elicitation, unused here).
 */
const VALIDATOR = new AjvJsonSchemaValidator();

/** Log levels, least severe first (MCP's are syslog's, as toolfleet's). */
const SEVERITY: readonly string[] = LOG_LEVELS;

/** Who a server instance speaks for: the user a token named, and the session (HTTP) it belongs to. */
export interface McpCaller {
  user: string;
  /** The MCP session id (HTTP); a stdio server has one connection and none. */
  session?: string;
}

export interface McpToolsOptions {
  /** The inference tier's routing: a call goes to the tools service, a gateway or runs here, as for a chat. */
  registry: RemoteToolRegistry;
  logger: Logger;
  /** Where logging/setLevel is kept (HTTP: Redis, for every replica; stdio: the process). */
  setLogLevel: (caller: McpCaller, level: LoggingLevel) => Promise<void>;
  /** The level a caller's session asked for; undefined: it asked for none, and gets no log messages. */
  logLevel: (caller: McpCaller) => Promise<LoggingLevel | undefined>;
  /**
   * Whether a tool (its name, and its pin as the catalog gives it) runs only on a gateway: it acts on a
   * chat, which an MCP call has not, so MCP clients are neither shown it nor may call it (docs/mcp.md).
   */
  gatewayPinned: (name: string, pin: ToolPin | undefined) => boolean;
  /** Gives a running call a signal another replica's notifications/cancelled can abort (HTTP); absent: the SDK's own (stdio). */
  track?: (caller: McpCaller, requestId: string | number, signal: AbortSignal) => { signal: AbortSignal; done: () => void };
}

/** The tools a user may see: the merged catalog's (or, with no live worker, the local registry's), those they may run, but gateway-pinned ones. */
export function listFor(registry: RemoteToolRegistry, user: string, gatewayPinned: McpToolsOptions["gatewayPinned"]): Tool[] {
  const tools: readonly (CatalogTool | ToolDefinition)[] = registry.mergedCatalog?.tools ?? registry.listTools();
  return tools.filter((t) => registry.isAllowed(t.name, user) && !gatewayPinned(t.name, t.pin)).map(toolToMcp);
}

/**
 * An SDK `Server` that serves the fleet's catalog to one caller (docs/mcp.md, "toolfleet mcp"):
 * tools/list from the catalog, tools/call through the registry's routing (durable and exactly-once
 * as any fleet call), progress and cancellation mapped onto the call's `onProgress` and `signal`.
 */
export function fleetMcpServer(caller: McpCaller, options: McpToolsOptions): Server {
  const server = new Server(
    { name: "toolfleet", version: packageVersion() },
    { capabilities: { tools: { listChanged: true }, logging: {} }, instructions: "The tools of a toolfleet fleet.", jsonSchemaValidator: VALIDATOR },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: listFor(options.registry, caller.user, options.gatewayPinned) }));
  server.setRequestHandler(CallToolRequestSchema, (request, extra) => callTool(caller, options, request.params, extra));
  server.setRequestHandler(SetLevelRequestSchema, async (request) => {
    await options.setLogLevel(caller, request.params.level);
    return {};
  });
  return server;
}

export type CallParams = { name: string; arguments?: Record<string, unknown>; _meta?: { progressToken?: string | number } };
export type CallExtra = {
  signal: AbortSignal;
  requestId: string | number;
  sendNotification: Server["notification"];
};

/**
 * A tools/call, the one code for it: the SDK server's handler above, and the HTTP server's answer
 * without an SDK server (src/mcp/fast-call.ts). A thrown error with a numeric `code` is that JSON-RPC error.
 */
export async function callTool(caller: McpCaller, options: McpToolsOptions, params: CallParams, extra: CallExtra): Promise<CallToolResult> {
  const { registry, logger } = options;
  // Not listed (listFor), so not callable either: answered as for a tool the server does not have.
  const catalogPin = registry.mergedCatalog?.tools.find((t) => t.name === params.name)?.pin;
  if (options.gatewayPinned(params.name, catalogPin))
    throw Object.assign(new Error(`Tool '${params.name}' acts on a chat and runs only on a gateway: MCP clients cannot call it`), {
      code: ErrorCode.InvalidParams,
    });
  const token = params._meta?.progressToken;
  const onProgress =
    token === undefined
      ? undefined
      : (update: ProgressUpdate): void => {
          extra
            .sendNotification({ method: "notifications/progress", params: { progressToken: token, ...update } })
            .catch((err: unknown) => logger.debug({ tool: params.name, ...errorFields(err) }, "an MCP progress notification could not be sent"));
        };
  // Log messages only for a session that asked (logging/setLevel), in order, at or above its level, all before the result.
  const min = await options.logLevel(caller);
  let logged: Promise<unknown> = Promise.resolve();
  const onLog =
    min === undefined
      ? undefined
      : (log: ToolLog): void => {
          if (SEVERITY.indexOf(log.level) < SEVERITY.indexOf(min)) return;
          const message = { level: log.level, logger: params.name, data: log.message };
          logged = logged
            .then(() => extra.sendNotification({ method: "notifications/message", params: message }))
            .catch((err: unknown) => logger.debug({ tool: params.name, ...errorFields(err) }, "an MCP log message could not be sent"));
        };
  const tracked = options.track?.(caller, extra.requestId, extra.signal);
  const ctx = new ToolContext({
    platform: "mcp",
    userId: caller.user,
    userName: caller.user,
    // One trace per session ties its calls' log lines together, and lets them share one session record
    // (written once by this tier, read once by each worker: src/tool-exec/session.ts). Named by a hash:
    // a session id is not written where logs and keys can show it.
    ...(caller.session !== undefined ? { observabilityRequestId: traceOf(caller.session) } : {}),
  });
  try {
    const outcome = await registry.execute(params.name, params.arguments ?? {}, {
      userId: caller.user,
      ctx,
      signal: tracked?.signal ?? extra.signal,
      ...(onLog ? { onLog } : {}),
      ...(onProgress ? { onProgress } : {}),
    });
    await logged;
    // An unknown tool is a protocol error in MCP (the SDK's own server answers it so), not a tool's failure.
    // (A plain Error with a numeric code, which the SDK answers as that JSON-RPC error: McpError would put
    // "MCP error -32602:" into the message the client prefixes again, and a ToolfleetError's code is a
    // string, which the SDK answers as -32603 Internal error.)
    if (outcome.kind === "unknown_tool") throw Object.assign(new Error(outcome.text), { code: ErrorCode.InvalidParams });
    return resultToMcp(outcome, ctx.sentFiles);
  } finally {
    tracked?.done();
  }
}

function traceOf(session: string): string {
  return `mcp-${createHash("sha256").update(session).digest("hex").slice(0, 32)}`;
}
