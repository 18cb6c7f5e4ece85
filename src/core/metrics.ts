import { Registry } from "prom-client";

/** Where the call paths report what happened; `NO_METRICS` when nobody scrapes. */
export interface CallMetrics {
  /** A call as its caller saw it end: its tool, the tier that ran it, its outcome kind, and how long it took end to end. */
  callEnded(tool: string, route: string, kind: string, ms: number): void;
  /** A request as a worker ran it: how long it ran, how long it waited in the stream, and its delivery count. */
  runEnded(tool: string, kind: string, runMs: number, queueMs: number, deliveries: number): void;
}

export const NO_METRICS: CallMetrics = {
  callEnded: () => undefined,
  runEnded: () => undefined,
};

/** Distinct tool names kept as label values, at most; the rest are counted as `other` (a label per name would grow without bound). */
const MAX_TOOL_LABELS = 500;
// Seconds, from a fast in-process call to a tool that runs for minutes.
const CALL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A value read when /metrics is scraped: one per label set. */
export type Sample = readonly [labels: Record<string, string>, value: number];

/**
 * A labelled histogram kept in plain arrays: the call paths add to it (a map
 * lookup and three additions: prom-client's own `observe()` hashes its labels
 * on every call, which cost a fifth of the remote path's throughput), and it
 * is turned into Prometheus samples only when scraped.
 */
class Tally {
  private readonly rows = new Map<string, { labels: Record<string, string>; count: number; sum: number; buckets: number[] }>();

  add(key: string, labels: () => Record<string, string>, seconds: number): void {
    let row = this.rows.get(key);
    if (!row) this.rows.set(key, (row = { labels: labels(), count: 0, sum: 0, buckets: new Array<number>(CALL_BUCKETS.length + 1).fill(0) }));
    row.count++;
    row.sum += seconds;
    let i = 0;
    while (i < CALL_BUCKETS.length && seconds > CALL_BUCKETS[i]!) i++;
    row.buckets[i]!++;
  }

  /** The counts by the labels `names` (a counter's samples). */
  counts(names: readonly string[]): { labels: Record<string, string>; value: number }[] {
    return this.group(names).map((g) => ({ labels: g.labels, value: g.count }));
  }

  /** The histogram samples by the labels `names`: cumulative buckets, sum and count. */
  histogram(name: string, names: readonly string[]): { metricName: string; labels: Record<string, string>; value: number }[] {
    const out: { metricName: string; labels: Record<string, string>; value: number }[] = [];
    for (const g of this.group(names)) {
      let cumulative = 0;
      g.buckets.forEach((n, i) => {
        cumulative += n;
        out.push({ metricName: `${name}_bucket`, labels: { ...g.labels, le: i < CALL_BUCKETS.length ? String(CALL_BUCKETS[i]) : "+Inf" }, value: cumulative });
      });
      out.push({ metricName: `${name}_sum`, labels: g.labels, value: g.sum }, { metricName: `${name}_count`, labels: g.labels, value: g.count });
    }
    return out;
  }

  private group(names: readonly string[]): { labels: Record<string, string>; count: number; sum: number; buckets: number[] }[] {
    const groups = new Map<string, { labels: Record<string, string>; count: number; sum: number; buckets: number[] }>();
    for (const row of this.rows.values()) {
      const labels = Object.fromEntries(names.map((n) => [n, row.labels[n] ?? ""]));
      const key = names.map((n) => labels[n]).join("\u0000");
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { labels, count: 0, sum: 0, buckets: new Array<number>(row.buckets.length).fill(0) }));
      g.count += row.count;
      g.sum += row.sum;
      row.buckets.forEach((n, i) => (g.buckets[i]! += n));
    }
    return [...groups.values()];
  }
}

/**
 * One process's Prometheus metrics (docs/observability.md), in a registry of
 * its own: the call counters and histograms fed by the call paths, and
 * values sampled at scrape time (counters a part keeps, stream lengths).
 */
export class FleetMetrics implements CallMetrics {
  readonly registry = new Registry();
  private readonly tools = new Set<string>();
  private readonly calls = new Tally();
  private readonly runs = new Tally();
  private readonly queue = new Tally();
  private redeliveries = 0;

  /** `sampleFailed` hears a family whose values could not be read for a scrape (it is left out of that one). */
  constructor(
    labels: { service: string; worker: string },
    private readonly sampleFailed: (name: string, err: unknown) => void = () => undefined,
  ) {
    this.registry.setDefaultLabels(labels);
    this.family("counter", "toolfleet_calls_total", "Tool calls made by this process, by tool, route and outcome kind.", () =>
      this.calls.counts(["tool", "route", "kind"]),
    );
    this.family("histogram", "toolfleet_call_duration_seconds", "End-to-end time of a tool call on its caller, by tool and route.", () =>
      this.calls.histogram("toolfleet_call_duration_seconds", ["tool", "route"]),
    );
    this.family("counter", "toolfleet_runs_total", "Requests this worker ran or refused, by tool and outcome kind.", () => this.runs.counts(["tool", "kind"]));
    this.family("histogram", "toolfleet_run_duration_seconds", "Time a request ran on this worker, by tool.", () =>
      this.runs.histogram("toolfleet_run_duration_seconds", ["tool"]),
    );
    this.family("histogram", "toolfleet_queue_wait_seconds", "Time from a request's publish to this worker starting it, by tool.", () =>
      this.queue.histogram("toolfleet_queue_wait_seconds", ["tool"]),
    );
    this.family("counter", "toolfleet_redeliveries_total", "Requests this worker took that had been delivered before.", () => [
      { labels: {}, value: this.redeliveries },
    ]);
  }

  callEnded(tool: string, route: string, kind: string, ms: number): void {
    const t = this.toolLabel(tool, kind);
    this.calls.add(`${t}\u0000${route}\u0000${kind}`, () => ({ tool: t, route, kind }), ms / 1000);
  }

  runEnded(tool: string, kind: string, runMs: number, queueMs: number, deliveries: number): void {
    const t = this.toolLabel(tool, kind);
    this.runs.add(`${t}\u0000${kind}`, () => ({ tool: t, kind }), runMs / 1000);
    this.queue.add(t, () => ({ tool: t }), Math.max(0, queueMs) / 1000);
    if (deliveries > 1) this.redeliveries++;
  }

  // A metric family whose samples are made when it is scraped, registered as prom-client's registry expects one.
  // A `values` that fails leaves the family without samples in that scrape, not the scrape without the rest.
  private family(
    type: "counter" | "gauge" | "histogram",
    name: string,
    help: string,
    values: () =>
      Iterable<{ labels: Record<string, string>; value: number; metricName?: string }> | Promise<Iterable<{ labels: Record<string, string>; value: number }>>,
  ): void {
    this.registry.registerMetric({
      name,
      help,
      type,
      aggregator: "sum",
      get: async () => ({
        name,
        help,
        type,
        aggregator: "sum",
        values: await Promise.resolve()
          .then(values)
          .then(
            (v) => [...v],
            (err: unknown) => {
              this.sampleFailed(name, err);
              return [];
            },
          ),
      }),
      reset: () => undefined,
    } as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  /**
   * A metric whose values are read when it is scraped: counters a part keeps itself (fallbacks,
   * reclaims …) or gauges such as stream lengths. A `read` that throws leaves the metric out of that scrape.
   */
  sampled(type: "counter" | "gauge", name: string, help: string, read: () => Iterable<Sample> | Promise<Iterable<Sample>>): void {
    this.family(type, name, help, async () => [...(await read())].map(([labels, value]) => ({ labels, value })));
  }

  /** The text a Prometheus scrape gets. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // An unknown tool's name is the model's or a user's text: never a label value.
  private toolLabel(tool: string, kind: string): string {
    if (kind === "unknown_tool") return "(unknown)";
    if (this.tools.has(tool)) return tool;
    if (this.tools.size >= MAX_TOOL_LABELS) return "other";
    this.tools.add(tool);
    return tool;
  }
}

/** Upper bounds (ms) of the run-time buckets a worker's heartbeat carries (the dashboard's p50 and p99 come from them). */
export const RUN_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];
/** Errors a worker keeps to show, the newest; and the characters of each. */
const RECENT_ERRORS = 10;
const ERROR_TEXT = 200;

/** One tool's runs on a worker since it started: how many, how many did not end `ok`, and their times by bucket. */
export interface ToolRunStats {
  n: number;
  err: number;
  /** Counts per RUN_BUCKETS_MS bound, and a last one past the last bound. */
  b: number[];
}

export interface RecentError {
  at: number;
  tool: string;
  kind: string;
  text: string;
}

/**
 * What a worker ran, kept always (a map lookup and a few additions per run) and carried in its
 * heartbeat for `toolfleet dashboard`, which turns two heartbeats apart into calls per second and
 * p50/p99 per tool. Tool names past MAX_TOOL_LABELS are counted as `other`.
 */
export class RunStats {
  private readonly tools = new Map<string, ToolRunStats>();
  private readonly errors: RecentError[] = [];

  record(tool: string, kind: string, ms: number, errorText?: string): void {
    const name = kind === "unknown_tool" ? "(unknown)" : this.tools.has(tool) || this.tools.size < MAX_TOOL_LABELS ? tool : "other";
    let s = this.tools.get(name);
    if (!s) this.tools.set(name, (s = { n: 0, err: 0, b: new Array<number>(RUN_BUCKETS_MS.length + 1).fill(0) }));
    s.n++;
    let i = 0;
    while (i < RUN_BUCKETS_MS.length && ms > RUN_BUCKETS_MS[i]!) i++;
    s.b[i]!++;
    if (kind === "ok" || kind === "background") return;
    s.err++;
    this.errors.push({ at: Date.now(), tool: name, kind, text: (errorText ?? "").slice(0, ERROR_TEXT) });
    if (this.errors.length > RECENT_ERRORS) this.errors.shift();
  }

  snapshot(): { tools: Record<string, ToolRunStats>; errors: RecentError[] } {
    return { tools: Object.fromEntries(this.tools), errors: [...this.errors] };
  }
}
