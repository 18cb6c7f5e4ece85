import { buildCatalogHash, type Catalog, type CatalogTool } from "./catalog.js";

/** One tools worker's part of the catalog: what it runs, and the pool it reads requests for. */
export interface CatalogPart {
  pool: string;
  workerId: string;
  catalog: Catalog;
  /** How many shard streams of its pool it reads; absent: 1 (docs/protocol.md §1.3). */
  shards?: number;
}

/**
 * A pool whose workers read different numbers of shard streams (a rolling change of `--shards`): callers
 * spread its calls over the `used` shards, the fewest any of its live workers reads, so every call lands
 * on a shard every worker reads.
 */
export interface ShardConflict {
  pool: string;
  used: number;
  /** `<pool>/<workerId>` and the shards it reads. */
  publishers: { publisher: string; shards: number }[];
}

/** One schema of a tool, and who offers it (`<pool>/<workerId>`). */
export interface ToolOffer {
  schemaHash: string;
  publishers: string[];
}

/** A tool offered with more than one schema (a rolling deploy): the shown offer first. */
export interface CatalogConflict {
  tool: string;
  offers: ToolOffer[];
}

export interface CatalogPublisher {
  pool: string;
  workerId: string;
  tools: number;
  schemaHash: string;
  publishedAt: number;
  /** Shard streams it reads, when more than one. */
  shards?: number;
}

/** The catalog the inference tier reads: the union of every live worker's part. */
export interface MergedCatalog extends Catalog {
  publishers: CatalogPublisher[];
  conflicts: CatalogConflict[];
  /** Pools whose workers disagree on the shard count: empty when they agree. */
  shardConflicts: ShardConflict[];
}

/** The shard count callers use for each pool: the fewest any of its `parts` reads (1 when a part says nothing). */
export function poolShards(parts: readonly CatalogPart[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of parts) out.set(p.pool, Math.min(out.get(p.pool) ?? Infinity, p.shards ?? 1));
  return out;
}

/** The pools of `parts` whose workers read different shard counts, by pool name. */
export function shardConflicts(parts: readonly CatalogPart[]): ShardConflict[] {
  const used = poolShards(parts);
  const out: ShardConflict[] = [];
  for (const [pool, min] of [...used].sort(([a], [b]) => byName(a, b))) {
    const members = parts.filter((p) => p.pool === pool);
    if (members.every((p) => (p.shards ?? 1) === min)) continue;
    const publishers = members.map((p) => ({ publisher: publisherName(p), shards: p.shards ?? 1 })).sort((a, b) => byName(a.publisher, b.publisher));
    out.push({ pool, used: min, publishers });
  }
  return out;
}

export const publisherName = (part: Pick<CatalogPart, "pool" | "workerId">): string => `${part.pool}/${part.workerId}`;

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The union of live parts (docs/protocol.md, "The merged catalog"). A tool
 * offered with different schemas is shown once, as offered by the most
 * recently published part (a rolling deploy shows the new schema as soon as
 * one new worker is up; ties go to the lower hash, so every reader agrees),
 * and listed in `conflicts`. A tool's permission entry comes from the part
 * whose schema is shown; an entry for a tool no part runs (a pinned tool's,
 * say) from the newest part that has one. Null when there is no part.
 */
export function mergeCatalog(parts: readonly CatalogPart[]): MergedCatalog | null {
  if (parts.length === 0) return null;
  // Oldest first, so later (newer) parts win every "newest" choice below.
  const ordered = [...parts].sort(
    (a, b) => a.catalog.publishedAt - b.catalog.publishedAt || byName(b.catalog.schemaHash, a.catalog.schemaHash) || byName(publisherName(a), publisherName(b)),
  );
  const shown = new Map<string, { tool: CatalogTool; part: CatalogPart }>();
  const offers = new Map<string, Map<string, string[]>>();
  // Maps, not objects: tool names and permission keys come from Redis (STYLE.md, "never index an object with a name from outside").
  const permissions = new Map<string, string[]>();
  for (const part of ordered) {
    for (const tool of part.catalog.tools) {
      shown.set(tool.name, { tool, part });
      let byHash = offers.get(tool.name);
      if (!byHash) offers.set(tool.name, (byHash = new Map<string, string[]>()));
      const who = byHash.get(tool.schemaHash) ?? [];
      who.push(publisherName(part));
      byHash.set(tool.schemaHash, who);
    }
    for (const [tool, users] of Object.entries(part.catalog.permissions)) permissions.set(tool, [...users]);
  }
  for (const [name, { part }] of shown) {
    const own = Object.prototype.hasOwnProperty.call(part.catalog.permissions, name) ? part.catalog.permissions[name] : undefined;
    if (own) permissions.set(name, [...own]);
    else permissions.delete(name);
  }
  const tools = [...shown.values()].map((s) => s.tool).sort((a, b) => byName(a.name, b.name));
  const perms = Object.fromEntries([...permissions].sort(([a], [b]) => byName(a, b)));
  const conflicts: CatalogConflict[] = [];
  for (const tool of tools) {
    const byHash = offers.get(tool.name)!;
    if (byHash.size < 2) continue;
    const list = [...byHash].map(([schemaHash, publishers]) => ({ schemaHash, publishers: publishers.sort(byName) }));
    list.sort((a, b) => (a.schemaHash === tool.schemaHash ? -1 : b.schemaHash === tool.schemaHash ? 1 : byName(a.schemaHash, b.schemaHash)));
    conflicts.push({ tool: tool.name, offers: list });
  }
  const publishers = ordered
    .map((p) => ({
      pool: p.pool,
      workerId: p.workerId,
      tools: p.catalog.tools.length,
      schemaHash: p.catalog.schemaHash,
      publishedAt: p.catalog.publishedAt,
      ...((p.shards ?? 1) > 1 ? { shards: p.shards } : {}),
    }))
    .sort((a, b) => byName(publisherName(a), publisherName(b)));
  return {
    version: ordered[0]!.catalog.version,
    schemaHash: buildCatalogHash(tools, perms),
    publishedAt: Math.max(...parts.map((p) => p.catalog.publishedAt)),
    tools,
    permissions: perms,
    publishers,
    conflicts,
    shardConflicts: shardConflicts(parts),
  };
}
