import { createHash } from "node:crypto";
import stringify from "safe-stable-stringify";
import { z } from "zod";
import type { Permissions } from "../core/registry.js";
import { TOOL_NAME_PATTERN, type ToolAnnotations, type ToolDefinition, type ToolPin } from "../core/tool.js";
import type { JsonSchema } from "../core/validate.js";
import { ToolfleetError } from "../core/errors.js";

const CATALOG_VERSION = 1;

/** One tool as the catalog describes it: everything but the handler. */
export interface CatalogTool {
  name: string;
  description: string;
  parameters: JsonSchema;
  allowRepeat: boolean;
  noBackground: boolean;
  annotations: ToolAnnotations;
  /** Hash of this tool's canonical description: a change to it, and only it, makes callers stale for this tool. */
  schemaHash: string;
  /** The tool's own time limit, milliseconds (v1.1; absent: the config's). */
  timeoutMs?: number;
  /** The tier the tool is pinned to by its definition (v1.1). */
  pin?: ToolPin;
  /** JSON Schema of its structured content (v1.1). */
  outputSchema?: JsonSchema;
}

export interface Catalog {
  version: number;
  /** Hash over every tool hash and the permissions. */
  schemaHash: string;
  /** Unix epoch milliseconds. */
  publishedAt: number;
  tools: CatalogTool[];
  permissions: Permissions;
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

// Canonical form: keys sorted at every depth, so equal tools hash equal
// whatever order their schemas were written in.
function canonical(value: unknown): string {
  const text = stringify(value);
  if (text === undefined) throw new ToolfleetError("CATALOG_INVALID", "catalog value cannot be serialised");
  return text;
}

export function toolSchemaHash(
  def: Pick<ToolDefinition, "name" | "description" | "parameters" | "allowRepeat" | "noBackground" | "annotations" | "timeoutMs" | "pin" | "outputSchema">,
): string {
  const { name, description, parameters, allowRepeat, noBackground, annotations, timeoutMs, pin, outputSchema } = def;
  // The v1.1 members are left out when unset (undefined is not serialised): a tool without them hashes as before.
  return sha256(canonical({ name, description, parameters, allowRepeat, noBackground, annotations, timeoutMs, pin, outputSchema }));
}

/** The catalog of a registry's tools and permissions; the same tools always give the same hashes. */
export function buildCatalog(tools: readonly ToolDefinition[], permissions: Permissions, now = Date.now()): Catalog {
  const entries = [...tools]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((t) => ({
      name: t.name,
      description: t.description,
      parameters: t.parameters,
      allowRepeat: t.allowRepeat,
      noBackground: t.noBackground,
      annotations: { ...t.annotations },
      schemaHash: toolSchemaHash(t),
      ...(t.timeoutMs !== undefined ? { timeoutMs: t.timeoutMs } : {}),
      ...(t.pin !== undefined ? { pin: t.pin } : {}),
      ...(t.outputSchema !== undefined ? { outputSchema: t.outputSchema } : {}),
    }));
  const perms = Object.fromEntries(Object.entries(permissions).map(([tool, users]) => [tool, [...users].sort()]));
  return { version: CATALOG_VERSION, schemaHash: buildCatalogHash(entries, perms), publishedAt: now, tools: entries, permissions: perms };
}

/** A catalog's hash: over every tool's hash (tools sorted by name) and the permissions. */
export function buildCatalogHash(tools: readonly Pick<CatalogTool, "name" | "schemaHash">[], permissions: Permissions): string {
  return sha256(canonical({ tools: tools.map((t) => [t.name, t.schemaHash]), permissions }));
}

export const catalogSchema = z.object({
  version: z.literal(CATALOG_VERSION),
  schemaHash: z.string().regex(/^[0-9a-f]{64}$/),
  publishedAt: z.number().int().nonnegative(),
  tools: z
    .array(
      z.object({
        name: z.string().regex(TOOL_NAME_PATTERN),
        description: z.string(),
        parameters: z.record(z.string(), z.unknown()),
        allowRepeat: z.boolean(),
        noBackground: z.boolean(),
        annotations: z.object({
          readOnly: z.boolean().optional(),
          idempotent: z.boolean().optional(),
          destructive: z.boolean().optional(),
          readOnlyHint: z.boolean().optional(),
          idempotentHint: z.boolean().optional(),
          destructiveHint: z.boolean().optional(),
          openWorldHint: z.boolean().optional(),
        }),
        schemaHash: z.string().regex(/^[0-9a-f]{64}$/),
        timeoutMs: z.number().positive().optional(),
        pin: z.enum(["gateway", "inference"]).optional(),
        outputSchema: z.record(z.string(), z.unknown()).optional(),
      }),
    )
    .max(10_000),
  permissions: z.record(z.string(), z.array(z.string())),
});
