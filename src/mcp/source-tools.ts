import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import type { ToolContext } from "../core/context.js";
import { ToolfleetError } from "../core/errors.js";
import { TOOL_NAME_PATTERN, defineTool, type ToolDefinition } from "../core/tool.js";
import type { JsonSchema } from "../core/validate.js";
import { annotationsFrom, resultFromMcp } from "./content.js";

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
