import { performance } from "node:perf_hooks";
import { ToolfleetError, isToolfleetError } from "./errors.js";
import { MAX_CALL_TIMEOUT_MS, checkedTimeoutMs } from "./timeout.js";
import { CallSignal, ToolContext, type DelegateOptions } from "./context.js";
import { createLogger, errorFields, type Logger } from "./log.js";
import { TaskManager } from "./tasks.js";
import type { ToolDefinition, ToolPin } from "./tool.js";
import type { ProgressUpdate, ToolLog } from "./progress.js";
import { cancelled, gatewayUnavailable, noLiveWorker, permissionDenied, unknownTool, type CallOutcome, type OutcomeKind, type Route } from "./outcome.js";
import { render, withResult, type Rendered } from "./render.js";
import { waitForCall } from "./call-wait.js";
import { defaultSettings, type CoreSettings, type SettingsSource } from "./settings.js";
import { formatArgIssues, type JsonSchema } from "./validate.js";

/** A tool as the OpenAI chat API takes it. */
export interface OpenAITool {
  type: "function";
  function: { name: string; description: string; parameters: JsonSchema };
}

/** Who may run which tool: no entry → everyone; `"*"` → everyone; else the listed user ids. */
export type Permissions = Readonly<Record<string, readonly string[]>>;

export interface CallOptions {
  /** The caller's user id; checked against the permissions when given. */
  userId?: string;
  ctx?: ToolContext | null;
  /** An inner call of a compound tool. Never offloaded: the outer tool needs its result. */
  nested?: boolean;
  /** Overrides `toolsExecTimeout` for this call: milliseconds, > 0 and at most `MAX_CALL_TIMEOUT_MS`. */
  timeoutMs?: number;
  /** May this call become a background task? @defaultValue true */
  background?: boolean;
  /**
   * The per-tool schema hash of the listing the call was built from (the LLM loop sets it from what the model
   * was shown). A remote call goes to workers that run that schema, while one does. @defaultValue the catalog's now
   */
  schemaHash?: string;
  /** Aborts the call: the handler's `ctx.signal` aborts with its reason, and the call settles at once as `cancelled`. */
  signal?: AbortSignal;
  /** Hears the tool's progress reports (`ctx.progress()`); each one also extends the call's deadline by its timeout. */
  onProgress?: (update: ProgressUpdate) => void;
  /** Hears the tool's log messages (`ctx.log()`); unlike progress, they do not extend the deadline. */
  onLog?: (log: ToolLog) => void;
  /** However much progress a tool reports, the call ends this long after it started. @defaultValue 10 × the timeout, at most MAX_CALL_TIMEOUT_MS */
  maxTotalTimeoutMs?: number;
  /** @internal A worker's own handle on the call (to cancel it, and the request's idempotency key); made here when not given. */
  call?: CallSignal;
}

/** The most a call may run with progress extending it, checked; by default ten times its timeout. */
export function maxTotalOf(options: Pick<CallOptions, "maxTotalTimeoutMs">, timeoutMs: number, where: string): number {
  if (options.maxTotalTimeoutMs === undefined) return Math.min(timeoutMs * 10, MAX_CALL_TIMEOUT_MS);
  return Math.max(timeoutMs, checkedTimeoutMs(options.maxTotalTimeoutMs, where));
}

/** Where a tool is pinned: by the configured sets first, else by its own `pin`. */
export function pinOf(name: string, cfg: CoreSettings, def: Pick<ToolDefinition, "pin"> | undefined): ToolPin | undefined {
  if (cfg.gatewayPinned.has(name)) return "gateway";
  if (cfg.inferencePinned?.has(name)) return "inference";
  return def?.pin;
}

/** What every registry offers the LLM loop; the remote registry implements the same. */
export interface ToolRegistryLike {
  getOpenAITools(): OpenAITool[];
  getOpenAIToolsByNames(names: Iterable<string>): OpenAITool[];
  toolNames(): ReadonlySet<string>;
  repeatAllowedTools(): ReadonlySet<string>;
  listTools(): readonly ToolDefinition[];
  setPermissions(permissions: Permissions): void;
  isAllowed(toolName: string, userId: string): boolean;
  readonly hasTools: boolean;
  readonly size: number;
  readonly taskManager: TaskManager | null;
  call(name: string, args: unknown, options?: CallOptions): Promise<string>;
  /** The same call, with how it ended and where it ran (the loop reports both with a chat's answer). */
  execute(name: string, args: unknown, options?: CallOptions): Promise<CallOutcome>;
  /** The per-tool schema hash a listing of this tool describes, where the registry has one (a catalog's). */
  schemaHashOf?(name: string): string | undefined;
}

export interface ToolRegistryOptions {
  /** Any config source (`LiveConfig`, `staticConfig()`). @defaultValue the defaults of `defineConfig()` */
  config?: SettingsSource;
  logger?: Logger;
  /** Background offload; null turns it off. @defaultValue an in-memory TaskManager */
  taskManager?: TaskManager | null;
}

export function openAITool(def: Pick<ToolDefinition, "name" | "description" | "parameters">): OpenAITool {
  return { type: "function", function: { name: def.name, description: def.description, parameters: def.parameters } };
}

/** The permission rule, in one place for every registry. */
export function isAllowedBy(permissions: ReadonlyMap<string, ReadonlySet<string>>, toolName: string, userId: string): boolean {
  const allowed = permissions.get(toolName);
  return allowed === undefined || allowed.has("*") || allowed.has(userId);
}

export function toPermissionMap(permissions: Permissions): Map<string, ReadonlySet<string>> {
  return new Map(Object.entries(permissions).map(([tool, users]) => [tool, new Set(users)]));
}

/**
 * The local registry: runs tools in this process. It is the whole of the
 * `in_process` mode and the engine under every other tier.
 */
export class ToolRegistry implements ToolRegistryLike {
  taskManager: TaskManager | null;
  private readonly tools = new Map<string, ToolDefinition>();
  private readonly openAITools = new Map<string, OpenAITool>();
  private permissions = new Map<string, ReadonlySet<string>>();
  private readonly config: SettingsSource;
  private readonly logger: Logger;

  constructor(options: ToolRegistryOptions = {}) {
    this.config = options.config ?? defaultSettings;
    this.logger = options.logger ?? createLogger("toolfleet.registry");
    this.taskManager = options.taskManager === undefined ? new TaskManager({ config: this.config, logger: this.logger }) : options.taskManager;
  }

  register(...defs: ToolDefinition[]): this {
    for (const def of defs) {
      if (this.tools.has(def.name)) {
        throw new ToolfleetError("TOOL_DUPLICATE", `Tool '${def.name}' is already registered.`);
      }
      const configured = pinOf(def.name, this.config.get(), undefined);
      if (def.pin && configured && configured !== def.pin) {
        throw new ToolfleetError(
          "PIN_SETS_OVERLAP",
          `Tool '${def.name}' is pinned to the ${def.pin} by its definition but to the ${configured} by the config.`,
        );
      }
      this.tools.set(def.name, def);
      this.openAITools.set(def.name, openAITool(def));
    }
    return this;
  }

  /** Removes tools by name (an MCP source's tools while its server is down); unknown names are skipped. How many went. */
  unregister(...names: string[]): number {
    let removed = 0;
    for (const name of names) {
      if (!this.tools.delete(name)) continue;
      this.openAITools.delete(name);
      removed++;
    }
    return removed;
  }

  get(name: string): ToolDefinition | undefined {
    return this.tools.get(name);
  }

  getOpenAITools(): OpenAITool[] {
    return [...this.openAITools.values()];
  }

  getOpenAIToolsByNames(names: Iterable<string>): OpenAITool[] {
    const out: OpenAITool[] = [];
    for (const name of new Set(names)) {
      const tool = this.openAITools.get(name);
      if (tool) out.push(tool);
    }
    return out;
  }

  toolNames(): ReadonlySet<string> {
    return new Set(this.tools.keys());
  }

  repeatAllowedTools(): ReadonlySet<string> {
    return new Set([...this.tools.values()].filter((t) => t.allowRepeat).map((t) => t.name));
  }

  listTools(): readonly ToolDefinition[] {
    return [...this.tools.values()];
  }

  setPermissions(permissions: Permissions): void {
    this.permissions = toPermissionMap(permissions);
  }

  getPermissions(): Permissions {
    return Object.fromEntries([...this.permissions].map(([tool, users]) => [tool, [...users]]));
  }

  isAllowed(toolName: string, userId: string): boolean {
    return isAllowedBy(this.permissions, toolName, userId);
  }

  get hasTools(): boolean {
    return this.tools.size > 0;
  }

  get size(): number {
    return this.tools.size;
  }

  /** Runs a call and returns the text the LLM sees. Never throws for a tool's failure. */
  async call(name: string, args: unknown, options: CallOptions = {}): Promise<string> {
    return (await this.execute(name, args, options)).text;
  }

  /** Runs a call and reports how it went, as a value. */
  async execute(name: string, args: unknown, options: CallOptions = {}): Promise<CallOutcome> {
    const started = performance.now();
    const outcome = (kind: OutcomeKind, text: string, route: Route = "local"): CallOutcome => ({
      kind,
      text,
      route,
      durationMs: performance.now() - started,
    });
    const { userId, ctx, signal } = options;
    const cfg = this.config.get();
    const def = this.tools.get(name);
    const timeoutMs =
      options.timeoutMs === undefined ? (def?.timeoutMs ?? cfg.toolsExecTimeout * 1000) : checkedTimeoutMs(options.timeoutMs, "ToolRegistry.execute()");
    // Checked now (a bad one is refused before anything runs); the default is worked out only for a call that waits.
    if (options.maxTotalTimeoutMs !== undefined) checkedTimeoutMs(options.maxTotalTimeoutMs, "ToolRegistry.execute()");
    if (signal?.aborted) return outcome("cancelled", cancelled(name, signal.reason));
    if (userId && !this.isAllowed(name, userId)) return outcome("denied", permissionDenied(userId, name));

    // Gateway-pinned by the config or by the tool itself (register() refused a tool whose pin the config contradicts).
    if ((cfg.gatewayPinned.has(name) || def?.pin === "gateway") && ctx?.adapter?.ownsPlatformClient !== true) {
      const maxTotalTimeoutMs = maxTotalOf(options, timeoutMs, "ToolRegistry.execute()");
      return this.delegateToGateway(name, args, ctx ?? null, outcome, { signal, onProgress: options.onProgress, timeoutMs, maxTotalTimeoutMs });
    }

    if (!def) return outcome("unknown_tool", unknownTool(name));
    const checked = def.validate(args);
    if (!checked.ok) return outcome("invalid_args", formatArgIssues(name, checked.issues));

    const baseCtx = ctx ?? new ToolContext({ userId: userId ?? "" });
    const call = options.call ?? new CallSignal(baseCtx.signal);
    const onAbort = signal ? (): void => call.abort(signal.reason) : undefined;
    if (onAbort) signal?.addEventListener("abort", onAbort, { once: true });
    // Reports made before the handler's first await (waitForCall takes over after it) reach the caller too.
    call.onProgress = options.onProgress;
    call.onLog = options.onLog;
    try {
      let value: unknown;
      try {
        value = (def.handler as (a: unknown, c: ToolContext) => unknown)(checked.value, baseCtx.forCall(call));
      } catch (err) {
        return outcome(call.aborted ? "cancelled" : "error", call.aborted ? cancelled(name, call.signal.reason) : this.failure(name, err));
      }
      if (!isPromiseLike(value)) return withResult(outcome, render(def, value, this.failure));
      const settled = Promise.resolve(value).then(
        (v) => render(def, v, this.failure),
        (err: unknown): Rendered =>
          // A handler that gave up because its signal fired was cancelled, not broken.
          call.aborted ? { ok: false, cancelled: true, text: cancelled(name, call.signal.reason) } : { ok: false, text: this.failure(name, err) },
      );
      const offloadMs = !options.nested && options.background !== false && !def.noBackground && this.taskManager ? cfg.backgroundThreshold * 1000 : 0;
      // A literal, no spread: every call with a promise comes here (see docs/benchmarks.md on spreads).
      const waited = await waitForCall(settled, call, {
        timeoutMs,
        maxTotalMs: maxTotalOf(options, timeoutMs, "ToolRegistry.execute()"),
        offloadMs,
        name,
        userId: userId ?? baseCtx.userId,
        onProgress: options.onProgress,
        taskManager: this.taskManager,
        logger: this.logger,
      });
      if (waited.kind === "background") {
        return { ...outcome("background", waited.text), taskId: waited.taskId };
      }
      const done = outcome(waited.kind, waited.text);
      if (waited.result) done.result = waited.result;
      return done;
    } finally {
      call.detach();
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * A gateway-pinned call from a tier that does not own the platform client: sent to the gateway through
   * the context's adapter (a tool the catalog pins there need not be defined here).
   */
  async executeOnGateway(name: string, args: unknown, options: CallOptions = {}): Promise<CallOutcome> {
    const def = this.tools.get(name);
    if (def && options.ctx?.adapter?.ownsPlatformClient === true) return this.execute(name, args, options);
    const started = performance.now();
    const outcome = (kind: OutcomeKind, text: string, route: Route = "gateway"): CallOutcome => ({
      kind,
      text,
      route,
      durationMs: performance.now() - started,
    });
    const timeoutMs =
      options.timeoutMs === undefined
        ? (def?.timeoutMs ?? this.config.get().toolsExecTimeout * 1000)
        : checkedTimeoutMs(options.timeoutMs, "ToolRegistry.execute()");
    if (options.signal?.aborted) return outcome("cancelled", cancelled(name, options.signal.reason));
    if (options.userId && !this.isAllowed(name, options.userId)) return outcome("denied", permissionDenied(options.userId, name));
    const maxTotalTimeoutMs = maxTotalOf(options, timeoutMs, "ToolRegistry.execute()");
    return this.delegateToGateway(name, args, options.ctx ?? null, outcome, {
      signal: options.signal,
      onProgress: options.onProgress,
      timeoutMs,
      maxTotalTimeoutMs,
    });
  }

  private async delegateToGateway(
    name: string,
    args: unknown,
    ctx: ToolContext | null,
    outcome: (kind: OutcomeKind, text: string, route: Route) => CallOutcome,
    options: DelegateOptions,
  ): Promise<CallOutcome> {
    const adapter = ctx?.adapter;
    if (!ctx || !adapter?.delegateToGateway) return outcome("unavailable", gatewayUnavailable(name), "gateway");
    try {
      const answer = await adapter.delegateToGateway("execute_tool", { toolName: name, toolArgs: args, toolCtx: ctx.identity() }, ctx, options);
      // A plain string is an answer that ran; a gateway over Redis also says how it ended.
      if (typeof answer === "string") return outcome("ok", answer, "gateway");
      const done = outcome(answer.kind, answer.text, "gateway");
      if (answer.result) done.result = answer.result;
      return done;
    } catch (err) {
      // No gateway was there to send it to (ProxyPlatformAdapter): not a failure of the tool.
      if (isToolfleetError(err, "NO_LIVE_WORKER")) return outcome("unavailable", noLiveWorker(name, "gateway"), "gateway");
      if (isToolfleetError(err, "CANCELLED")) return outcome("cancelled", cancelled(name, err.message), "gateway");
      return outcome("error", this.failure(name, err), "gateway");
    }
  }

  private readonly failure = (name: string, err: unknown): string => {
    this.logger.error({ tool: name, ...errorFields(err) }, "tool handler failed");
    const message = err instanceof Error ? err.message : String(err);
    return `Tool '${name}' failed: ${message}`;
  };

  /** Stops background tasks and releases what the registry holds. */
  async close(): Promise<void> {
    await this.taskManager?.close();
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function";
}
