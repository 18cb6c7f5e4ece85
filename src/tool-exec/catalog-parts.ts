import { z } from "zod";
import { parseJson } from "../core/json.js";
import { errorFields, type Logger } from "../core/log.js";
import { ToolfleetError } from "../core/errors.js";
import { closeSubscriber, duplicateConnection, type RedisClient } from "../redis/client.js";
import { ID_PATTERN, MAX_SHARDS, POOL_PATTERN, checkedShards, type Keys } from "../redis/keys.js";
import { catalogSchema, type Catalog } from "./catalog.js";
import { mergeCatalog, type CatalogPart, type MergedCatalog } from "./catalog-merge.js";
import { CATALOG_PRESENCE_LUA } from "./catalog-presence-script.js";

/** How often a tools worker refreshes its part's life. */
export const PRESENCE_REFRESH_MS = 1000;
/** A part's life: three refreshes, so a worker that misses one or two is not taken for dead. */
export const PRESENCE_TTL_MS = 3 * PRESENCE_REFRESH_MS;
/** The publishers' index outlives its last publisher by this much, then goes. */
const INDEX_TTL_MS = 60_000;

/** Who publishes a part: a tools worker of a pool. */
export interface Publisher {
  pool: string;
  workerId: string;
  /** How many shard streams of the pool it reads (docs/protocol.md §1.3); absent: 1. */
  shards?: number;
}

/**
 * The index member of a part: its publisher and the first 16 hex digits of its catalog's hash, and
 * `/draining` while the worker stops (it finishes what it holds and takes nothing new).
 */
export function partMember(publisher: Publisher, catalog: Pick<Catalog, "schemaHash">, draining = false): string {
  return `${publisher.pool}/${publisher.workerId}/${catalog.schemaHash.slice(0, 16)}${draining ? "/draining" : ""}`;
}

function parseMember(member: string): (Publisher & { hash: string; draining: boolean }) | null {
  const [pool, workerId, hash, state, extra] = member.split("/");
  if (extra !== undefined || !pool || !workerId || !hash || (state !== undefined && state !== "draining")) return null;
  if (!POOL_PATTERN.test(pool) || !ID_PATTERN.test(workerId) || !/^[0-9a-f]{16}$/.test(hash)) return null;
  return { pool, workerId, hash, draining: state === "draining" };
}

const partSchema = z.object({
  pool: z.string().regex(POOL_PATTERN),
  workerId: z.string().regex(ID_PATTERN),
  // Optional (written only when > 1), so a part reads the same to callers that predate shards.
  shards: z.number().int().min(1).max(MAX_SHARDS).optional(),
  catalog: catalogSchema,
});

async function presence(redis: RedisClient, keys: Keys, publisher: Publisher, member: string, ttlMs: number, doc: string, before: string): Promise<number> {
  const reply = await redis.sendCommand<unknown>([
    "EVAL",
    CATALOG_PRESENCE_LUA,
    "2",
    keys.catalogPart(publisher.pool, publisher.workerId),
    keys.catalogParts,
    member,
    String(Math.ceil(ttlMs)),
    String(Math.max(INDEX_TTL_MS, ttlMs)),
    keys.catalogChanged,
    doc,
    before,
  ]);
  if (typeof reply !== "number") throw new ToolfleetError("REDIS_REPLY_INVALID", `the catalog presence script answered ${JSON.stringify(reply)}`);
  return reply;
}

/**
 * Publishes one worker's part of the catalog for `ttlMs` (keep it alive with
 * `refreshPresence()`), replacing the member it published before, and tells
 * every reader to reload. Returns the part's index member.
 */
export async function publishCatalog(
  redis: RedisClient,
  keys: Keys,
  catalog: Catalog,
  publisher: Publisher,
  options: { ttlMs?: number; before?: string; draining?: boolean } = {},
): Promise<string> {
  const member = partMember(publisher, catalog, options.draining);
  // Stamped with Redis's clock, not this machine's: the merge shows the most recently published schema of a
  // tool, and workers' clocks may disagree.
  const [seconds, micros] = await redis.sendCommand<[string, string]>(["TIME"]);
  const stamped = { ...catalog, publishedAt: Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) };
  const shards = publisher.shards !== undefined && publisher.shards > 1 ? { shards: checkedShards(publisher.shards) } : {};
  const doc = JSON.stringify({ pool: publisher.pool, workerId: publisher.workerId, ...shards, catalog: stamped });
  await presence(redis, keys, publisher, member, options.ttlMs ?? PRESENCE_TTL_MS, doc, options.before ?? "");
  return member;
}

/** Extends a published part's life; false when the part is gone (publish it again). */
export async function refreshPresence(redis: RedisClient, keys: Keys, publisher: Publisher, member: string, ttlMs = PRESENCE_TTL_MS): Promise<boolean> {
  return (await presence(redis, keys, publisher, member, ttlMs, "", "")) !== -1;
}

/** A live part, and how long it has left (by Redis's clock) when read. */
export interface LivePart extends CatalogPart {
  member: string;
  ttlMs: number;
  /** The worker is stopping: it finishes the calls it holds, and no new call goes to it. */
  draining: boolean;
}

export interface PartsRead {
  parts: LivePart[];
  /** Index members or parts that could not be read, with why (reported, not hidden). */
  unreadable: string[];
}

/**
 * The live parts: index members whose life has not run out by Redis's clock.
 * `known` holds parts read before, by member: those are not read again (a
 * member names its catalog's hash, so a changed catalog is a new member).
 */
export async function readLiveParts(redis: RedisClient, keys: Keys, known: ReadonlyMap<string, LivePart> = new Map()): Promise<PartsRead> {
  const [time, scored] = await redis.multi().addCommand(["TIME"]).addCommand(["ZRANGE", keys.catalogParts, "0", "-1", "WITHSCORES"]).execAsPipeline();
  if (!Array.isArray(time) || !Array.isArray(scored)) throw new ToolfleetError("REDIS_REPLY_INVALID", "TIME or ZRANGE of the catalog index answered oddly");
  const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
  const unreadable: string[] = [];
  const live: { member: string; who: Publisher & { hash: string; draining: boolean }; ttlMs: number }[] = [];
  // RESP3 answers [member, score] pairs; RESP2 a flat list.
  const flat: unknown[] = scored;
  const pairs = flat.every((v) => Array.isArray(v)) ? (flat as unknown[][]) : flat.flatMap((v, i) => (i % 2 === 0 ? [[v, flat[i + 1]]] : []));
  for (const [rawMember, score] of pairs) {
    const member = String(rawMember);
    const ttlMs = Number(score) - now;
    if (!(ttlMs > 0)) continue;
    const who = parseMember(member);
    if (who) live.push({ member, who, ttlMs });
    else unreadable.push(`${keys.catalogParts} member ${JSON.stringify(member)}: not <pool>/<workerId>/<hash>[/draining]`);
  }
  // One part per publisher: the member refreshed last. An earlier member of the same worker (published by its
  // previous life, say) names a doc its key no longer holds.
  const newest = new Map<string, (typeof live)[number]>();
  for (const l of live) {
    const key = `${l.who.pool}/${l.who.workerId}`;
    const seen = newest.get(key);
    if (!seen || l.ttlMs > seen.ttlMs) newest.set(key, l);
  }
  live.splice(0, live.length, ...newest.values());
  const parts: LivePart[] = [];
  const toRead = live.filter((l) => !known.has(l.member));
  const docs = toRead.length === 0 ? [] : await redis.mGet(toRead.map((l) => keys.catalogPart(l.who.pool, l.who.workerId)));
  const read = new Map(toRead.map((l, i) => [l.member, docs[i] ?? null]));
  for (const l of live) {
    const before = known.get(l.member);
    if (before) {
      parts.push({ ...before, ttlMs: l.ttlMs });
      continue;
    }
    const raw = read.get(l.member);
    // Gone since the index was read, or already replaced by the worker's next catalog (a newer member).
    if (raw === null || raw === undefined) continue;
    const parsed = parseJson(partSchema, raw);
    if (!parsed.ok) {
      unreadable.push(`${keys.catalogPart(l.who.pool, l.who.workerId)}: ${parsed.reason}`);
      continue;
    }
    const { pool, workerId, catalog, shards } = parsed.value;
    if (pool !== l.who.pool || workerId !== l.who.workerId) {
      unreadable.push(`${keys.catalogPart(l.who.pool, l.who.workerId)}: names ${pool}/${workerId}`);
      continue;
    }
    if (!catalog.schemaHash.startsWith(l.who.hash)) continue; // the member of an earlier catalog of this worker
    parts.push({ pool, workerId, catalog, ...(shards !== undefined ? { shards } : {}), member: l.member, ttlMs: l.ttlMs, draining: l.who.draining });
  }
  return { parts, unreadable };
}

/** The merged catalog of the live parts, for one-shot readers (`toolfleet catalog`); null when no worker publishes. */
export async function loadCatalog(redis: RedisClient, keys: Keys): Promise<(MergedCatalog & { unreadable: string[] }) | null> {
  const { parts, unreadable } = await readLiveParts(redis, keys);
  const merged = mergeCatalog(parts.filter((p) => !p.draining));
  return merged && { ...merged, unreadable };
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
  options: { url: string; logger: Logger; onChange: (why: "notice" | "reconnected") => Promise<void> | void },
): Promise<CatalogWatch> {
  const subscriber = await duplicateConnection(redis, { url: options.url, logger: options.logger, name: "catalog-watch" });
  const run = (why: "notice" | "reconnected"): void => {
    Promise.resolve()
      .then(() => options.onChange(why))
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
      await closeSubscriber(subscriber, keys.catalogChanged, "catalog changes", options.logger);
    },
  };
}
