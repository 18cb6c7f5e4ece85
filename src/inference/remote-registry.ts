import { performance } from "node:perf_hooks";
import type { ConfigSource } from "../config/live.js";
import type { JsonValue } from "../core/context.js";
import { errorFields, type Logger } from "../core/log.js";
import {
  isAllowedBy,
  maxTotalOf,
  openAITool,
  pinOf,
  toPermissionMap,
  type CallOptions,
  type OpenAITool,
  type Permissions,
  type ToolRegistry,
  type ToolRegistryLike,
} from "../core/registry.js";
import type { TaskManager } from "../core/tasks.js";
import { defineTool, type ToolDefinition } from "../core/tool.js";
import { loadCatalog, watchCatalog, type Catalog, type CatalogTool, type CatalogWatch } from "../tool-exec/catalog.js";
import type { RedisClient } from "../redis/client.js";
import { cancelUnstarted, type CancelVerdict } from "../tool-exec/idempotency.js";
import type { Keys } from "../redis/keys.js";
import { type ToolReply } from "../tool-exec/codec.js";
import { ToolsClient, publishedRequestOf, wireContextOf } from "../tool-exec/client.js";
import { ToolfleetError, isToolfleetError } from "../core/errors.js";
import { checkedTimeoutMs } from "../core/timeout.js";
import {
  cancelled,
  lostInRestart,
  noLiveWorker,
  permissionDenied,
  staleTwice,
  unavailable,
  unknownTool,
  type CallOutcome,
  type OutcomeKind,
  type Route,
} from "../core/outcome.js";

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
  private catalog: Catalog | null = null;
  private byName = new Map<string, CatalogTool>();
  private permissions = new Map<string, ReadonlySet<string>>();
  private repeat: ReadonlySet<string> = new Set();
  private listing: ToolDefinition[] | undefined;
  private client: ToolsClient | undefined;
  private watch: CatalogWatch | undefined;
  private readonly mirrors = new Set<Promise<void>>();

  private readonly localPermissions: Permissions;

  constructor(options: RemoteToolRegistryOptions) {
    this.options = options;
    this.localPermissions = options.local.getPermissions();
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
    try {
      // Subscribe before the first load: a catalog published in between (a tools worker starting
      // alongside) would otherwise be missed until the next change.
      this.watch = await watchCatalog(redis, this.options.keys, {
        url: redisUrl,
        logger: this.options.logger,
        onChange: () => this.reloadCatalog().then(() => undefined),
      });
    } catch (err) {
      // Half started is not started: a later start() must try again, and nothing may stay open.
      await this.stop();
      throw err;
    }
    await this.reloadCatalog();
  }

  /** Ends the loops, fails pending calls, waits for shadow mirrors; leaves no open handle of its own. */
  async stop(): Promise<void> {
    const watch = this.watch;
    this.watch = undefined;
    const client = this.client;
    this.client = undefined;
    try {
      await watch?.close();
    } finally {
      // Stopping the client fails the mirrors' pending calls at once, instead of at their timeouts.
      await client?.stop();
      await Promise.allSettled([...this.mirrors]);
    }
  }

  /** Loads the published catalog; true when there is one. A corrupt one is logged and the last good one kept. */
  async reloadCatalog(): Promise<boolean> {
    if (!this.options.redis) return false;
    let catalog: Catalog | null;
    try {
      catalog = await loadCatalog(this.options.redis, this.options.keys);
    } catch (err) {
      this.options.logger.error({ ...errorFields(err) }, "catalog could not be loaded; keeping the previous one");
      return this.catalog !== null;
    }
    this.stats.catalogReloads++;
    if (!catalog) {
      this.options.logger.warn({ key: this.options.keys.catalog }, "no tool catalog published yet; using the local registry's tools");
      this.catalog = null;
      this.byName = new Map();
      this.repeat = new Set();
      this.listing = undefined;
      // The gone catalog's rules go with it.
      this.applyPermissions({});
      return false;
    }
    this.catalog = catalog;
    this.byName = new Map(catalog.tools.map((t) => [t.name, t]));
    this.repeat = new Set(catalog.tools.filter((t) => t.allowRepeat).map((t) => t.name));
    this.listing = undefined;
    this.applyPermissions(catalog.permissions);
    this.options.logger.info({ tools: catalog.tools.length, schemaHash: catalog.schemaHash }, "tool catalog loaded");
    return true;
  }

  // ── read surface ──────────────────────────────────────────────────────────

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
  async execute(name: string, args: unknown, options: CallOptions = {}): Promise<CallOutcome> {
    const cfg = this.options.config.get();
    // Nested calls and in_process mode: the local registry, which also delegates gateway-pinned tools
    // through the context's adapter, and checks the permission and options itself.
    if (options.nested || cfg.toolsServiceMode === "in_process") return this.options.local.execute(name, args, options);
    // Pinned by the config, or by the tool's own definition (here, or as the catalog describes it).
    const pin = pinOf(name, cfg, this.options.local.get(name) ?? this.byName.get(name));
    if (pin === "gateway") return { ...(await this.options.local.executeOnGateway(name, args, options)), route: "gateway" };
    // Inference-pinned, or forced local.
    if (pin === "inference" || cfg.toolsForceInProcess.has(name)) return this.options.local.execute(name, args, options);
    // Everything else: the tools service (shadow: the local registry answers, some tools mirrored).
    if (cfg.toolsServiceMode === "shadow") {
      const outcome = await this.options.local.execute(name, args, options);
      if (outcome.kind !== "denied") this.mirror(name, args, options, outcome.text);
      return { ...outcome, route: "shadow" };
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
    // Unknown to everyone: not in the catalog, not here (pinned tools never get this far). Only a catalog can
    // say so: without one the tools service has not said what it runs, and the request goes out as before.
    if (this.catalog && !this.byName.has(name) && !this.options.local.get(name)) return done("unknown_tool", unknownTool(name), "local");
    const ctx = options.ctx ?? null;
    // Read once: a live reload must not give the cancel marker below a shorter life than the request's.
    const timeoutMs = this.timeoutOf(name, options);
    // No tools worker alive: fail now rather than publish a request nobody takes and wait out its timeout.
    // Never published, so running it here instead (when the fallback rules allow) cannot run it twice.
    const stream = this.options.keys.toolsStream;
    if (this.client && (await this.client.liveWorkers.has(stream, "tools")) === false) {
      this.stats.noLiveWorker++;
      const err = new ToolfleetError("NO_LIVE_WORKER", `no tools worker reads ${stream} (none of its consumers has a live heartbeat)`);
      return (await this.fallback(name, args, options, timeoutMs, err)) ?? done("unavailable", noLiveWorker(name, "tools worker"));
    }
    let reply: ToolReply;
    try {
      reply = await this.send(name, args, options, timeoutMs);
      if (reply.status === "CATALOG_STALE") {
        // Reload and retry once; a second stale answer is an error, never a loop.
        this.stats.staleRetries++;
        await this.reloadCatalog();
        reply = await this.send(name, args, options, timeoutMs);
        if (reply.status === "CATALOG_STALE") return done("unavailable", staleTwice(name));
      }
    } catch (err) {
      // The caller gave up: it settles now, and the worker was told (never a fallback: the caller wants no result).
      if (isToolfleetError(err, "CANCELLED")) return done("cancelled", cancelled(name, options.signal?.reason ?? err.message));
      const fallback = await this.fallback(name, args, options, timeoutMs, err);
      if (fallback) return fallback;
      if (isToolfleetError(err, "PAYLOAD_TOO_LARGE")) return done("error", err.message);
      return done("unavailable", isToolfleetError(err, "REQUEST_LOST") ? lostInRestart(name) : unavailable(name));
    }
    if (reply.status !== "ok") return done(failureKind(reply), reply.error?.message ?? `Tool '${name}' failed on the tools service (${reply.status}).`);
    ctx?.mergeWriteBack(reply.writeBack);
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

  private send(name: string, args: unknown, options: CallOptions, timeoutMs: number): Promise<ToolReply> {
    const client = this.client;
    if (!client) throw new ToolfleetError("NOT_STARTED", "the remote path is not started (start() was called in in_process mode, or not at all)");
    this.stats.remoteCalls++;
    const ctx = options.ctx ?? null;
    const userId = options.userId ?? ctx?.userId ?? "";
    return client.call({
      toolName: name,
      toolArgs: args as JsonValue,
      userId,
      schemaHash: this.byName.get(name)?.schemaHash ?? "",
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
    });
  }

  /**
   * After a remote failure, run locally only when that cannot run the tool
   * twice: the tool is idempotent or read-only, or the request provably never
   * started: the Redis that took it still runs, holds its entry, and no worker
   * ever read it (`cancelUnstarted()`, which then marks it cancelled). Anything
   * unproven (a restart, the entry gone, a publish that never answered) means
   * no fallback. Null when no fallback may run.
   */
  private async fallback(name: string, args: unknown, options: CallOptions, timeoutMs: number, err: unknown): Promise<CallOutcome | null> {
    // No live worker is not a failure of this call (LiveWorkers logs that state once, when it begins).
    if (isToolfleetError(err, "NO_LIVE_WORKER")) this.options.logger.debug({ tool: name, reason: err.message }, "remote tool call not sent");
    else this.options.logger.warn({ tool: name, ...errorFields(err) }, "remote tool call failed");
    if (!this.options.config.get().toolsLocalFallback || !this.options.local.toolNames().has(name)) return null;
    // Failures before anything was published (no remote path, arguments too large for the wire) never started.
    let neverStarted = !isNoReply(err);
    const safe = this.retrySafe(name);
    let verdict: CancelVerdict | "unknown" = "unknown";
    const published = isNoReply(err) ? publishedRequestOf(err, this.options.keys) : undefined;
    if (!safe && !neverStarted && isNoReply(err) && err.idemKey && published && this.options.redis) {
      try {
        // The marker outlives the request's deadline (its timeout from when it was sent), so no worker
        // can claim the request after it expires and run it as well as the fallback.
        verdict = await cancelUnstarted(this.options.redis, this.options.keys, published, err.idemKey, timeoutMs / 1000 + 60);
        neverStarted = verdict === "cancelled";
      } catch (cancelErr) {
        this.options.logger.warn({ tool: name, ...errorFields(cancelErr) }, "could not cancel the request, so it may still run: no local fallback");
      }
    }
    if (!safe && !neverStarted) {
      this.stats.fallbacksRefused++;
      this.options.logger.warn({ tool: name, why: verdict }, "no local fallback: the tools service may already have run this call");
      return null;
    }
    this.stats.fallbacks++;
    this.options.logger.info(
      { tool: name, reason: safe ? "idempotent or read-only" : isNoReply(err) ? "request cancelled before it started" : "request never sent" },
      "falling back to in-process execution",
    );
    return { ...(await this.options.local.execute(name, args, options)), route: "fallback" };
  }

  /** Shadow mode: read-only and idempotent tools also run remotely, and the two results are compared. */
  private mirror(name: string, args: unknown, options: CallOptions, localText: string): void {
    if (!this.retrySafe(name) || !this.client) return;
    this.stats.shadowMirrored++;
    // The mirror's write-back is dropped: the model sees only the local call's.
    const run = this.send(name, args, { ...options, signal: undefined, onProgress: undefined }, this.timeoutOf(name, options))
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

/** The kind of a reply that is not `ok`: the worker refused or could not finish the request. */
function failureKind(reply: ToolReply): OutcomeKind {
  switch (reply.error?.code) {
    case "UNAUTHENTICATED":
      return "denied";
    case "EXPIRED":
      return "timeout";
    case "CATALOG_STALE":
      return "unavailable";
    default:
      return "error";
  }
}

/** A request that was sent and got no reply: it may have run. */
function isNoReply(err: unknown): err is ToolfleetError {
  return isToolfleetError(err, "TIMEOUT", "STOPPED", "PUBLISH_FAILED", "REQUEST_LOST");
}
