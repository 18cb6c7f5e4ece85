import { createServer, type Server } from "node:http";
import { listen } from "../core/listen.js";
import type { AddressInfo } from "node:net";
import { errorFields, type Logger } from "../core/log.js";
import { FleetMetrics, type Sample } from "../core/metrics.js";
import { within } from "../core/within.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import type { StreamWorker } from "../redis/stream-worker.js";
import type { Part } from "./common.js";
import type { ChatConsumer } from "../inference/chat-consumer.js";
import type { RemoteToolRegistry } from "../inference/remote-registry.js";

/** How long a scrape waits for Redis to say how long the streams are; past it those gauges are left out. */
const SAMPLE_LIMIT_MS = 1000;

export interface ObservabilityOptions {
  /** Serve `/metrics`, `/healthz` and `/readyz` on this port (0: any free one). @defaultValue none: no endpoint, no metrics */
  metricsPort?: number;
  /** @defaultValue "127.0.0.1" */
  metricsHost?: string;
}

/**
 * A member's metrics and its HTTP endpoint (docs/observability.md): the
 * call metrics its parts feed, values sampled at scrape time from the
 * stream engines it runs and from Redis, and health:
 * `/healthz` is 200 while every stream engine's read loop makes progress,
 * `/readyz` while, besides, the member has started and its Redis connection is up.
 */
export class Observability {
  readonly metrics: FleetMetrics;
  private server: Server | undefined;
  private started = false;
  private engines: () => readonly StreamWorker[] = () => [];

  constructor(
    private readonly options: Required<Pick<ObservabilityOptions, "metricsPort">> &
      ObservabilityOptions & { service: string; workerId: string; logger: Logger },
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {
    this.metrics = new FleetMetrics({ service: options.service, worker: options.workerId }, (metric, err) =>
      options.logger.warn({ metric, ...errorFields(err) }, "a metric could not be read for this scrape; it is left out of it"),
    );
    // Made once the member's connection is up: every later `ready` is a reconnect.
    let reconnects = 0;
    redis.on("ready", () => void reconnects++);
    this.metrics.sampled("counter", "toolfleet_redis_reconnects_total", "Times this process's Redis connection came back after a loss.", () => [
      [{}, reconnects],
    ]);
  }

  /** Where `/metrics` is served, once started. */
  get url(): string | undefined {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return address ? `http://${this.options.metricsHost ?? "127.0.0.1"}:${address.port}/metrics` : undefined;
  }

  /** The stream engines of the member: their counters are metrics, their health is the member's. */
  watchEngines(engines: () => readonly StreamWorker[]): void {
    this.engines = engines;
    const per = (read: (e: StreamWorker) => number): Sample[] => this.engines().map((e) => [{ stream: e.stream }, read(e)]);
    this.metrics.sampled("counter", "toolfleet_dead_letters_total", "Entries this process moved to a dead-letter stream.", () =>
      per((e) => e.heartbeat().deadLettered),
    );
    this.metrics.sampled("counter", "toolfleet_reclaims_total", "Entries this process took over from workers that left them.", () =>
      per((e) => e.heartbeat().reclaimed),
    );
    this.metrics.sampled("gauge", "toolfleet_in_flight", "Entries this process is working on.", () => per((e) => e.heartbeat().inFlight));
    this.metrics.sampled("gauge", "toolfleet_stream_length", "Entries in each stream this process reads (sampled at scrape).", () =>
      this.sampleStreams(
        (stream) => ["XLEN", stream],
        (n) => Number(n),
      ),
    );
    this.metrics.sampled("gauge", "toolfleet_stream_pending", "Entries delivered and not yet acknowledged, per stream this process reads.", () =>
      this.sampleStreams(
        (stream) => ["XPENDING", stream, this.keys.group(stream)],
        (summary) => Number(Array.isArray(summary) ? summary[0] : 0),
      ),
    );
  }

  /** The part that serves the endpoint; put it first in the member's parts, and `readiness` last. */
  endpoint(): Part {
    return { start: () => this.listen(), stop: () => this.close() };
  }

  /** A part that marks the member started (ready) once every part before it has started. */
  readiness(): Part {
    return {
      start: () => {
        this.started = true;
        return Promise.resolve();
      },
      stop: () => {
        this.started = false;
        return Promise.resolve();
      },
    };
  }

  private health(): { live: string[]; ready: string[] } {
    const live = this.engines()
      .filter((e) => !e.healthy)
      .map((e) => `the read loop of ${e.stream} makes no progress`);
    const ready = [...live];
    if (!this.started) ready.push("not started");
    if (!this.redis.isReady) ready.push(`Redis connection down`);
    return { live, ready };
  }

  private async sampleStreams(command: (stream: string) => string[], value: (reply: unknown) => number): Promise<Sample[]> {
    if (!this.redis.isReady) return [];
    const out: Sample[] = [];
    for (const e of this.engines()) {
      try {
        out.push([{ stream: e.stream }, value(await within(this.redis.sendCommand(command(e.stream)), SAMPLE_LIMIT_MS, `sampling ${e.stream}`))]);
      } catch (err) {
        // NOGROUP / no stream yet (nothing read so far), or Redis slow: left out of this scrape.
        this.options.logger.debug({ stream: e.stream, ...errorFields(err) }, "could not sample a stream for /metrics");
      }
    }
    return out;
  }

  private async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      const send = (status: number, body: string, type = "text/plain; charset=utf-8"): void => {
        res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
        res.end(body);
      };
      if (req.method !== "GET" && req.method !== "HEAD") return send(405, "method not allowed\n");
      if (path === "/metrics") {
        this.metrics.text().then(
          (text) => send(200, text, this.metrics.contentType),
          (err: unknown) => {
            this.options.logger.warn({ ...errorFields(err) }, "could not render /metrics");
            send(500, "could not render the metrics\n");
          },
        );
        return;
      }
      if (path === "/healthz" || path === "/readyz") {
        const problems = this.health()[path === "/healthz" ? "live" : "ready"];
        return problems.length === 0 ? send(200, "ok\n") : send(503, `${problems.join("\n")}\n`);
      }
      send(404, "not found: try /metrics, /healthz or /readyz\n");
    });
    await listen(server, this.options.metricsPort, this.options.metricsHost ?? "127.0.0.1", {
      inUse: `--metrics-port ${this.options.metricsPort}: the port is in use; pick another, or 0 for any free one`,
      what: "the metrics HTTP server",
      logger: this.options.logger,
    });
    this.server = server;
    this.options.logger.info({ url: this.url }, "metrics and health served");
  }

  private async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** `parts` with the endpoint first (it answers while the rest start) and the readiness mark last. */
export function observed(obs: Observability | undefined, parts: Part[]): Part[] {
  return obs ? [obs.endpoint(), ...parts, obs.readiness()] : parts;
}

/** A member's observability when it is asked for (a metrics port), else undefined: no endpoint, no metrics. */
export function observabilityFor(
  options: ObservabilityOptions,
  who: { service: string; workerId: string; logger: Logger },
  redis: RedisClient,
  keys: Keys,
): Observability | undefined {
  if (options.metricsPort === undefined) return undefined;
  return new Observability({ ...options, metricsPort: options.metricsPort, ...who }, redis, keys);
}

/** An inference worker's own counters as metrics: the routing registry's and its tools client's, and its chat engine. */
export function callerMetrics(obs: Observability, registry: RemoteToolRegistry, chat: ChatConsumer): void {
  obs.watchEngines(() => [chat.worker]);
  const stats = registry.stats;
  const counter = (name: string, help: string, read: () => number): void => obs.metrics.sampled("counter", name, help, () => [[{}, read()]]);
  counter("toolfleet_stale_catalog_retries_total", "Calls sent once more after a worker answered CATALOG_STALE.", () => stats.staleRetries);
  counter("toolfleet_catalog_reloads_total", "Times the merged catalog was rebuilt (a worker joined, left or changed its tools).", () => stats.catalogReloads);
  counter("toolfleet_no_live_worker_total", "Calls not sent because no live tools worker runs their tool.", () => stats.noLiveWorker);
  obs.metrics.sampled("counter", "toolfleet_fallbacks_total", "Local fallbacks after a remote failure, taken or refused (the tool may have run).", () => [
    [{ result: "taken" }, stats.fallbacks],
    [{ result: "refused" }, stats.fallbacksRefused],
  ]);
  obs.metrics.sampled("gauge", "toolfleet_calls_in_flight", "Remote tool calls this process waits on.", () => [[{}, registry.toolsClient?.pendingCount ?? 0]]);
}
