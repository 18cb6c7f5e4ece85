import { errorFields, type Logger } from "../core/log.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { mergeCatalog, poolShards, shardConflicts, type MergedCatalog } from "./catalog-merge.js";
import { performance } from "node:perf_hooks";
import { PRESENCE_REFRESH_MS, PRESENCE_TTL_MS, readLiveParts, watchCatalog, type CatalogWatch, type LivePart } from "./catalog-parts.js";

/** Where a call for a tool goes: a pool's stream, one worker's own stream, or nowhere (no live worker runs it). */
export type CallRoute =
  /** `stream` is the pool's stream (shard 0); `shards`, when there are more, every shard stream (a call goes to one by its idempotency key). */
  | { kind: "pool"; pool: string; stream: string; shards?: readonly string[] }
  | { kind: "worker"; pool: string; workerId: string; stream: string }
  | { kind: "none" };

export interface CatalogViewOptions {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  logger: Logger;
  /** After a refresh that changed the live parts (null: no live worker publishes). */
  onChange?: (merged: MergedCatalog | null) => void;
  /** After a refresh in which request streams lost their last live reader (a pool whose every worker died, a dead worker's own stream). */
  onStreamsGone?: (streams: ReadonlySet<string>) => void;
  /** @defaultValue PRESENCE_REFRESH_MS */
  refreshMs?: number;
}

/** Tools remembered as having left the catalog, at most. */
const MAX_DEPARTED = 10_000;

interface Offer {
  /** Pools in which every live worker runs the tool with this schema: a call may go to the pool's stream. */
  uniformPools: string[];
  workers: LivePart[];
}

/**
 * The caller's view of the merged catalog (docs/protocol.md, "Pools and the
 * merged catalog"): the live parts, read again on every change notice and
 * every `refreshMs` (a worker that dies sends no notice; its part's life runs
 * out), and the routing of each call to workers that agree with the schema
 * it was built against. `route()` reads only memory: no Redis round trip per call.
 */
export class CatalogView {
  private parts = new Map<string, LivePart>();
  private offers = new Map<string, Map<string, Offer>>();
  /** Tool → the schema hash the merged catalog shows. */
  private shown = new Map<string, string>();
  private streams = new Set<string>();
  /** Pool → its shard streams, for the pools whose every live worker reads more than one. */
  private shardStreams = new Map<string, readonly string[]>();
  private current: MergedCatalog | null = null;
  private readonly departed = new Map<string, number>();
  private watch: CatalogWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<MergedCatalog | null> | undefined;
  private again = false;
  private turn = 0;
  private reported = new Set<string>();
  private graceUntil = -Infinity;

  constructor(private readonly options: CatalogViewOptions) {}

  get merged(): MergedCatalog | null {
    return this.current;
  }

  /** Subscribes to change notices (before the first read, so none is missed), reads the parts, and refreshes on a timer. */
  async start(): Promise<void> {
    if (this.watch) return;
    this.watch = await watchCatalog(this.options.redis, this.options.keys, {
      url: this.options.redisUrl,
      logger: this.options.logger,
      onChange: (why) => {
        // Back from an outage: every part's life may have run out on Redis's clock while its worker could not
        // refresh it. For one part's life, a worker missing from a read is not taken for gone (its calls are
        // not withdrawn, its tools stay shown) while the workers publish their parts again.
        if (why === "reconnected") this.graceUntil = performance.now() + PRESENCE_TTL_MS + (this.options.refreshMs ?? PRESENCE_REFRESH_MS);
        return this.refresh().then(() => undefined);
      },
    });
    try {
      await this.refresh();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.timer = setInterval(() => {
      this.refresh().catch((err: unknown) => this.options.logger.warn({ ...errorFields(err) }, "could not refresh the tool catalog; keeping the last one"));
    }, this.options.refreshMs ?? PRESENCE_REFRESH_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const watch = this.watch;
    this.watch = undefined;
    await watch?.close();
    await this.running?.catch(() => undefined); // its failure was the caller's to see
  }

  /** Reads the live parts now (concurrent asks share one read, and one asked during a read runs after it). */
  refresh(): Promise<MergedCatalog | null> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      try {
        do {
          this.again = false;
          await this.readOnce();
        } while (this.again);
        return this.current;
      } finally {
        this.running = undefined;
      }
    })();
    this.running = run;
    return run;
  }

  /** Whether a tool was in the catalog and left it (its last worker is gone), as against never known. */
  hasDeparted(tool: string): boolean {
    return this.departed.has(tool);
  }

  /** Pools and workers offering `tool`, by schema hash (for status views and tests). */
  offersOf(tool: string): ReadonlyMap<string, { uniformPools: readonly string[]; workers: readonly string[] }> {
    const out = new Map<string, { uniformPools: readonly string[]; workers: readonly string[] }>();
    for (const [hash, offer] of this.offers.get(tool) ?? []) out.set(hash, { uniformPools: offer.uniformPools, workers: offer.workers.map((w) => w.workerId) });
    return out;
  }

  /**
   * Where a call of `tool` built against `schemaHash` goes: a pool whose live workers all run that schema
   * (taking turns when several do); else one worker that runs it, on its own stream; else, when the schema
   * is not offered at all (the caller's catalog is older than every worker's), wherever the shown schema
   * goes, so the worker answers CATALOG_STALE and the caller reloads.
   */
  route(tool: string, schemaHash: string): CallRoute {
    const byHash = this.offers.get(tool);
    if (!byHash) return { kind: "none" };
    const shown = this.shown.get(tool);
    const offer = byHash.get(schemaHash) ?? (shown === undefined ? undefined : byHash.get(shown)) ?? byHash.values().next().value;
    if (!offer) return { kind: "none" };
    const turn = this.turn++;
    if (offer.uniformPools.length > 0) {
      const pool = offer.uniformPools[turn % offer.uniformPools.length]!;
      const shards = this.shardStreams.get(pool);
      return { kind: "pool", pool, stream: this.options.keys.poolStream(pool), ...(shards ? { shards } : {}) };
    }
    const worker = offer.workers[turn % offer.workers.length]!;
    return { kind: "worker", pool: worker.pool, workerId: worker.workerId, stream: this.options.keys.workerStream(worker.workerId) };
  }

  private async readOnce(): Promise<void> {
    const { parts, unreadable } = await readLiveParts(this.options.redis, this.options.keys, this.parts);
    for (const problem of unreadable) {
      if (this.reported.has(problem)) continue;
      if (this.reported.size > 1000) this.reported.clear();
      this.reported.add(problem);
      this.options.logger.warn({ problem }, "a catalog part could not be read; its tools are left out");
    }
    if (performance.now() < this.graceUntil) {
      const present = new Set(parts.map((p) => `${p.pool}/${p.workerId}`));
      for (const before of this.parts.values()) if (!present.has(`${before.pool}/${before.workerId}`)) parts.push(before);
    }
    const sameMembers = parts.length === this.parts.size && parts.every((p) => this.parts.has(p.member));
    this.parts = new Map(parts.map((p) => [p.member, p]));
    if (sameMembers && this.current !== null) return;
    this.rebuild(parts);
  }

  private rebuild(all: readonly LivePart[]): void {
    const keys = this.options.keys;
    // A draining worker takes no new call, but the calls it holds are still its to answer: its streams stay live.
    const parts = all.filter((p) => !p.draining);
    // Every reader of a pool's stream, draining ones too (a draining worker reads for a moment more): a pool
    // is uniform for a schema only when all of them run it.
    const byPool = new Map<string, LivePart[]>();
    for (const p of all) byPool.set(p.pool, [...(byPool.get(p.pool) ?? []), p]);
    const offers = new Map<string, Map<string, Offer>>();
    for (const part of parts) {
      for (const tool of part.catalog.tools) {
        let byHash = offers.get(tool.name);
        if (!byHash) offers.set(tool.name, (byHash = new Map<string, Offer>()));
        let offer = byHash.get(tool.schemaHash);
        if (!offer) byHash.set(tool.schemaHash, (offer = { uniformPools: [], workers: [] }));
        offer.workers.push(part);
      }
    }
    for (const [name, byHash] of offers) {
      for (const [hash, offer] of byHash) {
        const pools = new Set(offer.workers.map((w) => w.pool));
        offer.uniformPools = [...pools].filter((pool) =>
          (byPool.get(pool) ?? []).every((w) => w.catalog.tools.some((t) => t.name === name && t.schemaHash === hash)),
        );
        offer.uniformPools.sort();
      }
    }
    // Every stream some live worker reads (each of its shards): one that none reads any more is gone.
    const streams = new Set<string>();
    for (const p of all) {
      for (let i = 0; i < (p.shards ?? 1); i++) streams.add(keys.poolShardStream(p.pool, i));
      streams.add(keys.workerStream(p.workerId));
    }
    // Calls spread over the shards every reader of the pool reads (draining ones too: they still read).
    const shardStreams = new Map<string, readonly string[]>();
    for (const [pool, k] of poolShards(all))
      if (k > 1)
        shardStreams.set(
          pool,
          Array.from({ length: k }, (_, i) => keys.poolShardStream(pool, i)),
        );
    const shardsChanged = !sameShards(this.shardStreams, shardStreams);
    const gone = new Set([...this.streams].filter((s) => !streams.has(s)));
    const before = this.current;
    const merged = mergeCatalog(parts);
    for (const t of before?.tools ?? []) if (!offers.has(t.name)) this.depart(t.name);
    for (const name of offers.keys()) this.departed.delete(name);
    this.offers = offers;
    this.shown = new Map((merged?.tools ?? []).map((t) => [t.name, t.schemaHash]));
    this.streams = streams;
    this.shardStreams = shardStreams;
    this.current = merged;
    if (shardsChanged)
      for (const c of shardConflicts(all))
        this.options.logger.warn(
          { pool: c.pool, shards: c.publishers.map((p) => `${p.publisher}: ${p.shards}`) },
          `the workers of pool '${c.pool}' read different numbers of shard streams: calls use ${c.used}, the fewest any reads`,
        );
    if (merged?.schemaHash !== before?.schemaHash) {
      if (merged) {
        this.options.logger.info(
          { tools: merged.tools.length, publishers: merged.publishers.length, schemaHash: merged.schemaHash, conflicts: merged.conflicts.map((c) => c.tool) },
          "tool catalog loaded",
        );
        for (const c of merged.conflicts)
          this.options.logger.warn(
            { tool: c.tool, offers: c.offers.map((o) => `${o.schemaHash.slice(0, 12)}: ${o.publishers.join(", ")}`) },
            `tool '${c.tool}' is offered with ${c.offers.length} different schemas (a rolling deploy?): calls go to workers that agree with the schema they were built against`,
          );
      } else if (before) this.options.logger.warn({}, "no live tools worker publishes a catalog any more");
    }
    // Also when only the publishers changed (the same tools from other workers): the conflicts may have.
    this.options.onChange?.(merged);
    if (gone.size > 0) this.options.onStreamsGone?.(gone);
  }

  private depart(tool: string): void {
    if (this.departed.size >= MAX_DEPARTED) this.departed.delete(this.departed.keys().next().value!);
    this.departed.set(tool, Date.now());
  }
}

function sameShards(a: ReadonlyMap<string, readonly string[]>, b: ReadonlyMap<string, readonly string[]>): boolean {
  return a.size === b.size && [...a].every(([pool, streams]) => b.get(pool)?.length === streams.length);
}
