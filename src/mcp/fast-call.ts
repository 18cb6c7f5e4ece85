import type { IncomingMessage, ServerResponse } from "node:http";
import { safeParse } from "@modelcontextprotocol/sdk/server/zod-compat.js";
import {
  CallToolRequestSchema,
  CallToolResultSchema,
  ErrorCode,
  McpError,
  RELATED_TASK_META_KEY,
  SUPPORTED_PROTOCOL_VERSIONS,
} from "@modelcontextprotocol/sdk/types.js";
import { callTool, type McpCaller, type McpToolsOptions } from "./server.js";

/** A POST's JSON-RPC message, once the SDK's JSONRPCMessageSchema has passed it (src/mcp/http.ts). */
export type Message = { method?: unknown; id?: unknown; params?: Record<string, unknown> };

const REQUEST_KEYS: ReadonlySet<string> = new Set(["jsonrpc", "id", "method", "params"]);
const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isIdOrToken = (x: unknown): boolean => typeof x === "string" || Number.isSafeInteger(x);

/**
 * Whether the SDK's JSONRPCMessageSchema surely accepts `m` as a request (its JSONRPCRequestSchema,
 * node_modules/@modelcontextprotocol/sdk/dist/esm/types.js: only the keys jsonrpc "2.0", an id, a
 * method and params, an object whose `_meta`, if any, holds no related task and a string or integer
 * progress token, if any). Enough, not exact: a message that fails here is left to the schema, which
 * costs more than the rest of a call's parsing (docs/benchmarks.md, "MCP").
 */
export function surelyRequest(m: unknown): boolean {
  if (!isObject(m) || m.jsonrpc !== "2.0" || typeof m.method !== "string" || !isIdOrToken(m.id)) return false;
  for (const key in m) if (!REQUEST_KEYS.has(key)) return false;
  const params = m.params;
  if (params === undefined) return !("params" in m);
  if (!isObject(params)) return false;
  const meta = params._meta;
  if (meta === undefined) return !("_meta" in params);
  return (
    isObject(meta) && !(RELATED_TASK_META_KEY in meta) && (meta.progressToken === undefined ? !("progressToken" in meta) : isIdOrToken(meta.progressToken))
  );
}

/**
 * Whether a POST's one message is a tools/call `answerCall` may answer: a request (it has an id) that
 * is not about a task (the SDK's task handling, which this server offers none of, stays with the SDK).
 * The caller checks the rest: not in a batch, and answered in JSON (no progress, no log messages).
 */
export function isPlainCall(message: Message): message is Message & { id: string | number } {
  if (message.method !== "tools/call" || (typeof message.id !== "string" && typeof message.id !== "number")) return false;
  const params = message.params;
  if (params === undefined) return true;
  const meta = params._meta;
  return !("task" in params) && !(typeof meta === "object" && meta !== null && RELATED_TASK_META_KEY in meta);
}

/**
 * Answers one tools/call in JSON as the SDK's stateless server and transport would (src/mcp/http.ts
 * makes one per request for everything else), without making them: they cost more than the call itself
 * (docs/benchmarks.md, "MCP"). Mirrors node_modules/@modelcontextprotocol/sdk/dist/esm/: the transport's
 * protocol-version check (server/webStandardStreamableHttp.js), the request's parse and the result's
 * check (shared/protocol.js `setRequestHandler`, server/index.js's tools/call wrapper), a thrown error
 * as the JSON-RPC error `_onrequest` makes of it, and the request's signal aborted when its connection
 * closes, after which nothing is sent. The call itself is the SDK server's own handler, `callTool`.
 */
export async function answerCall(
  caller: McpCaller,
  options: McpToolsOptions,
  req: IncomingMessage,
  res: ServerResponse,
  message: Message & { id: string | number },
): Promise<void> {
  const given = req.headers["mcp-protocol-version"];
  const version = Array.isArray(given) ? given.join(", ") : given;
  if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    const text = `Bad Request: Unsupported protocol version: ${version} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")})`;
    return send(res, 400, { jsonrpc: "2.0", error: { code: -32000, message: text }, id: null });
  }
  const { id } = message;
  const closed = new AbortController();
  const abort = (): void => closed.abort();
  res.once("close", abort);
  let answer: object;
  try {
    // The request as the SDK's Protocol parses it, or its parse error thrown (shared/protocol.js `parseWithCompat`).
    const request = safeParse(CallToolRequestSchema, message);
    if (!request.success) throw request.error;
    const result = await callTool(caller, options, request.data.params, {
      signal: closed.signal,
      requestId: id,
      // Only progress and log messages are sent before a result, and a call that could have them is streamed
      // by the SDK's server instead; a JSON answer has no room for them (the SDK's JSON mode drops them too).
      sendNotification: () => Promise.resolve(),
    });
    const checked = safeParse(CallToolResultSchema, result);
    if (!checked.success) throw new McpError(ErrorCode.InvalidParams, `Invalid tools/call result: ${messageOf(checked.error)}`);
    answer = { result: checked.data, jsonrpc: "2.0", id };
  } catch (error) {
    answer = { jsonrpc: "2.0", id, error: jsonRpcError(error) };
  } finally {
    res.off("close", abort);
  }
  // The client went away: the SDK's server sends nothing for an aborted request either.
  if (closed.signal.aborted) return;
  send(res, 200, answer);
}

/** A thrown error as the SDK's Protocol answers it: its numeric code or Internal error, its message, its data. */
function jsonRpcError(error: unknown): { code: number; message: string; data?: unknown } {
  const fields = (typeof error === "object" && error !== null ? error : {}) as { code?: unknown; message?: unknown; data?: unknown };
  const code = typeof fields.code === "number" && Number.isSafeInteger(fields.code) ? fields.code : ErrorCode.InternalError;
  return {
    code,
    message: (fields.message as string | undefined) ?? "Internal error",
    ...(fields.data !== undefined ? { data: fields.data } : {}),
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function send(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
}
