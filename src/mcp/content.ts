import type { CallToolResult, ContentBlock, Tool } from "@modelcontextprotocol/sdk/types.js";
import type { SentFile } from "../core/context.js";
import { isFailure, type CallOutcome } from "../core/outcome.js";
import { MAX_CONTENT_PARTS, toolResult, type ContentPart, type StructuredResult } from "../core/result.js";
import type { ToolAnnotations } from "../core/tool.js";
import type { CatalogTool } from "../tool-exec/catalog.js";

/**
 * The one mapping between toolfleet's and MCP's shapes (docs/mcp.md, the mapping table), both ways:
 * hints, tools and results from an MCP server (a tools worker's source), and to an MCP client
 * (`toolfleet mcp`). Audio, which toolfleet has no part for, travels as a resource whose uri is
 * `data:<type>;base64`, and turns back into audio on the way out.
 */

const HINTS = ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] as const;

/** MCP's hints as they are (defineTool sets toolfleet's own names beside them); `title` and unknown keys are dropped. */
export function annotationsFrom(tool: Tool): ToolAnnotations {
  const out: ToolAnnotations = {};
  const given = (tool.annotations ?? {}) as Record<string, unknown>;
  for (const hint of HINTS) if (typeof given[hint] === "boolean") out[hint] = given[hint];
  return out;
}

/** A fleet tool's hints in MCP's names: toolfleet's own names (`readOnly` …) or MCP's, whichever is set. */
export function annotationsTo(given: ToolAnnotations): NonNullable<Tool["annotations"]> {
  const out: NonNullable<Tool["annotations"]> = {};
  const pairs = [
    ["readOnlyHint", given.readOnlyHint ?? given.readOnly],
    ["destructiveHint", given.destructiveHint ?? given.destructive],
    ["idempotentHint", given.idempotentHint ?? given.idempotent],
    ["openWorldHint", given.openWorldHint],
  ] as const;
  for (const [hint, value] of pairs) if (value !== undefined) out[hint] = value;
  return out;
}

/** A catalog tool as MCP lists it: its schema as published (2020-12 keywords kept), hints, and its output schema when it has one. */
export function toolToMcp(tool: Pick<CatalogTool, "name" | "description" | "parameters" | "annotations" | "outputSchema">): Tool {
  const annotations = annotationsTo(tool.annotations);
  return {
    name: tool.name,
    description: tool.description,
    inputSchema: tool.parameters as Tool["inputSchema"],
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    ...(tool.outputSchema ? { outputSchema: tool.outputSchema as NonNullable<Tool["outputSchema"]> } : {}),
  };
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

/** A fleet content part as MCP content: the reverse of partFromMcp (a `data:audio/…;base64` resource is audio again). */
export function partToMcp(part: ContentPart): ContentBlock {
  if (part.type === "text") return { type: "text", text: part.text };
  if (part.type === "image") return { type: "image", data: part.data, mimeType: part.mimeType };
  const r = part.resource;
  const mimeType = r.mimeType ?? "";
  if (r.blob !== undefined && r.uri === `data:${mimeType};base64` && mimeType.startsWith("audio/")) return { type: "audio", data: r.blob, mimeType };
  const meta = r.mimeType !== undefined ? { mimeType: r.mimeType } : {};
  // MCP's embedded resource has text or blob; a fleet part with neither is an empty text.
  const resource = r.blob !== undefined ? { uri: r.uri, ...meta, blob: r.blob } : { uri: r.uri, ...meta, text: r.text ?? "" };
  return { type: "resource", resource };
}

/** A file a tool sent (the write-back) as an embedded resource: its bytes, base64, named by a `file:` uri. */
export function fileToMcp(file: SentFile): ContentBlock {
  const uri = `file:///${encodeURIComponent(file.name)}`;
  return { type: "resource", resource: { uri, mimeType: file.contentType, blob: Buffer.from(file.data).toString("base64") } };
}

/**
 * How a fleet call ended, as an MCP result: its parts (or its text), the files it sent, its structured
 * content, and `isError` for every kind that is a failure (the text says which: denied, timed out …).
 */
export function resultToMcp(outcome: CallOutcome, files: readonly SentFile[] = []): CallToolResult {
  const result = outcome.result;
  const content: ContentBlock[] = result && result.content.length > 0 ? result.content.map(partToMcp) : [{ type: "text", text: outcome.text }];
  content.push(...files.map(fileToMcp));
  const out: CallToolResult = { content };
  if (result?.structuredContent !== undefined) out.structuredContent = result.structuredContent;
  if (result?.isError === true || isFailure(outcome.kind)) out.isError = true;
  return out;
}
