import { z } from "zod";
import { parseJson } from "../core/json.js";
import { RUN_BUCKETS_MS } from "../core/metrics.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { loadCatalog } from "../tool-exec/catalog-parts.js";
import { fleetStatus } from "./status.js";

/** How far back the dashboard looks for a tool's calls per second and latencies. */
const WINDOW_MS = 10_000;
/** A quantile past the last bucket's bound (JSON has no Infinity). */
const OVER_LAST = RUN_BUCKETS_MS[RUN_BUCKETS_MS.length - 1]! + 1;
/** Dead letters shown per dead-letter stream, the newest. */
const DEAD_SHOWN = 25;

const runsSchema = z.object({
  tools: z.record(z.string(), z.object({ n: z.number(), err: z.number(), b: z.array(z.number()) })),
  errors: z.array(z.object({ at: z.number(), tool: z.string(), kind: z.string(), text: z.string() })),
});
const extraSchema = z.object({ version: z.string().optional(), pool: z.string().optional(), runs: runsSchema.optional() });

type Runs = z.infer<typeof runsSchema>;

export interface ToolRate {
  tool: string;
  perSecond: number;
  /** Bucket bounds (ms) under which half, and 99 %, of the window's runs ended; null without runs. */
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  total: number;
}

export interface DeadLetter {
  deadStream: string;
  id: string;
  stream: string;
  reason: string;
  deliveries: string;
  worker: string;
  at: number;
  tool: string;
}

/**
 * What the dashboard shows, read from Redis alone: the workers' heartbeats (which carry what each ran),
 * the catalog's live parts, and the dead-letter streams. Calls per second and latencies come from two
 * heartbeats of a worker up to WINDOW_MS apart, so the first read shows none.
 */
export class DashboardState {
  private readonly history = new Map<string, { at: number; runs: Runs }[]>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  async read(now = Date.now()) {
    const status = await fleetStatus(this.redis, this.keys, now);
    const catalog = await loadCatalog(this.redis, this.keys);
    const workers = [];
    const rates = new Map<string, { n: number; err: number; b: number[]; total: number; seconds: number }>();
    const errors: { at: number; tool: string; kind: string; text: string; worker: string }[] = [];
    for (const w of status.workers) {
      const raw = await this.redis.get(this.keys.heartbeat(w.service, w.workerId));
      const extra = raw === null ? null : parseJson(extraSchema, raw);
      const x = extra?.ok ? extra.value : {};
      workers.push({ ...w, version: x.version ?? "", pool: x.pool ?? "" });
      if (!x.runs) continue;
      for (const e of x.runs.errors) errors.push({ ...e, worker: w.workerId });
      const key = `${w.service}/${w.workerId}`;
      const past = (this.history.get(key) ?? []).filter((h) => now - h.at <= WINDOW_MS * 3);
      past.push({ at: now, runs: x.runs });
      this.history.set(key, past);
      const base = past.find((h) => now - h.at <= WINDOW_MS) ?? past[0]!;
      const seconds = (now - base.at) / 1000;
      for (const [tool, s] of Object.entries(x.runs.tools)) {
        const before = Object.prototype.hasOwnProperty.call(base.runs.tools, tool) ? base.runs.tools[tool] : undefined;
        const r = rates.get(tool) ?? { n: 0, err: 0, b: new Array<number>(s.b.length).fill(0), total: 0, seconds };
        r.n += s.n - (before?.n ?? 0);
        r.err += s.err;
        r.total += s.n;
        s.b.forEach((count, i) => (r.b[i]! += count - (before?.b[i] ?? 0)));
        r.seconds = Math.max(r.seconds, seconds);
        rates.set(tool, r);
      }
    }
    // Workers gone from the fleet leave the history.
    for (const key of this.history.keys()) if (!status.workers.some((w) => `${w.service}/${w.workerId}` === key)) this.history.delete(key);
    const tools: ToolRate[] = [...rates]
      .map(([tool, r]) => ({
        tool,
        perSecond: r.seconds > 0 ? Math.round((r.n / r.seconds) * 10) / 10 : 0,
        p50Ms: quantile(r.b, 0.5),
        p99Ms: quantile(r.b, 0.99),
        errors: r.err,
        total: r.total,
      }))
      .sort((a, b) => (a.tool < b.tool ? -1 : 1));
    return {
      namespace: this.keys.namespace,
      at: now,
      workers,
      pools: status.pools,
      streams: status.streams,
      catalog: catalog
        ? {
            tools: catalog.tools.map((t) => ({ name: t.name, schemaHash: t.schemaHash.slice(0, 12) })),
            conflicts: catalog.conflicts,
            publishers: catalog.publishers.length,
          }
        : null,
      tools,
      errors: errors.sort((a, b) => b.at - a.at).slice(0, 20),
      deadLetters: await this.deadLetters(status.streams.map((s) => s.stream)),
    };
  }

  /** The dead-letter streams of the request streams the fleet has, the only ones the dashboard acts on. */
  deadStreams(streams: readonly string[]): Set<string> {
    return new Set(streams.map((s) => this.keys.deadLetter(s)));
  }

  private async deadLetters(streams: readonly string[]): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    for (const deadStream of this.deadStreams(streams)) {
      const entries = await this.redis.xRevRange(deadStream, "+", "-", { COUNT: DEAD_SHOWN });
      for (const e of entries ?? []) {
        const f = e.message;
        let tool = "";
        const body = f["field.body"];
        if (body) {
          const parsed = parseJson(z.object({ tool_name: z.string().optional(), type: z.string().optional() }), body);
          if (parsed.ok) tool = parsed.value.tool_name ?? parsed.value.type ?? "";
        }
        out.push({
          deadStream,
          id: e.id,
          stream: f.stream ?? "",
          reason: f.reason ?? "",
          deliveries: f.deliveries ?? "",
          worker: f.worker ?? "",
          at: Number(f.at ?? 0),
          tool,
        });
      }
    }
    return out.sort((a, b) => b.at - a.at);
  }
}

/** The bucket bound under which a share `q` of the counted runs ended; null without runs. */
function quantile(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= q * total) return i < RUN_BUCKETS_MS.length ? RUN_BUCKETS_MS[i]! : OVER_LAST;
  }
  return OVER_LAST;
}
