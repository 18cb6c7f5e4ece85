import { performance } from "node:perf_hooks";
import type { ConfigSource } from "../config/live.js";
import { CallSignal, ToolContext, type PlatformAdapter } from "../core/context.js";
import { errorFields, type Logger } from "../core/log.js";
import { cancelled, permissionDenied } from "../core/outcome.js";
import type { CallOptions, ToolRegistry } from "../core/registry.js";
import type { CallOutcome } from "../core/outcome.js";
import type { RedisClient } from "../redis/client.js";
import { xaddArgs } from "../redis/streams.js";
import type { RunningCalls } from "../redis/control.js";
import { emptyWriteBack, type ToolReply, type ToolRequest } from "./codec.js";
import { encodeLog, encodeProgress, ProgressSender } from "../redis/progress-entry.js";
import type { ToolLog } from "../core/progress.js";
import type { SessionIdentity } from "./session.js";
import { signEntry } from "./signing.js";

/** What running one request needs of its worker. */
export interface RunDeps {
  registry: ToolRegistry;
  config: ConfigSource;
  logger: Logger;
  redis: RedisClient;
  workerId: string;
  adapter: PlatformAdapter | null;
  calls: RunningCalls;
  secret: string | null;
  /** Cap of the reply stream a progress entry is added to. */
  maxLen: number;
}

/**
 * Runs one request through the registry, as the worker's part of the call:
 * identity from the session record, the authoritative permission check, the
 * deadline the caller gave (moved on by progress up to its maximum), the
 * request's idempotency key on the context, cancellation by the caller, and
 * progress updates to the caller's reply stream when it asked for them.
 */
export function runRequest(deps: RunDeps, req: ToolRequest, identity: SessionIdentity, stopping: AbortSignal): Promise<ToolReply> {
  // Not async (it may throw: its caller runs it in inSpan, which takes either): one `.then` on the call's
  // path instead of an async function and an await, each a promise an installed OTel SDK pays a hook for
  // on Node 20 (docs/observability.md, "What it costs").
  const started = performance.now();
  // Identity from the session record overwrites whatever the envelope claimed.
  const ctx = new ToolContext({
    platform: identity.platform,
    channelId: identity.channelId,
    userId: identity.userId,
    userName: req.ctx.userName,
    guildId: identity.guildId,
    messageId: req.ctx.messageId,
    observabilityRequestId: req.ctx.observabilityRequestId || req.traceId,
    disclosedSkillIds: req.ctx.disclosedSkillIds,
    roomContext: req.ctx.roomContext,
    // A worker past its stop timeout aborts what still runs: the call answers that it was cancelled.
    signal: stopping,
    adapter: deps.adapter,
    idempotencyKey: req.idemKey,
  });
  // The authoritative permission check, with the session's identity: an empty user id is not a free pass.
  if (!deps.registry.isAllowed(req.toolName, identity.userId)) {
    return Promise.resolve({
      correlationId: req.correlationId,
      workerId: deps.workerId,
      status: "ok",
      result: permissionDenied(identity.userId, req.toolName),
      outcome: "denied",
      writeBack: emptyWriteBack(),
      durationMs: performance.now() - started,
    });
  }
  const cfg = deps.config.get();
  const now = Date.now();
  // The worker's cap: the config's time, or the tool's own when that is longer.
  const cap = Math.max(cfg.toolsExecTimeout * 1000, deps.registry.get(req.toolName)?.timeoutMs ?? 0);
  const timeoutMs = Math.max(1, Math.min(req.deadlineMs - now, cap));
  const call = new CallSignal(stopping);
  // A task id is only worth giving out when any worker can answer for it later: with a Redis task store.
  const options: CallOptions = { userId: identity.userId, ctx, timeoutMs, background: cfg.taskStore === "redis", call };
  // Progress moves the time limit on only as far as the caller will wait: not at all for one that did not ask (a v1 caller).
  options.maxTotalTimeoutMs = req.maxDeadlineMs === undefined ? timeoutMs : Math.max(timeoutMs, Math.min(req.maxDeadlineMs - now, cap * 10));
  const progress = req.progress ? progressSender(deps, req) : undefined;
  if (progress) options.onProgress = (update) => progress.report(update);
  if (req.progress) options.onLog = logSender(deps, req);
  // A cancel heard between the request's check and here: it never starts.
  const heard = deps.calls.cancelledBefore(req.idemKey);
  if (heard !== undefined) {
    return Promise.resolve({
      correlationId: req.correlationId,
      workerId: deps.workerId,
      status: "ok",
      result: cancelled(req.toolName, `cancelled by the caller: ${heard}`),
      outcome: "cancelled",
      writeBack: emptyWriteBack(),
      durationMs: performance.now() - started,
    });
  }
  deps.calls.begin(req.idemKey, call);
  const ended = (): void => {
    deps.calls.end(req.idemKey);
    progress?.close();
  };
  let running: Promise<CallOutcome>;
  try {
    running = deps.registry.execute(req.toolName, req.toolArgs, options);
  } catch (err) {
    ended();
    throw err;
  }
  // Promise.resolve: a registry may answer with the outcome itself (no promise made for one that is a promise).
  return Promise.resolve(running).then(
    (outcome) => {
      ended();
      // Literal objects, no spreads: V8 builds `{ ...a, b }` through a slow path (docs/benchmarks.md).
      const reply: ToolReply = {
        correlationId: req.correlationId,
        workerId: deps.workerId,
        status: "ok",
        result: outcome.text,
        outcome: outcome.kind,
        writeBack: { sentFiles: ctx.sentFiles, injectedTools: ctx.injectedTools, sentRichMessages: ctx.sentRichMessages },
        durationMs: performance.now() - started,
      };
      if (outcome.result) reply.structured = outcome.result;
      return reply;
    },
    (err: unknown) => {
      ended();
      throw err;
    },
  );
}

/** Progress entries for this request's caller, coalesced, added only to its reply stream while that exists. */
function progressSender(deps: RunDeps, req: ToolRequest): ProgressSender {
  return new ProgressSender((update) => {
    let fields = encodeProgress(req.correlationId, update);
    if (deps.secret) fields = signEntry(deps.secret, "progress", fields);
    deps.redis
      .sendCommand(xaddArgs(req.replyTo, fields, deps.maxLen, true))
      .catch((err: unknown) => deps.logger.debug({ tool: req.toolName, idemKey: req.idemKey, ...errorFields(err) }, "a progress update was not sent"));
  });
}

/** Log messages one call sends its caller, at most; past it they are dropped (a tool in a logging loop must not fill the stream). */
const MAX_LOGS_PER_CALL = 200;

/** Log entries for this request's caller, each at once (in order with its progress and reply), on its reply stream while that exists. */
function logSender(deps: RunDeps, req: ToolRequest): (log: ToolLog) => void {
  let sent = 0;
  return (log) => {
    if (++sent > MAX_LOGS_PER_CALL) {
      if (sent === MAX_LOGS_PER_CALL + 1) deps.logger.debug({ tool: req.toolName, idemKey: req.idemKey }, "further log messages of the call dropped");
      return;
    }
    let fields = encodeLog(req.correlationId, log);
    if (deps.secret) fields = signEntry(deps.secret, "progress", fields);
    deps.redis
      .sendCommand(xaddArgs(req.replyTo, fields, deps.maxLen, true))
      .catch((err: unknown) => deps.logger.debug({ tool: req.toolName, idemKey: req.idemKey, ...errorFields(err) }, "a log message was not sent"));
  };
}
