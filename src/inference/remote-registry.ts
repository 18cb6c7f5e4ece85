import { endedAs, inSpan } from "../core/tracing.js";
import { performance } from "node:perf_hooks";
import type { ConfigSource } from "../config/live.js";
import type { JsonValue } from "../core/context.js";
import { errorFields, type Logger } from "../core/log.js";
import {
  isAllowedBy,
  maxTotalOf,
  pinOf,
  openAITool,
  toPermissionMap,
  type CallOptions,
  type OpenAITool,
  type Permissions,
  type ToolRegistry,
  type ToolRegistryLike,
} from "../core/registry.js";
import type { TaskManager } from "../core/tasks.js";
import { defineTool, type ToolDefinition } from "../core/tool.js";
import type { CatalogTool } from "../tool-exec/catalog.js";
import type { MergedCatalog } from "../tool-exec/catalog-merge.js";
import { CatalogView, type CallRoute } from "../tool-exec/catalog-view.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { type ToolReply } from "../tool-exec/codec.js";
import { ToolsClient, wireContextOf } from "../tool-exec/client.js";
import { RemoteFailures, failureKind } from "./remote-failures.js";
import { NO_METRICS, type CallMetrics } from "../core/metrics.js";
import { ToolfleetError, isToolfleetError } from "../core/errors.js";
import { MAX_CALL_TIMEOUT_MS, checkedTimeoutMs } from "../core/timeout.js";
import { within } from "../core/within.js";
import { cancelUnstarted } from "../tool-exec/idempotency.js";
import { cancelled, noLiveWorker, permissionDenied, staleTwice, unknownTool, type CallOutcome, type OutcomeKind, type Route } from "../core/outcome.js";

/** Counters an operator can read (and a test can assert on). */
export interface RemoteRegistryStats {
  remoteCalls: number;
  staleRetries: number;
  fallbacks: number;
  /** Remote failures that were not retried locally, because the tool may have run. */
  fallbacksRefused: number;
  shadowMirrored: number;
  shadowMatches: number;
  shadowMismatches: number;
  /** Times the merged catalog was rebuilt: a worker joined, left, or published other tools. */
  catalogReloads: number;
  /** Calls not sent because no live tools worker read the stream (answered `unavailable`, or run here as a fallback). */
  noLiveWorker: number;
}

export interface RemoteToolRegistryOptions {
  /** Needed for `remote` and `shadow`; `in_process` never touches it. */
  redis?: RedisClient;
  redisUrl?: string;
  keys: Keys;
  config: ConfigSource;
  /** Runs inference-pinned tools, nested calls, `in_process` mode and fallbacks; delegates gateway-pinned tools. */
  local: ToolRegistry;
  /** This inference worker's stable id: names its reply stream. */
  workerId: string;
  logger: Logger;
  /** Where each call's end is reported (docs/observability.md). @defaultValue NO_METRICS */
  metrics?: CallMetrics;
  /** After the merged catalog was read again and applied (a worker joined, left or changed its tools; null: none publishes). */
  onCatalogChange?: (merged: MergedCatalog | null) => void;
}

/**
 * The inference tier's registry: a drop-in for the local ToolRegistry that
 * shows the model the published catalog and routes each call to the tier
 * that runs it (docs/architecture.md, "Routing"): gateway-pinned tools to the gateway, inference-
 * pinned ones (and nested calls, and `in_process` mode) to the local
 * registry, everything else to the tools service over Redis.
 */
export class RemoteToolRegistry implements ToolRegistryLike {
  readonly stats: RemoteRegistryStats = {
    remoteCalls: 0,
    staleRetries: 0,
    fallbacks: 0,
    fallbacksRefused: 0,
    shadowMirrored: 0,
    shadowMatches: 0,
    shadowMismatches: 0,
    catalogReloads: 0,
    noLiveWorker: 0,
  };
  private readonly options: RemoteToolRegistryOptions;
  private catalog: MergedCatalog | null = null;
  private byName = new Map<string, CatalogTool>();
  private permissions = new Map<string, ReadonlySet<string>>();
  private repeat: ReadonlySet<string> = new Set();
  private listing: ToolDefinition[] | undefined;
  private client: ToolsClient | undefined;
  private view: CatalogView | undefined;
  private readonly mirrors = new Set<Promise<void>>();

  private readonly localPermissions: Permissions;
  private readonly failures: RemoteFailures;
  /** Tools whose pin contradiction was logged (once each). */
  private readonly pinWarned = new Set<string>();
  private readonly metrics: CallMetrics;

  constructor(options: RemoteToolRegistryOptions) {
    this.options = options;
    this.localPermissions = options.local.getPermissions();
    this.metrics = options.metrics ?? NO_METRICS;
    this.failures = new RemoteFailures({
      redis: options.redis,
      keys: options.keys,
      config: options.config,
      local: options.local,
      logger: options.logger,
      retrySafe: (name) => this.retrySafe(name),
      count: (what) => void this.stats[what]++,
    });
  }

  /** The client that carries remote calls (and gateway calls, through a proxy adapter); set once started. */
  get toolsClient(): ToolsClient | undefined {
    return this.client;
  }

  /**
   * In `in_process` mode: nothing (no Redis is touched). Otherwise: load the
   * catalog, open the reply stream and its reader, and watch for catalog changes.
   */
  async start(): Promise<void> {
    if (this.options.config.get().toolsServiceMode === "in_process" || this.client) return;
    const { redis, redisUrl } = this.options;
    if (!redis || !redisUrl)
      throw new ToolfleetError("CONFIG_INVALID", `RemoteToolRegistry: mode '${this.options.config.get().toolsServiceMode}' needs a Redis connection`);
    const fleetSecret = this.options.config.get().fleetSecret;
    const client = new ToolsClient({ redis, redisUrl, keys: this.options.keys, workerId: this.options.workerId, logger: this.options.logger, fleetSecret });
    await client.start();
    this.client = client;
    const view = new CatalogView({
      redis,
      redisUrl,
      keys: this.options.keys,
      logger: this.options.logger,
      onChange: (merged) => {
        this.apply(merged);
        this.options.onCatalogChange?.(merged);
      },
      // Calls waiting on a stream that lost its every live reader: those no worker had started are withdrawn
      // now (and sent elsewhere), not at their timeouts; the others wait for their reply or deadline.
      onStreamsGone: (streams) => void this.withdrawUnstarted(streams),
    });
    this.view = view;
    try {
      await view.start();
    } catch (err) {
      // Half started is not started: a later start() must try again, and nothing may stay open.
      await this.stop();
      throw err;
    }
    if (!this.catalog)
      this.options.logger.warn({ index: this.options.keys.catalogParts }, "no live tools worker publishes a catalog yet; using the local registry's tools");
  }

  /** Ends the loops, fails pending calls, waits for shadow mirrors; leaves no open handle of its own. */
  async stop(): Promise<void> {
    const view = this.view;
    this.view = undefined;
    const client = this.client;
    this.client = undefined;
    try {
      await view?.stop();
    } finally {
      // Stopping the client fails the mirrors' pending calls at once, instead of at their timeouts.
      await client?.stop();
      await Promise.allSettled([...this.mirrors]);
    }
  }

  private async withdrawUnstarted(streams: ReadonlySet<string>): Promise<void> {
    const { redis, keys } = this.options;
    if (!redis || !this.client) return;
    // The marker outlives any call's deadline: no worker may start the request after the caller moved on.
    const ttlSeconds = MAX_CALL_TIMEOUT_MS / 1000 + 60;
    try {
      await this.client.cancelUnstartedOn(streams, (published, idemKey) => cancelUnstarted(redis, keys, published, idemKey, ttlSeconds));
    } catch (err) {
      this.options.logger.warn({ ...errorFields(err) }, "could not withdraw calls from streams their workers left; they wait for their deadlines");
    }
  }

  /**
   * Reads the live workers' catalog parts now (the view also does so on every change notice and every
   * second); true when a live worker publishes one. A read that fails is logged and the last catalog kept.
   */
  async reloadCatalog(): Promise<boolean> {
    if (!this.view) return false;
    try {
      await this.view.refresh();
    } catch (err) {
      this.options.logger.error({ ...errorFields(err) }, "catalog could not be loaded; keeping the previous one");
    }
    return this.catalog !== null;
  }

  /** The merged catalog as this registry last read it; null when no live worker publishes one. */
  get mergedCatalog(): MergedCatalog | null {
    return this.catalog;
  }

  private apply(catalog: MergedCatalog | null): void {
    this.stats.catalogReloads++;
    // A tool pinned by its definition to one tier and by this tier's config to the other: the config wins here.
    const cfg = this.options.config.get();
    for (const t of catalog?.tools ?? []) {
      const configured = cfg.gatewayPinned.has(t.name) ? "gateway" : cfg.inferencePinned.has(t.name) ? "inference" : undefined;
      if (t.pin && configured && t.pin !== configured && !this.pinWarned.has(t.name) && this.pinWarned.add(t.name))
        this.options.logger.warn(
          { tool: t.name, pin: t.pin, configured },
          `tool '${t.name}' is pinned to the ${t.pin} tier by its definition but to the ${configured} tier by this worker's config; the config wins here`,
        );
    }
    this.catalog = catalog;
    this.byName = new Map((catalog?.tools ?? []).map((t) => [t.name, t]));
    this.repeat = new Set((catalog?.tools ?? []).filter((t) => t.allowRepeat).map((t) => t.name));
    this.listing = undefined;
    // A gone catalog's rules go with it.
    this.applyPermissions(catalog?.permissions ?? {});
  }

  // ── read surface ──────────────────────────────────────────────────────────

  schemaHashOf(name: string): string | undefined {
    return this.byName.get(name)?.schemaHash;
  }

  getOpenAITools(): OpenAITool[] {
    return this.catalog ? [...this.byName.values()].map(openAITool) : this.options.local.getOpenAITools();
  }

  getOpenAIToolsByNames(names: Iterable<string>): OpenAITool[] {
    if (!this.catalog) return this.options.local.getOpenAIToolsByNames(names);
    const out: OpenAITool[] = [];
    for (const name of new Set(names)) {
      const tool = this.byName.get(name);
      if (tool) out.push(openAITool(tool));
    }
    return out;
  }

  toolNames(): ReadonlySet<string> {
    return this.catalog ? new Set(this.byName.keys()) : this.options.local.toolNames();
  }

  repeatAllowedTools(): ReadonlySet<string> {
    return this.catalog ? this.repeat : this.options.local.repeatAllowedTools();
  }

  /** With a catalog: definitions whose handlers refuse to run here (the tools run remotely; use call()). */
  listTools(): readonly ToolDefinition[] {
    if (!this.catalog) return this.options.local.listTools();
    this.listing ??= [...this.byName.values()].map((t) =>
      defineTool({
        name: t.name,
        description: t.description,
        parameters: t.parameters,
        allowRepeat: t.allowRepeat,
        noBackground: t.noBackground,
        annotations: t.annotations,
        handler: () => {
          throw new ToolfleetError("NOT_STARTED", `Tool '${t.name}' runs remotely; use RemoteToolRegistry.call().`);
        },
      }),
    );
    return this.listing;
  }

  setPermissions(permissions: Permissions): void {
    this.applyPermissions(permissions);
  }

  isAllowed(toolName: string, userId: string): boolean {
    return this.catalog ? isAllowedBy(this.permissions, toolName, userId) : this.options.local.isAllowed(toolName, userId);
  }

  get hasTools(): boolean {
    return this.catalog ? this.byName.size > 0 : this.options.local.hasTools;
  }

  get size(): number {
    return this.catalog ? this.byName.size : this.options.local.size;
  }

  get taskManager(): TaskManager | null {
    return this.options.local.taskManager;
  }

  // ── routing ───────────────────────────────────────────────────────────────

  async call(name: string, args: unknown, options: CallOptions = {}): Promise<string> {
    return (await this.execute(name, args, options)).text;
  }

  /**
   * Routes a call by the fixed precedence of docs/architecture.md ("Routing")
   * and reports how it ended and where it ran.
   */
  execute(name: string, args: unknown, options: CallOptions = {}): Promise<CallOutcome> {
    // One span per call (no-op without an OTel SDK); a remote call's request carries it to the worker.
    // No async wrappers on this path: each would add promises that an installed OTel SDK's context manager
    // pays a hook for on Node 20 (docs/observability.md, "What it costs"). inSpan turns a throw into a rejection.
    return inSpan(`tool call ${name}`, "client", { "toolfleet.tool": name }, (span) =>
      // Promise.resolve: a registry's execute() may answer with the outcome itself (no promise made for a promise).
      Promise.resolve(this.dispatch(name, args, options)).then((outcome) => {
        endedAs(span, outcome.kind, { "toolfleet.route": outcome.route });
        this.metrics.callEnded(name, outcome.route, outcome.kind, outcome.durationMs);
        return outcome;
      }),
    );
  }

  /** May throw rather than reject: its one caller, execute(), runs it in inSpan, which takes either. */
  private dispatch(name: string, args: unknown, options: CallOptions): Promise<CallOutcome> {
    const cfg = this.options.config.get();
    // Nested calls and in_process mode: the local registry, which also delegates gateway-pinned tools
    // through the context's adapter, and checks the permission and options itself.
    if (options.nested || cfg.toolsServiceMode === "in_process") return this.options.local.execute(name, args, options);
    // Pinned by the config, or by the tool's own definition (here, or as the catalog describes it).
    // The local definition's pin, else the catalog's (a local definition without one does not hide it).
    const pin = pinOf(name, cfg, { pin: this.options.local.get(name)?.pin ?? this.byName.get(name)?.pin });
    if (pin === "gateway") {
      // The tool's own time limit (the catalog's word) applies on the way to the gateway too.
      const withTimeout = options.timeoutMs === undefined ? { ...options, timeoutMs: this.timeoutOf(name, options) } : options;
      return Promise.resolve(this.options.local.executeOnGateway(name, args, withTimeout)).then((outcome): CallOutcome => ({ ...outcome, route: "gateway" }));
    }
    // Inference-pinned, or forced local.
    if (pin === "inference" || cfg.toolsForceInProcess.has(name)) return this.options.local.execute(name, args, options);
    // Everything else: the tools service (shadow: the local registry answers, some tools mirrored).
    if (cfg.toolsServiceMode === "shadow") {
      return Promise.resolve(this.options.local.execute(name, args, options)).then((outcome): CallOutcome => {
        if (outcome.kind !== "denied") this.mirror(name, args, options, outcome.text);
        return { ...outcome, route: "shadow" };
      });
    }
    return this.remote(name, args, options);
  }

  private async remote(name: string, args: unknown, options: CallOptions): Promise<CallOutcome> {
    const started = performance.now();
    const done = (kind: OutcomeKind, text: string, route: Route = "remote"): CallOutcome => ({ kind, text, route, durationMs: performance.now() - started });
    if (options.timeoutMs !== undefined) checkedTimeoutMs(options.timeoutMs, "RemoteToolRegistry.execute()");
    if (options.signal?.aborted) return done("cancelled", cancelled(name, options.signal.reason), "local");
    // Permission fast-fail from the catalog (UX only: the tools service checks again, authoritatively).
    const { userId } = options;
    if (userId && !this.isAllowed(name, userId)) return done("denied", permissionDenied(userId, name), "local");
    // Read once: a live reload must not give the cancel marker below a shorter life than the request's.
    const timeoutMs = this.timeoutOf(name, options);
    const noWorker = async (why: string): Promise<CallOutcome> => {
      this.stats.noLiveWorker++;
      const err = new ToolfleetError("NO_LIVE_WORKER", why);
      return (await this.failures.fallback(name, args, options, timeoutMs, err)) ?? done("unavailable", noLiveWorker(name, "tools worker"));
    };
    let route: CallRoute = { kind: "pool", pool: "default", stream: this.options.keys.toolsStream };
    if (this.catalog && this.view) {
      // Unknown to everyone: in no live worker's catalog, never was, not here (pinned tools never get this far).
      if (!this.byName.has(name) && !this.options.local.get(name) && !this.view.hasDeparted(name)) return done("unknown_tool", unknownTool(name), "local");
      // No live worker runs it (its last one is gone, or it is only here): never published, so running it
      // here instead (when the fallback rules allow) cannot run it twice.
      route = this.view.route(name, options.schemaHash ?? this.byName.get(name)?.schemaHash ?? "");
      if (route.kind === "none") return noWorker(`no live tools worker runs ${name}`);
    } else if (this.client && (await this.client.liveWorkers.has(route.stream, "tools")) === false) {
      // No catalog (no worker publishes one): fail now if no worker reads the stream either, rather than
      // publish a request nobody takes and wait out its timeout.
      return noWorker(`no tools worker reads ${route.stream} (none of its consumers has a live heartbeat)`);
    }
    // At most one more send, within the same deadline, when the first provably did not run: a worker that
    // disagrees with the schema (CATALOG_STALE), or one that died or left before taking the request.
    const deadline = performance.now() + timeoutMs;
    let schemaHash = options.schemaHash ?? this.byName.get(name)?.schemaHash ?? "";
    let reply: ToolReply;
    for (let resent = false; ; resent = true) {
      const left = Math.max(1, Math.round(deadline - performance.now()));
      let why: string;
      try {
        reply = await this.send(name, args, options, left, route, schemaHash);
        if (reply.status !== "CATALOG_STALE") break;
        if (resent) return done("unavailable", staleTwice(name));
        this.stats.staleRetries++;
        why = "stale";
      } catch (err) {
        // The caller gave up: it settles now, and the worker was told (never a fallback: the caller wants no result).
        if (isToolfleetError(err, "CANCELLED")) return done("cancelled", cancelled(name, options.signal?.reason ?? err.message));
        if (resent || !this.failures.neverRan(err)) return this.failures.failed(name, args, options, timeoutMs, err, done);
        why = "never ran";
      }
      // Reload, then send to a worker that agrees with the schema this call was built against, when one is
      // live (a rolling deploy), else with the schema now shown.
      // Bounded by the call's deadline: a Redis that stops answering must not hold the call past it.
      try {
        await within(this.reloadCatalog(), Math.max(1, deadline - performance.now()), `reloading the catalog for a call of ${name}`);
      } catch (err) {
        return this.failures.failed(name, args, options, timeoutMs, err, done);
      }
      if (this.view && !this.view.offersOf(name).has(schemaHash)) schemaHash = this.byName.get(name)?.schemaHash ?? schemaHash;
      route = this.view?.route(name, schemaHash) ?? route;
      if (route.kind === "none") return noWorker(`no live tools worker runs ${name} any more`);
      this.options.logger.debug({ tool: name, why, stream: route.stream }, "sending the call once more");
    }
    if (reply.status !== "ok") return done(failureKind(reply), reply.error?.message ?? `Tool '${name}' failed on the tools service (${reply.status}).`);
    options.ctx?.mergeWriteBack(reply.writeBack);
    const outcome = done(reply.outcome ?? "ok", reply.result);
    if (reply.structured) outcome.result = reply.structured;
    return outcome;
  }

  /** The call's own timeout, else the tool's (the catalog's word, or the local definition's), else the config's. */
  private timeoutOf(name: string, options: CallOptions): number {
    return (
      options.timeoutMs ?? this.byName.get(name)?.timeoutMs ?? this.options.local.get(name)?.timeoutMs ?? this.options.config.get().toolsExecTimeout * 1000
    );
  }

  private send(name: string, args: unknown, options: CallOptions, timeoutMs: number, route: CallRoute, schemaHash: string): Promise<ToolReply> {
    const client = this.client;
    if (!client) throw new ToolfleetError("NOT_STARTED", "the remote path is not started (start() was called in in_process mode, or not at all)");
    if (route.kind === "none") throw new ToolfleetError("NO_LIVE_WORKER", `no live tools worker runs ${name}`);
    this.stats.remoteCalls++;
    const ctx = options.ctx ?? null;
    const userId = options.userId ?? ctx?.userId ?? "";
    return client.call({
      toolName: name,
      toolArgs: args as JsonValue,
      userId,
      schemaHash,
      stream: route.stream,
      ...(route.kind === "pool" && route.shards ? { shards: route.shards } : {}),
      // A worker's own stream exists while the worker lives: a send to a gone one must not create it.
      onlyIfStreamExists: route.kind === "worker",
      ctx: ctx
        ? wireContextOf(ctx)
        : {
            platform: "",
            channelId: "",
            userId,
            userName: "",
            guildId: "",
            messageId: "",
            observabilityRequestId: "",
            disclosedSkillIds: [],
            roomContext: null,
          },
      traceId: ctx?.observabilityRequestId,
      // A request a restarted Redis lost may be sent again only when running the tool twice is harmless.
      resendIfLost: this.retrySafe(name),
      // The identity this tier authenticated: the context's when there is one.
      identity: ctx ? ctx.identity() : { userId, guildId: "", channelId: "", platform: "" },
      timeoutMs,
      maxTotalMs: maxTotalOf(options, timeoutMs, "RemoteToolRegistry.execute()"),
      signal: options.signal,
      onProgress: options.onProgress,
      onLog: options.onLog,
    });
  }

  /** Shadow mode: read-only and idempotent tools also run remotely, and the two results are compared. */
  private mirror(name: string, args: unknown, options: CallOptions, localText: string): void {
    if (!this.retrySafe(name) || !this.client) return;
    this.stats.shadowMirrored++;
    // The mirror's write-back is dropped: the model sees only the local call's.
    const schemaHash = this.byName.get(name)?.schemaHash ?? "";
    const route: CallRoute =
      this.view && this.catalog ? this.view.route(name, schemaHash) : { kind: "pool", pool: "default", stream: this.options.keys.toolsStream };
    const run = this.send(
      name,
      args,
      { ...options, signal: undefined, onProgress: undefined, onLog: undefined },
      this.timeoutOf(name, options),
      route,
      schemaHash,
    )
      .then((reply) => {
        const remoteText = reply.status === "ok" ? reply.result : `(${reply.status}) ${reply.error?.message ?? ""}`;
        if (remoteText === localText) this.stats.shadowMatches++;
        else {
          this.stats.shadowMismatches++;
          this.options.logger.warn({ tool: name, local: localText, remote: remoteText }, "shadow mismatch between local and remote results");
        }
      })
      .catch((err: unknown) => {
        this.stats.shadowMismatches++;
        this.options.logger.warn({ tool: name, local: localText, ...errorFields(err) }, "shadow call failed");
      })
      .finally(() => this.mirrors.delete(run));
    this.mirrors.add(run);
  }

  /** Settles once every shadow mirror sent so far has (for a one-shot caller, before it stops: stop() cuts them off). */
  async mirrorsSettled(): Promise<void> {
    await Promise.allSettled([...this.mirrors]);
  }

  /** Safe to run again after a failure, or to mirror: annotated idempotent or read-only. */
  private retrySafe(name: string): boolean {
    const annotations = this.byName.get(name)?.annotations ?? this.options.local.get(name)?.annotations;
    return annotations?.idempotent === true || annotations?.readOnly === true;
  }

  private applyPermissions(permissions: Permissions): void {
    // The catalog speaks for its tools (one it gives no entry is open to all, as on the tools service);
    // the local registry keeps its own rules for the rest.
    const merged: Record<string, readonly string[]> = {};
    for (const [tool, users] of Object.entries(this.localPermissions)) if (!this.byName.has(tool)) merged[tool] = users;
    Object.assign(merged, permissions);
    this.permissions = toPermissionMap(merged);
    this.options.local.setPermissions(merged);
  }
}
