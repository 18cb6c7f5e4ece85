import type { JsonValue } from "./context.js";
import { ToolfleetError } from "./errors.js";

/**
 * Structured tool results, in the shape MCP uses (`CallToolResult`): content
 * parts, optional structured content, and an `isError` flag. A handler returns
 * one made by `toolResult()`; a tool with an `outputSchema` may also return a
 * plain object, which becomes its structured content. The model still reads
 * text: `resultText()` is what it sees.
 */
export type ContentPart =
  | { type: "text"; text: string }
  /** Image bytes, base64, as MCP carries them. */
  | { type: "image"; data: string; mimeType: string }
  /** A file or any resource, inline: `text`, or `blob` (base64). */
  | { type: "resource"; resource: { uri: string; mimeType?: string; text?: string; blob?: string } };

export interface StructuredResult {
  content: ContentPart[];
  structuredContent?: { [key: string]: JsonValue };
  /** The tool failed, and `content` says how (the call's kind is `error`). */
  isError?: boolean;
}

const BRAND: unique symbol = Symbol("toolfleet.toolResult");
type Branded = StructuredResult & { readonly [BRAND]: true };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A structured result for a handler to return; checked here, so a bad part fails in the tool that made it. */
export function toolResult(result: StructuredResult): StructuredResult {
  const problem = resultProblem(result);
  if (problem) throw new ToolfleetError("RESULT_INVALID", `toolResult(): ${problem}`);
  const out: StructuredResult = { content: result.content.map((p) => ({ ...p })) };
  if (result.structuredContent !== undefined) out.structuredContent = result.structuredContent;
  if (result.isError) out.isError = true;
  Object.defineProperty(out, BRAND, { value: true });
  return out;
}

export function isToolResult(value: unknown): value is StructuredResult {
  return typeof value === "object" && value !== null && (value as Partial<Branded>)[BRAND] === true;
}

/** What is wrong with a result (from a handler or from the wire), or null. */
/** Content parts a result may have, at most (what a reply carries). */
export const MAX_CONTENT_PARTS = 1000;

export function resultProblem(result: unknown): string | null {
  if (typeof result !== "object" || result === null) return "a result must be an object";
  const r = result as Partial<StructuredResult>;
  if (!Array.isArray(r.content)) return "content must be an array of parts";
  // The wire's limit (src/tool-exec/codec.ts): past it a caller would refuse the reply of a tool that ran.
  if (r.content.length > MAX_CONTENT_PARTS) return `content has ${r.content.length} parts, over the limit of ${MAX_CONTENT_PARTS}`;
  for (const [i, part] of r.content.entries()) {
    const problem = partProblem(part);
    if (problem) return `content[${i}]: ${problem}`;
  }
  const sc: unknown = r.structuredContent;
  if (sc !== undefined && (typeof sc !== "object" || sc === null || Array.isArray(sc))) return "structuredContent must be a JSON object";
  if (r.isError !== undefined && typeof r.isError !== "boolean") return "isError must be a boolean";
  return null;
}

function partProblem(part: unknown): string | null {
  if (typeof part !== "object" || part === null) return "a part must be an object";
  const p = part as Record<string, unknown>;
  switch (p.type) {
    case "text":
      return typeof p.text === "string" ? null : "a text part needs text";
    case "image":
      if (typeof p.mimeType !== "string" || !p.mimeType.startsWith("image/")) return "an image part needs an image/* mimeType";
      return typeof p.data === "string" && BASE64.test(p.data) ? null : "an image part needs base64 data";
    case "resource": {
      const r = p.resource as Record<string, unknown> | undefined;
      if (typeof r !== "object" || r === null || typeof r.uri !== "string" || r.uri === "") return "a resource part needs resource.uri";
      if (r.mimeType !== undefined && typeof r.mimeType !== "string") return "resource.mimeType must be a string";
      if (r.text !== undefined && typeof r.text !== "string") return "resource.text must be a string";
      if (r.blob !== undefined && (typeof r.blob !== "string" || !BASE64.test(r.blob))) return "resource.blob must be base64";
      return null;
    }
    default:
      return `unknown part type ${JSON.stringify(p.type)} (text, image, resource)`;
  }
}

/**
 * The text the model sees: the text parts (and inline text resources) in order; with none, the
 * structured content as JSON. Images reach the model as image parts (the LLM loop adds them).
 */
export function resultText(result: StructuredResult): string {
  const texts: string[] = [];
  for (const part of result.content) {
    if (part.type === "text") texts.push(part.text);
    else if (part.type === "resource" && part.resource.text !== undefined) texts.push(part.resource.text);
  }
  if (texts.length > 0) return texts.join("\n");
  return result.structuredContent === undefined ? "" : JSON.stringify(result.structuredContent);
}

/** The image parts of a result, for the LLM loop. */
export function imageParts(result: StructuredResult | undefined): { data: string; mimeType: string }[] {
  if (!result) return [];
  return result.content.flatMap((p) => (p.type === "image" ? [{ data: p.data, mimeType: p.mimeType }] : []));
}
