import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import type { ToolContext } from "../core/context.js";
import { ToolfleetError } from "../core/errors.js";
import { MAX_CONTENT_PARTS, toolResult, type ContentPart, type StructuredResult } from "../core/result.js";
import { TOOL_NAME_PATTERN, defineTool, type ToolAnnotations, type ToolDefinition } from "../core/tool.js";
import type { JsonSchema } from "../core/validate.js";

/**
 * The mapping between an MCP server's tools and fleet tools (docs/mcp.md, "MCP servers as tool
 * sources"): names, schemas and hints one way, call results the other.
 */

/** Runs the MCP tool `mcpName` on its server, with the fleet call's signal and progress. */
export type McpCaller = (mcpName: string, args: Record<string, unknown>, ctx: ToolContext) => Promise<CallToolResult>;

/**
 * The fleet name of an MCP tool: the prefix, then its name with every character a fleet name may not have
 * (MCP allows `.` and `/`) as `_`; null when that is no valid fleet name (over 64 characters).
 */
export function fleetToolName(prefix: string, mcpName: string): string | null {
  const name = `${prefix}${mcpName.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  return TOOL_NAME_PATTERN.test(name) ? name : null;
}

const HINTS = ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] as const;

/** MCP's hints as they are (defineTool sets toolfleet's own names beside them); `title` and unknown keys are dropped. */
export function annotationsFrom(tool: Tool): ToolAnnotations {
  const out: ToolAnnotations = {};
  const given = (tool.annotations ?? {}) as Record<string, unknown>;
  for (const hint of HINTS) if (typeof given[hint] === "boolean") out[hint] = given[hint];
  return out;
}

/** A fleet tool that runs `tool` on its MCP server through `call`; throws TOOL_DEFINITION_INVALID for a tool it cannot take. */
export function toolFromMcp(tool: Tool, name: string, call: McpCaller): ToolDefinition {
  const outputSchema = tool.outputSchema as JsonSchema | undefined;
  return defineTool({
    name,
    description: tool.description ?? tool.title ?? "",
    parameters: tool.inputSchema,
    annotations: annotationsFrom(tool),
    ...(outputSchema ? { outputSchema } : {}),
    handler: async (args, ctx) => resultFromMcp(await call(tool.name, args, ctx)),
  });
}

/**
 * An MCP `CallToolResult` as toolfleet's structured result. Text, image and embedded resources map
 * one to one; audio becomes a resource with its bytes (a `data:` uri); a resource link becomes a
 * text line the model can read; parts past the wire's limit are dropped with a note.
 */
export function resultFromMcp(result: CallToolResult): StructuredResult {
  // A server on the 2024-10-07 protocol may answer { toolResult } instead of content.
  const legacy = (result as { toolResult?: unknown }).toolResult;
  const given = Array.isArray(result.content) ? result.content : legacy === undefined ? [] : [{ type: "text", text: JSON.stringify(legacy) }];
  const content = given.slice(0, MAX_CONTENT_PARTS - 1).map(partFromMcp);
  if (given.length > content.length) content.push({ type: "text", text: `(${given.length - content.length} more content parts were dropped)` });
  const sc = result.structuredContent;
  return toolResult({
    content,
    ...(sc && typeof sc === "object" && !Array.isArray(sc) ? { structuredContent: sc as StructuredResult["structuredContent"] & object } : {}),
    ...(result.isError === true ? { isError: true } : {}),
  });
}

function partFromMcp(part: unknown): ContentPart {
  const p = (typeof part === "object" && part !== null ? part : {}) as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  switch (p.type) {
    case "text":
      return { type: "text", text: str(p.text) ?? "" };
    case "image":
      return { type: "image", data: str(p.data) ?? "", mimeType: str(p.mimeType) ?? "" };
    case "audio": {
      const mimeType = str(p.mimeType) ?? "application/octet-stream";
      return { type: "resource", resource: { uri: `data:${mimeType};base64`, mimeType, blob: str(p.data) ?? "" } };
    }
    case "resource": {
      const r = (typeof p.resource === "object" && p.resource !== null ? p.resource : {}) as Record<string, unknown>;
      const out: Extract<ContentPart, { type: "resource" }>["resource"] = { uri: str(r.uri) ?? "" };
      for (const key of ["mimeType", "text", "blob"] as const) {
        const v = str(r[key]);
        if (v !== undefined) out[key] = v;
      }
      return { type: "resource", resource: out };
    }
    case "resource_link": {
      const about = str(p.description);
      return { type: "text", text: `Resource link: ${str(p.title) ?? str(p.name) ?? ""} ${str(p.uri) ?? ""}${about ? ` (${about})` : ""}`.trim() };
    }
    default:
      return { type: "text", text: `(a content part of type ${JSON.stringify(p.type)} that toolfleet does not carry)` };
  }
}

/** A failed MCP call as a ToolfleetError naming the server and the tool: closed connection, protocol error, or the server's own. */
export function callError(label: string, mcpName: string, err: unknown, aborted: boolean): ToolfleetError {
  if (err instanceof ToolfleetError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (aborted) return new ToolfleetError("CANCELLED", `The call to '${mcpName}' on MCP server ${label} was cancelled.`, { cause: err });
  if (/connection closed|not connected/i.test(message)) {
    return new ToolfleetError("MCP_SERVER_DOWN", `MCP server ${label} went away during the call to '${mcpName}'; it is being restarted, try again.`, {
      cause: err,
    });
  }
  return new ToolfleetError("MCP_CALL_FAILED", `MCP server ${label} failed the call to '${mcpName}': ${message}`, { cause: err });
}
