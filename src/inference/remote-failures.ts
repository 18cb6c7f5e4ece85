import type { ConfigSource } from "../config/live.js";
import { errorFields, type Logger } from "../core/log.js";
import type { CallOptions, ToolRegistry } from "../core/registry.js";
import { ToolfleetError, isToolfleetError } from "../core/errors.js";
import { kindOfWireCode, lostInRestart, noLiveWorker, unavailable, type CallOutcome, type OutcomeKind } from "../core/outcome.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import type { ToolReply } from "../tool-exec/codec.js";
import { publishedRequestOf } from "../tool-exec/client.js";
import { cancelUnstarted, type CancelVerdict } from "../tool-exec/idempotency.js";

export interface RemoteFailuresOptions {
  redis?: RedisClient | undefined;
  keys: Keys;
  config: ConfigSource;
  local: ToolRegistry;
  logger: Logger;
  /** Safe to run twice: annotated idempotent or read-only. */
  retrySafe(name: string): boolean;
  count(what: "fallbacks" | "fallbacksRefused"): void;
}

/**
 * What a remote call that got no reply means, and what may follow it
 * (docs/architecture.md, "Delivery"): whether it provably never started,
 * whether it may run here instead, and the outcome that says what happened.
 */
export class RemoteFailures {
  /** What `proveUnstarted()` found for a failed call, so a second look does not ask Redis again. */
  private readonly verdicts = new WeakMap<ToolfleetError, CancelVerdict | "unknown">();

  constructor(private readonly options: RemoteFailuresOptions) {}

  /**
   * Whether a send that failed provably never reached a worker: its worker's own stream was gone, or its
   * stream lost every live reader and the request was withdrawn unstarted (WORKER_GONE says so).
   */
  neverRan(err: unknown): boolean {
    return (isToolfleetError(err, "PUBLISH_FAILED") && isToolfleetError(err.cause, "NO_LIVE_WORKER")) || isToolfleetError(err, "WORKER_GONE");
  }

  /** A remote call that ended without a reply: a fallback when the rules allow one, else the outcome that says why. */
  async failed(
    name: string,
    args: unknown,
    options: CallOptions,
    timeoutMs: number,
    err: unknown,
    done: (kind: OutcomeKind, text: string) => CallOutcome,
  ): Promise<CallOutcome> {
    const fallback = await this.fallback(name, args, options, timeoutMs, err);
    if (fallback) return fallback;
    if (isToolfleetError(err, "PAYLOAD_TOO_LARGE")) return done("error", err.message);
    // Never reached a worker, and no other runs the tool now.
    if (this.neverRan(err)) return done("unavailable", noLiveWorker(name, "tools worker"));
    return done("unavailable", isToolfleetError(err, "REQUEST_LOST") ? lostInRestart(name) : unavailable(name));
  }

  /**
   * Whether the request of a call that ended with no reply provably never started: the Redis that took it
   * still runs, holds its entry, and no worker ever read it (`cancelUnstarted()`, which then marks it
   * cancelled so it never will). Anything unproven (a restart, the entry gone, a publish that never
   * answered) is not "cancelled".
   */
  private async proveUnstarted(name: string, err: ToolfleetError, timeoutMs: number): Promise<CancelVerdict | "unknown"> {
    // Asked once per failure: a second script run would find the marker the first one wrote ("claimed").
    const known = this.verdicts.get(err);
    if (known) return known;
    const published = publishedRequestOf(err, this.options.keys);
    if (!err.idemKey || !published || !this.options.redis) return "unknown";
    try {
      // The marker outlives the request's deadline (its timeout from when it was sent), so no worker
      // can claim the request after it expires and run it as well as the fallback.
      const verdict = await cancelUnstarted(this.options.redis, this.options.keys, published, err.idemKey, timeoutMs / 1000 + 60);
      this.verdicts.set(err, verdict);
      return verdict;
    } catch (cancelErr) {
      this.options.logger.warn({ tool: name, ...errorFields(cancelErr) }, "could not cancel the request, so it may still run: no local fallback");
      return "unknown";
    }
  }

  /**
   * After a remote failure, run locally only when that cannot run the tool
   * twice: the tool is idempotent or read-only, or the request provably never
   * started (`proveUnstarted()`). Null when no fallback may run.
   */
  async fallback(name: string, args: unknown, options: CallOptions, timeoutMs: number, err: unknown): Promise<CallOutcome | null> {
    // No live worker is not a failure of this call (LiveWorkers logs that state once, when it begins).
    if (isToolfleetError(err, "NO_LIVE_WORKER")) this.options.logger.debug({ tool: name, reason: err.message }, "remote tool call not sent");
    else this.options.logger.warn({ tool: name, ...errorFields(err) }, "remote tool call failed");
    if (!this.options.config.get().toolsLocalFallback || !this.options.local.toolNames().has(name)) return null;
    // Failures before anything was published (no remote path, arguments too large for the wire) never started.
    let neverStarted = !isNoReply(err);
    const safe = this.options.retrySafe(name);
    let verdict: CancelVerdict | "unknown" = "unknown";
    if (!safe && !neverStarted && isNoReply(err)) {
      verdict = await this.proveUnstarted(name, err, timeoutMs);
      neverStarted = verdict === "cancelled";
    }
    if (!safe && !neverStarted) {
      this.options.count("fallbacksRefused");
      this.options.logger.warn({ tool: name, why: verdict }, "no local fallback: the tools service may already have run this call");
      return null;
    }
    this.options.count("fallbacks");
    this.options.logger.info(
      { tool: name, reason: safe ? "idempotent or read-only" : isNoReply(err) ? "request cancelled before it started" : "request never sent" },
      "falling back to in-process execution",
    );
    return { ...(await this.options.local.execute(name, args, options)), route: "fallback" };
  }
}

/** The kind of a reply that is not `ok`: the worker refused or could not finish the request. */
export function failureKind(reply: ToolReply): OutcomeKind {
  return kindOfWireCode(reply.error?.code);
}

/** A request that was sent and got no reply: it may have run. */
function isNoReply(err: unknown): err is ToolfleetError {
  return isToolfleetError(err, "TIMEOUT", "STOPPED", "PUBLISH_FAILED", "REQUEST_LOST") && !isToolfleetError(err.cause, "NO_LIVE_WORKER");
}
