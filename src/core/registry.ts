import { performance } from "node:perf_hooks";
import { ToolfleetError, isToolfleetError } from "./errors.js";
import { checkedTimeoutMs } from "./timeout.js";
import { CallSignal, ToolContext } from "./context.js";
import { createLogger, errorFields, type Logger } from "./log.js";
import { TaskManager } from "./tasks.js";
import type { ToolDefinition } from "./tool.js";
import { gatewayUnavailable, noLiveWorker, permissionDenied, unknownTool, type CallOutcome, type OutcomeKind, type Route } from "./outcome.js";
import { defaultSettings, type SettingsSource } from "./settings.js";
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
      this.tools.set(def.name, def);
      this.openAITools.set(def.name, openAITool(def));
    }
    return this;
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
    const { userId, ctx } = options;
    const cfg = this.config.get();
    const timeoutMs = options.timeoutMs === undefined ? cfg.toolsExecTimeout * 1000 : checkedTimeoutMs(options.timeoutMs, "ToolRegistry.execute()");
    if (userId && !this.isAllowed(name, userId)) return outcome("denied", permissionDenied(userId, name));

    if (cfg.gatewayPinned.has(name) && ctx?.adapter?.ownsPlatformClient !== true) {
      return this.delegateToGateway(name, args, ctx ?? null, outcome);
    }

    const def = this.tools.get(name);
    if (!def) return outcome("unknown_tool", unknownTool(name));
    const checked = def.validate(args);
    if (!checked.ok) return outcome("invalid_args", formatArgIssues(name, checked.issues));

    const baseCtx = ctx ?? new ToolContext({ userId: userId ?? "" });
    const call = new CallSignal(baseCtx.signal);
    try {
      let result: unknown;
      try {
        result = (def.handler as (a: unknown, c: ToolContext) => unknown)(checked.value, baseCtx.forCall(call));
      } catch (err) {
        return outcome("error", this.failure(name, err));
      }
      if (!isPromiseLike(result)) {
        const rendered = this.render(name, result);
        return outcome(rendered.ok ? "ok" : "error", rendered.text);
      }
      const settled = Promise.resolve(result).then(
        (value) => this.render(name, value),
        (err: unknown) =>
          // A handler that gave up because its signal fired was cancelled, not broken.
          call.aborted ? { ok: false, cancelled: true, text: cancelled(name, call.signal.reason) } : { ok: false, text: this.failure(name, err) },
      );
      const offloadMs = !options.nested && options.background !== false && !def.noBackground && this.taskManager ? cfg.backgroundThreshold * 1000 : 0;
      const waited = await this.await(settled, call, timeoutMs, offloadMs, name, userId ?? baseCtx.userId);
      if (waited.kind === "background") {
        return { ...outcome("background", waited.text), taskId: waited.taskId };
      }
      return outcome(waited.kind, waited.text);
    } finally {
      call.detach();
    }
  }

  /**
   * Waits for a running handler until it settles, times out (the call's signal
   * is aborted), or passes the background threshold with room in the task
   * manager (the task manager adopts it and the model gets a task id).
   */
  private await(
    settled: Promise<{ ok: boolean; text: string; cancelled?: boolean }>,
    call: CallSignal,
    timeoutMs: number,
    offloadMs: number,
    name: string,
    userId: string,
  ): Promise<{ kind: "ok" | "error" | "cancelled" | "timeout" | "background"; text: string; taskId?: string }> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (): boolean => {
        if (done) return false;
        done = true;
        clearTimeout(timer);
        clearTimeout(offload);
        return true;
      };
      const timer = setTimeout(() => {
        if (!finish()) return;
        const seconds = Math.round(timeoutMs) / 1000;
        call.abort(new Error(`timed out after ${seconds}s`));
        resolve({ kind: "timeout", text: `Tool '${name}' timed out after ${seconds}s.` });
      }, timeoutMs);
      const offload =
        offloadMs > 0 && offloadMs < timeoutMs
          ? setTimeout(() => {
              const tasks = this.taskManager;
              // Full: keep waiting in the foreground rather than drop the call.
              if (!tasks?.hasCapacity() || !finish()) return;
              const taskId = tasks.adopt(name, userId, settled, call);
              resolve({
                kind: "background",
                taskId,
                text: `Tool '${name}' is still running, so it continues in the background as task ${taskId}. Fetch its result later with get_task_result (task_id "${taskId}").`,
              });
            }, offloadMs)
          : undefined;
      void settled.then(({ ok, text, cancelled }) => {
        if (finish()) resolve({ kind: ok ? "ok" : cancelled ? "cancelled" : "error", text });
      });
    });
  }

  private async delegateToGateway(
    name: string,
    args: unknown,
    ctx: ToolContext | null,
    outcome: (kind: OutcomeKind, text: string, route: Route) => CallOutcome,
  ): Promise<CallOutcome> {
    const adapter = ctx?.adapter;
    if (!ctx || !adapter?.delegateToGateway) return outcome("unavailable", gatewayUnavailable(name), "gateway");
    try {
      const answer = await adapter.delegateToGateway("execute_tool", { toolName: name, toolArgs: args, toolCtx: ctx.identity() }, ctx);
      // A plain string is an answer that ran; a gateway over Redis also says how it ended.
      return typeof answer === "string" ? outcome("ok", answer, "gateway") : outcome(answer.kind, answer.text, "gateway");
    } catch (err) {
      // No gateway was there to send it to (ProxyPlatformAdapter): not a failure of the tool.
      if (isToolfleetError(err, "NO_LIVE_WORKER")) return outcome("unavailable", noLiveWorker(name, "gateway"), "gateway");
      return outcome("error", this.failure(name, err), "gateway");
    }
  }

  private render(name: string, value: unknown): { ok: boolean; text: string } {
    if (typeof value === "string") return { ok: true, text: value };
    if (value === undefined || value === null) return { ok: true, text: "" };
    try {
      return { ok: true, text: JSON.stringify(value) };
    } catch (err) {
      return { ok: false, text: this.failure(name, err) };
    }
  }

  private failure(name: string, err: unknown): string {
    this.logger.error({ tool: name, ...errorFields(err) }, "tool handler failed");
    const message = err instanceof Error ? err.message : String(err);
    return `Tool '${name}' failed: ${message}`;
  }

  /** Stops background tasks and releases what the registry holds. */
  async close(): Promise<void> {
    await this.taskManager?.close();
  }
}

function cancelled(name: string, reason: unknown): string {
  return `Tool '${name}' was cancelled: ${reason instanceof Error ? reason.message : String(reason)}`;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function";
}
