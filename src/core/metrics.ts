import { Counter, Gauge, Histogram, Registry } from "prom-client";

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
 * One process's Prometheus metrics (docs/observability.md), in a registry of
 * its own: the call counters and histograms fed by the call paths, and
 * values sampled at scrape time (counters a part keeps, stream lengths).
 */
export class FleetMetrics implements CallMetrics {
  readonly registry = new Registry();
  private readonly tools = new Set<string>();
  private readonly calls: Counter;
  private readonly callSeconds: Histogram;
  private readonly runs: Counter;
  private readonly runSeconds: Histogram;
  private readonly queueSeconds: Histogram;
  private readonly redeliveries: Counter;

  constructor(labels: { service: string; worker: string }) {
    this.registry.setDefaultLabels(labels);
    const registers = [this.registry];
    this.calls = new Counter({
      name: "toolfleet_calls_total",
      help: "Tool calls made by this process, by tool, route and outcome kind.",
      labelNames: ["tool", "route", "kind"],
      registers,
    });
    this.callSeconds = new Histogram({
      name: "toolfleet_call_duration_seconds",
      help: "End-to-end time of a tool call on its caller, by tool and route.",
      labelNames: ["tool", "route"],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.runs = new Counter({
      name: "toolfleet_runs_total",
      help: "Requests this worker ran or refused, by tool and outcome kind.",
      labelNames: ["tool", "kind"],
      registers,
    });
    this.runSeconds = new Histogram({
      name: "toolfleet_run_duration_seconds",
      help: "Time a request ran on this worker, by tool.",
      labelNames: ["tool"],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.queueSeconds = new Histogram({
      name: "toolfleet_queue_wait_seconds",
      help: "Time from a request's publish to this worker starting it, by tool.",
      labelNames: ["tool"],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.redeliveries = new Counter({ name: "toolfleet_redeliveries_total", help: "Requests this worker took that had been delivered before.", registers });
  }

  callEnded(tool: string, route: string, kind: string, ms: number): void {
    const t = this.toolLabel(tool, kind);
    this.calls.inc({ tool: t, route, kind });
    this.callSeconds.observe({ tool: t, route }, ms / 1000);
  }

  runEnded(tool: string, kind: string, runMs: number, queueMs: number, deliveries: number): void {
    const t = this.toolLabel(tool, kind);
    this.runs.inc({ tool: t, kind });
    this.runSeconds.observe({ tool: t }, runMs / 1000);
    this.queueSeconds.observe({ tool: t }, Math.max(0, queueMs) / 1000);
    if (deliveries > 1) this.redeliveries.inc();
  }

  /**
   * A metric whose values are read when it is scraped: counters a part keeps itself (fallbacks,
   * reclaims …) or gauges such as stream lengths. A `read` that throws leaves the metric out of that scrape.
   */
  sampled(
    type: "counter" | "gauge",
    name: string,
    help: string,
    labelNames: readonly string[],
    read: () => Iterable<Sample> | Promise<Iterable<Sample>>,
  ): void {
    const registers = [this.registry];
    if (type === "gauge") {
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          this.reset();
          for (const [labels, value] of await read()) this.set(labels, value);
        },
      });
      return;
    }
    new Counter({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        // A counter read from its owner: reset, then set to the owner's running total.
        this.reset();
        for (const [labels, value] of await read()) this.inc(labels, value);
      },
    });
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
