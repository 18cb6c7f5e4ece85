import { createHash } from "node:crypto";
import stringify from "safe-stable-stringify";
import { z } from "zod";
import { parseJson } from "../core/json.js";
import { within } from "../core/within.js";
import { errorFields, type Logger } from "../core/log.js";
import type { Permissions } from "../core/registry.js";
import { TOOL_NAME_PATTERN, type ToolAnnotations, type ToolDefinition, type ToolPin } from "../core/tool.js";
import type { JsonSchema } from "../core/validate.js";
import { duplicateConnection, type RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
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
  const schemaHash = sha256(canonical({ tools: entries.map((t) => [t.name, t.schemaHash]), permissions: perms }));
  return { version: CATALOG_VERSION, schemaHash, publishedAt: now, tools: entries, permissions: perms };
}

const catalogSchema = z.object({
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

/** Stores the catalog, then tells every watcher to reload, in one MULTI. */
export async function publishCatalog(redis: RedisClient, keys: Keys, catalog: Catalog): Promise<void> {
  await redis.multi().set(keys.catalog, JSON.stringify(catalog)).publish(keys.catalogChanged, catalog.schemaHash).exec();
}

/** The published catalog, validated; null when none is published. A corrupt one throws a ToolfleetError (CATALOG_INVALID). */
export async function loadCatalog(redis: RedisClient, keys: Keys): Promise<Catalog | null> {
  const raw = await redis.get(keys.catalog);
  if (raw === null) return null;
  const parsed = parseJson(catalogSchema, raw);
  if (!parsed.ok) throw new ToolfleetError("CATALOG_INVALID", `the catalog at ${keys.catalog} is invalid: ${parsed.reason}`);
  return parsed.value;
}

export interface CatalogWatch {
  close(): Promise<void>;
}

/**
 * Calls `onChange` on every change notice, and after every reconnect (a
 * notice sent while the connection was down is lost, so reload anyway).
 * Uses its own connection: a subscribed connection can do nothing else.
 */
export async function watchCatalog(
  redis: RedisClient,
  keys: Keys,
  options: { url: string; logger: Logger; onChange: () => Promise<void> | void },
): Promise<CatalogWatch> {
  const subscriber = await duplicateConnection(redis, { url: options.url, logger: options.logger, name: "catalog-watch" });
  const run = (why: string): void => {
    Promise.resolve()
      .then(options.onChange)
      .catch((err: unknown) => options.logger.error({ why, ...errorFields(err) }, "catalog reload failed"));
  };
  let connectedOnce = false;
  subscriber.on("ready", () => {
    // node-redis resubscribes by itself after a reconnect; we only reload.
    if (connectedOnce) run("reconnected");
    connectedOnce = true;
  });
  connectedOnce = subscriber.isReady;
  try {
    await subscriber.subscribe(keys.catalogChanged, () => run("notice"));
  } catch (err) {
    // Refused (an ACL without the channel, say): the connection would stay open with no one to close it.
    subscriber.destroy();
    throw err;
  }
  return {
    close: async () => {
      subscriber.removeAllListeners("ready");
      try {
        // Bounded: a Redis that stops answering must not hold stop() up; the connection goes either way.
        if (subscriber.isReady) await within(subscriber.unsubscribe(keys.catalogChanged), 1000, "unsubscribing from catalog changes");
      } catch (err) {
        options.logger.warn({ ...errorFields(err) }, "could not unsubscribe from catalog changes; closing the connection anyway");
      } finally {
        subscriber.destroy();
      }
    },
  };
}
