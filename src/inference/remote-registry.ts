import { performance } from "node:perf_hooks";
import type { ConfigSource } from "../config/live.js";
import type { JsonValue } from "../core/context.js";
import { errorFields, type Logger } from "../core/log.js";
import {
  checkedTimeoutMs,
  isAllowedBy,
  openAITool,
  permissionDenied,
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
import { cancelRequest } from "../tool-exec/idempotency.js";
import type { Keys } from "../redis/keys.js";
import { WireFormatError, type ToolReply } from "../tool-exec/codec.js";
import { ToolCallError, ToolsClient, wireContextOf } from "../tool-exec/client.js";

/** Where a call went, as `execute()` reports it. */
export type Route = "local" | "gateway" | "remote" | "fallback" | "shadow";

export interface RemoteOutcome {
  text: string;
  route: Route;
  durationMs: number;
}

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

export function unavailable(name: string): string {
  return `Tool '${name}' is temporarily unavailable (tools service error). Try again.`;
}

export function staleTwice(name: string): string {
  return `Tool '${name}' could not run: the tools service still disagrees about its parameters after a catalog reload. Try again shortly.`;
}

/**
 * The inference tier's registry: a drop-in for the local ToolRegistry that
 * shows the model the published catalog and routes each call to the tier
 * that runs it (DESIGN §1): gateway-pinned tools to the gateway, inference-
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
  };
  private readonly o: RemoteToolRegistryOptions;
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
    this.o = options;
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
    if (this.o.config.get().toolsServiceMode === "in_process" || this.client) return;
    const { redis, redisUrl } = this.o;
    if (!redis || !redisUrl) throw new Error(`RemoteToolRegistry: mode '${this.o.config.get().toolsServiceMode}' needs a Redis connection`);
    const client = new ToolsClient({ redis, redisUrl, keys: this.o.keys, workerId: this.o.workerId, logger: this.o.logger });
    await client.start();
    this.client = client;
    try {
      // Subscribe before the first load: a catalog published in between (a tools worker starting
      // alongside) would otherwise be missed until the next change.
      this.watch = await watchCatalog(redis, this.o.keys, { url: redisUrl, logger: this.o.logger, onChange: () => this.reloadCatalog().then(() => undefined) });
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
    if (!this.o.redis) return false;
    let catalog: Catalog | null;
    try {
      catalog = await loadCatalog(this.o.redis, this.o.keys);
    } catch (err) {
      this.o.logger.error({ ...errorFields(err) }, "catalog could not be loaded; keeping the previous one");
      return this.catalog !== null;
    }
    this.stats.catalogReloads++;
    if (!catalog) {
      this.o.logger.warn({ key: this.o.keys.catalog }, "no tool catalog published yet; using the local registry's tools");
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
    this.o.logger.info({ tools: catalog.tools.length, schemaHash: catalog.schemaHash }, "tool catalog loaded");
    return true;
  }

  // ── read surface ──────────────────────────────────────────────────────────

  getOpenAITools(): OpenAITool[] {
    return this.catalog ? [...this.byName.values()].map(openAITool) : this.o.local.getOpenAITools();
  }

  getOpenAIToolsByNames(names: Iterable<string>): OpenAITool[] {
    if (!this.catalog) return this.o.local.getOpenAIToolsByNames(names);
    const out: OpenAITool[] = [];
    for (const name of new Set(names)) {
      const tool = this.byName.get(name);
      if (tool) out.push(openAITool(tool));
    }
    return out;
  }

  toolNames(): ReadonlySet<string> {
    return this.catalog ? new Set(this.byName.keys()) : this.o.local.toolNames();
  }

  repeatAllowedTools(): ReadonlySet<string> {
    return this.catalog ? this.repeat : this.o.local.repeatAllowedTools();
  }

  /** With a catalog: definitions whose handlers refuse to run here (the tools run remotely; use call()). */
  listTools(): readonly ToolDefinition[] {
    if (!this.catalog) return this.o.local.listTools();
    this.listing ??= [...this.byName.values()].map((t) =>
      defineTool({
        name: t.name,
        description: t.description,
        parameters: t.parameters,
        allowRepeat: t.allowRepeat,
        noBackground: t.noBackground,
        annotations: t.annotations,
        handler: () => {
          throw new Error(`Tool '${t.name}' runs remotely; use RemoteToolRegistry.call().`);
        },
      }),
    );
    return this.listing;
  }

  setPermissions(permissions: Permissions): void {
    this.applyPermissions(permissions);
  }

  isAllowed(toolName: string, userId: string): boolean {
    return this.catalog ? isAllowedBy(this.permissions, toolName, userId) : this.o.local.isAllowed(toolName, userId);
  }

  get hasTools(): boolean {
    return this.catalog ? this.byName.size > 0 : this.o.local.hasTools;
  }

  get size(): number {
    return this.catalog ? this.byName.size : this.o.local.size;
  }

  get taskManager(): TaskManager | null {
    return this.o.local.taskManager;
  }

  set taskManager(manager: TaskManager | null) {
    this.o.local.taskManager = manager;
  }

  // ── routing ───────────────────────────────────────────────────────────────

  async call(name: string, args: unknown, options: CallOptions = {}): Promise<string> {
    return (await this.execute(name, args, options)).text;
  }

  /** Routes a call (DESIGN §1) and reports where it went. */
  async execute(name: string, args: unknown, options: CallOptions = {}): Promise<RemoteOutcome> {
    const started = performance.now();
    const done = (text: string, route: Route): RemoteOutcome => ({ text, route, durationMs: performance.now() - started });
    const cfg = this.o.config.get();
    const { userId, nested } = options;
    if (options.timeoutMs !== undefined) checkedTimeoutMs(options.timeoutMs, "RemoteToolRegistry.execute()");

    // 2. Permission fast-fail from the catalog (UX only: the tools service re-checks).
    if (userId && !this.isAllowed(name, userId)) return done(permissionDenied(userId, name), "local");
    // 3. Nested calls and in_process mode: the local registry, which delegates gateway-pinned tools itself.
    if (nested || cfg.toolsServiceMode === "in_process") {
      const outcome = await this.o.local.execute(name, args, options);
      return done(outcome.text, outcome.route);
    }
    // 4. Gateway-pinned: delegated through the context's adapter (the local registry holds that one rule).
    if (cfg.gatewayPinned.has(name)) return done((await this.o.local.execute(name, args, options)).text, "gateway");
    // 5. Inference-pinned, or forced local.
    if (cfg.inferencePinned.has(name) || cfg.toolsForceInProcess.has(name)) {
      return done(await this.o.local.call(name, args, options), "local");
    }
    // 6. Everything else: the tools service (shadow: local answers, some tools mirrored).
    if (cfg.toolsServiceMode === "shadow") {
      const text = await this.o.local.call(name, args, options);
      this.mirror(name, args, options, text);
      return done(text, "shadow");
    }
    return this.remote(name, args, options, done);
  }

  private async remote(name: string, args: unknown, options: CallOptions, done: (text: string, route: Route) => RemoteOutcome): Promise<RemoteOutcome> {
    const ctx = options.ctx ?? null;
    // Read once: a live reload must not give the cancel marker below a shorter life than the request's.
    const timeoutMs = this.timeoutOf(options);
    let reply: ToolReply;
    try {
      reply = await this.send(name, args, options, timeoutMs);
      if (reply.status === "CATALOG_STALE") {
        // Reload and retry once; a second stale answer is an error, never a loop.
        this.stats.staleRetries++;
        await this.reloadCatalog();
        reply = await this.send(name, args, options, timeoutMs);
        if (reply.status === "CATALOG_STALE") return done(staleTwice(name), "remote");
      }
    } catch (err) {
      return this.fallback(name, args, options, timeoutMs, err, done);
    }
    if (reply.status !== "ok") return done(reply.error?.message ?? `Tool '${name}' failed on the tools service (${reply.status}).`, "remote");
    ctx?.mergeWriteBack(reply.writeBack);
    return done(reply.result, "remote");
  }

  private timeoutOf(options: CallOptions): number {
    return options.timeoutMs ?? this.o.config.get().toolsExecTimeout * 1000;
  }

  private send(name: string, args: unknown, options: CallOptions, timeoutMs: number): Promise<ToolReply> {
    const client = this.client;
    if (!client) throw new Error("the remote path is not started (start() was called in in_process mode, or not at all)");
    this.stats.remoteCalls++;
    const ctx = options.ctx ?? null;
    const userId = options.userId ?? ctx?.userId ?? "";
    return client.call({
      toolName: name,
      toolArgs: args as JsonValue,
      userId,
      schemaHash: this.byName.get(name)?.schemaHash ?? "",
      ctx: ctx ? wireContextOf(ctx) : { platform: "", channelId: "", userId, userName: "", guildId: "", messageId: "", observabilityRequestId: "", disclosedSkillIds: [], roomContext: null },
      traceId: ctx?.observabilityRequestId,
      // The identity this tier authenticated: the context's when there is one.
      identity: ctx ? ctx.identity() : { userId, guildId: "", channelId: "", platform: "" },
      timeoutMs,
    });
  }

  /**
   * After a remote failure, run locally only when that cannot run the tool
   * twice: the tool is idempotent or read-only, or the request provably never
   * started (its idempotency key is claimed as cancelled before any worker
   * claimed it).
   */
  private async fallback(
    name: string,
    args: unknown,
    options: CallOptions,
    timeoutMs: number,
    err: unknown,
    done: (text: string, route: Route) => RemoteOutcome,
  ): Promise<RemoteOutcome> {
    this.o.logger.warn({ tool: name, ...errorFields(err) }, "remote tool call failed");
    // Failures before anything was published (no remote path, arguments too large for the wire) never started.
    let neverStarted = !(err instanceof ToolCallError);
    if (!this.o.config.get().toolsLocalFallback || !this.o.local.toolNames().has(name)) {
      return done(err instanceof WireFormatError ? err.message : unavailable(name), "remote");
    }
    const safe = this.retrySafe(name);
    if (!safe && !neverStarted && err instanceof ToolCallError && this.o.redis) {
      try {
        // The marker outlives the request's deadline (its timeout from when it was sent), so no worker
        // can claim the request after it expires and run it as well as the fallback.
        neverStarted = await cancelRequest(this.o.redis, this.o.keys, err.idemKey, timeoutMs / 1000 + 60);
      } catch (cancelErr) {
        this.o.logger.warn({ tool: name, ...errorFields(cancelErr) }, "could not cancel the request, so it may still run: no local fallback");
      }
    }
    if (!safe && !neverStarted) {
      this.stats.fallbacksRefused++;
      this.o.logger.warn({ tool: name }, "no local fallback: the tools service may already have run this call");
      return done(unavailable(name), "remote");
    }
    this.stats.fallbacks++;
    this.o.logger.info({ tool: name, reason: safe ? "idempotent or read-only" : "request cancelled before it started" }, "falling back to in-process execution");
    return done(await this.o.local.call(name, args, options), "fallback");
  }

  /** Shadow mode: read-only and idempotent tools also run remotely, and the two results are compared. */
  private mirror(name: string, args: unknown, options: CallOptions, localText: string): void {
    if (!this.retrySafe(name) || !this.client) return;
    this.stats.shadowMirrored++;
    // The mirror's write-back is dropped: the model sees only the local call's.
    const run = this.send(name, args, options, this.timeoutOf(options))
      .then((reply) => {
        const remoteText = reply.status === "ok" ? reply.result : `(${reply.status}) ${reply.error?.message ?? ""}`;
        if (remoteText === localText) this.stats.shadowMatches++;
        else {
          this.stats.shadowMismatches++;
          this.o.logger.warn({ tool: name, local: localText, remote: remoteText }, "shadow mismatch between local and remote results");
        }
      })
      .catch((err: unknown) => {
        this.stats.shadowMismatches++;
        this.o.logger.warn({ tool: name, local: localText, ...errorFields(err) }, "shadow call failed");
      })
      .finally(() => this.mirrors.delete(run));
    this.mirrors.add(run);
  }

  /** Safe to run again after a failure, or to mirror: annotated idempotent or read-only. */
  private retrySafe(name: string): boolean {
    const annotations = this.byName.get(name)?.annotations ?? this.o.local.get(name)?.annotations;
    return annotations?.idempotent === true || annotations?.readOnly === true;
  }

  private applyPermissions(permissions: Permissions): void {
    // The catalog speaks for its tools (one it gives no entry is open to all, as on the tools service);
    // the local registry keeps its own rules for the rest.
    const merged: Record<string, readonly string[]> = {};
    for (const [tool, users] of Object.entries(this.localPermissions)) if (!this.byName.has(tool)) merged[tool] = users;
    Object.assign(merged, permissions);
    this.permissions = toPermissionMap(merged);
    this.o.local.setPermissions(merged);
  }
}
