import { randomBytes } from "node:crypto";
import type { Logger } from "../core/log.js";
import { checkedTimeoutMs } from "../core/registry.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { WrittenSessions, sessionRecord, sessionWriteArgs, type SessionIdentity } from "./session.js";
import { ReplyInbox } from "../redis/reply-inbox.js";
import { xaddArgs, type StreamEntry } from "../redis/streams.js";
import { ID_PATTERN } from "../redis/keys.js";
import { DEFAULT_MAX_REPLY_BYTES, DEFAULT_MAX_REQUEST_BYTES, decodeReply, encodeRequest, errorReply, type ToolReply, type ToolRequest, type WireContext } from "./codec.js";
import type { JsonValue, ToolContext } from "../core/context.js";

export interface ToolsClientOptions {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  /** This caller's stable id: names its reply stream. */
  workerId: string;
  logger: Logger;
  /** Approximate cap of the request stream. @defaultValue 100000 */
  maxLen?: number;
  /** A reply stream not refreshed this long (its caller died) is deleted by Redis. @defaultValue 600 */
  replyStreamTtlSeconds?: number;
  maxRequestBytes?: number;
  maxReplyBytes?: number;
  /** @defaultValue 1000 */
  blockMs?: number;
}

export interface ToolCall {
  toolName: string;
  toolArgs: JsonValue;
  userId: string;
  /** The caller's catalog hash of this tool, or "" when it has none. */
  schemaHash: string;
  ctx: WireContext;
  /** Ties the call to its request; when missing or empty, the correlation id. */
  traceId?: string | undefined;
  /** The authenticated identity, written to the session record. */
  identity: SessionIdentity;
  timeoutMs: number;
  /** The request stream. @defaultValue keys.toolsStream (a gateway call names the gateway stream) */
  stream?: string;
}

/** A context as it crosses the wire. */
export function wireContextOf(ctx: ToolContext): WireContext {
  return {
    platform: ctx.platform,
    channelId: ctx.channelId,
    userId: ctx.userId,
    userName: ctx.userName,
    guildId: ctx.guildId,
    messageId: ctx.messageId,
    observabilityRequestId: ctx.observabilityRequestId,
    disclosedSkillIds: [...ctx.disclosedSkillIds],
    roomContext: ctx.roomContext,
  };
}

// A worker reads the session record when it starts a request, which it does
// only before the deadline: the record need not outlive it by much.
const SESSION_MARGIN_SECONDS = 5;
/**
 * A trace's record is written to live this much longer than its call needs, so
 * the next calls of the trace (a chat turn's) find it and need not write it: a
 * trace's record is written at most once per this many seconds. It is also how
 * much longer records of shared traces stay in Redis.
 */
export const SESSION_REUSE_SECONDS = 10;

/** Why a call has no reply. */
export class ToolCallError extends Error {
  override readonly name = "ToolCallError";
  constructor(
    readonly code: "TIMEOUT" | "STOPPED" | "PUBLISH_FAILED",
    message: string,
    /** The request's idempotency key, so the caller can try to cancel it. */
    readonly idemKey: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface Pending {
  /** Ends the call with its reply or why it has none; only the first outcome counts. */
  settle(outcome: ToolReply | ToolCallError): void;
  idemKey: string;
  /** When the call times out, on performance.now()'s clock. */
  deadline: number;
  timeoutMs: number;
}

/**
 * The caller side of the tools RPC: publishes a request (with its session
 * record, in one round trip) and waits for the reply on this caller's own
 * reply stream. Every pending call ends: with its reply, a timeout, or stop().
 */
export class ToolsClient {
  readonly replyStream: string;
  private readonly pending = new Map<string, Pending>();
  private readonly inbox: ReplyInbox;
  private readonly sessions = new WrittenSessions();
  private started = false;
  // Correlation ids: this client's random prefix and a count. Unique across callers and restarts
  // (96 random bits), shorter on the wire than a UUID, and no random bytes drawn per call.
  private readonly idPrefix = randomBytes(12).toString("base64url");
  private sent = 0;
  // One timer for every pending call's deadline, armed for the earliest: a timer per call cost
  // a Timeout object and two list operations on every call, and almost no call times out.
  private deadlineTimer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  constructor(private readonly o: ToolsClientOptions) {
    this.replyStream = o.keys.toolsReplyStream(o.workerId);
    this.inbox = new ReplyInbox({
      redis: o.redis,
      redisUrl: o.redisUrl,
      keys: o.keys,
      logger: o.logger,
      stream: this.replyStream,
      consumer: o.workerId,
      onEntries: (entries) => this.deliver(entries),
      ...(o.replyStreamTtlSeconds ? { ttlSeconds: o.replyStreamTtlSeconds } : {}),
      ...(o.blockMs ? { blockMs: o.blockMs } : {}),
    });
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get healthy(): boolean {
    return this.started && this.inbox.healthy;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.inbox.start();
    this.o.redis.on("ready", this.forgetSessions);
    this.started = true;
  }

  // A reconnect may be to a Redis that restarted empty: write every session record again.
  private readonly forgetSessions = (): void => this.sessions.clear();

  /** Ends the reader, fails every pending call, and deletes the reply stream. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.o.redis.off("ready", this.forgetSessions);
    for (const p of [...this.pending.values()]) p.settle(new ToolCallError("STOPPED", "The tools client stopped before the reply arrived.", p.idemKey));
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.armedFor = Infinity;
    await this.inbox.stop();
  }

  /** Publishes a call and resolves with its reply; rejects with a ToolCallError when none comes in time. */
  async call(call: ToolCall): Promise<ToolReply> {
    if (!this.started) throw new Error("ToolsClient.call() before start()");
    checkedTimeoutMs(call.timeoutMs, "ToolsClient.call()");
    const started = Date.now();
    const first = await this.send(call, false);
    if (first.sessionWritten || first.reply.status !== "error" || first.reply.error?.code !== "UNAUTHENTICATED") return first.reply;
    // This caller took the trace's record to be there and it was not (Redis lost it: an eviction, a restart
    // not yet noticed). The tool did not run: write the record and ask once more, within the same time.
    this.o.logger.warn({ traceId: first.traceId, tool: call.toolName }, "session record missing; writing it again and retrying the call");
    this.sessions.forget(first.traceId);
    const left = call.timeoutMs - (Date.now() - started);
    return left > 0 ? (await this.send({ ...call, timeoutMs: left }, true)).reply : first.reply;
  }

  private send(call: ToolCall, writeSession: boolean): Promise<{ reply: ToolReply; traceId: string; sessionWritten: boolean }> {
    const correlationId = `${this.idPrefix}.${(this.sent++).toString(36)}`;
    // A trace id that cannot name a key (too long, odd characters) is replaced, not trusted to fail later.
    const traceId = call.traceId && ID_PATTERN.test(call.traceId) ? call.traceId : correlationId;
    // A trace of its own (no trace id given) is written for this call only; a shared one is written
    // once for the calls that follow, then again when a call would outlive it.
    const oneOff = traceId === correlationId;
    const neededSeconds = call.timeoutMs / 1000 + SESSION_MARGIN_SECONDS;
    const session = oneOff ? { rec: sessionRecord(call.identity), write: true } : this.sessions.plan(traceId, call.identity, neededSeconds * 1000);
    const sessionWritten = session.write || writeSession;
    const ttlSeconds = oneOff ? neededSeconds : neededSeconds + SESSION_REUSE_SECONDS;
    const request: ToolRequest = {
      type: "tool_exec",
      toolName: call.toolName,
      toolArgs: call.toolArgs,
      userId: call.userId,
      correlationId,
      traceId,
      idemKey: `${traceId}:${correlationId}`,
      replyTo: this.replyStream,
      schemaHash: call.schemaHash,
      deadlineMs: Math.ceil(Date.now() + call.timeoutMs),
      sessionTag: session.rec.tag,
      ctx: call.ctx,
    };
    const fields = encodeRequest(request, this.o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES);
    const xadd = xaddArgs(call.stream ?? this.o.keys.toolsStream, fields, this.o.maxLen ?? 100_000);
    // The session record and the request in one round trip, in that order on one connection:
    // the record exists before any worker can read the request (no MULTI needed for that).
    const publish = sessionWritten
      ? this.o.redis.multi().addCommand(sessionWriteArgs(this.o.keys, traceId, session.rec, ttlSeconds)).addCommand(xadd).execAsPipeline()
      : this.o.redis.sendCommand(xadd);
    // One promise per call, ended by whichever comes first: the reply, the timeout, a failed publish,
    // or stop(). The timeout also covers a publish waiting in node-redis's offline queue while Redis
    // is away, and stop() ends such a call too.
    return new Promise((resolve, reject) => {
      const settle = (outcome: ToolReply | ToolCallError): void => {
        if (!this.pending.delete(correlationId)) return;
        if (outcome instanceof ToolCallError) reject(outcome);
        else resolve({ reply: outcome, traceId, sessionWritten });
      };
      const deadline = performance.now() + call.timeoutMs;
      this.pending.set(correlationId, { settle, idemKey: request.idemKey, deadline, timeoutMs: call.timeoutMs });
      if (deadline < this.armedFor) this.armDeadlines(deadline);
      publish.then(
        () => {
          if (sessionWritten && !oneOff) this.sessions.wrote(traceId, call.identity, session.rec, ttlSeconds);
        },
        (err: unknown) => settle(new ToolCallError("PUBLISH_FAILED", `Could not publish the request: ${(err as Error).message}`, request.idemKey, { cause: err })),
      );
    });
  }

  /** Fires the deadline timer at `at` (performance.now() clock). */
  private armDeadlines(at: number): void {
    clearTimeout(this.deadlineTimer);
    this.armedFor = at;
    // Unref'd: a started client's connections keep the process alive, and stop() ends every call.
    this.deadlineTimer = setTimeout(this.expire, Math.max(0, at - performance.now())).unref();
  }

  /** Times out every call past its deadline and arms the timer for the earliest of the rest. */
  private readonly expire = (): void => {
    // The timer fired for `armedFor`: by Node's timer clock (whole milliseconds) that deadline has
    // come, though performance.now() may read a fraction of a millisecond before it. Counting it
    // due keeps a timeout on time, not one re-armed millisecond late.
    const now = Math.max(performance.now(), this.armedFor);
    this.deadlineTimer = undefined;
    this.armedFor = Infinity;
    let next = Infinity;
    for (const p of [...this.pending.values()]) {
      if (p.deadline <= now) p.settle(new ToolCallError("TIMEOUT", `No reply within ${p.timeoutMs} ms.`, p.idemKey));
      else next = Math.min(next, p.deadline);
    }
    if (next !== Infinity) this.armDeadlines(next);
  };

  private deliver(entries: StreamEntry[]): void {
    for (const entry of entries) {
      if (!entry.fields) continue;
      const decoded = decodeReply(entry.fields, this.o.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES);
      if (!decoded.ok) {
        this.o.logger.warn({ stream: this.replyStream, entryId: entry.id, error: decoded.error }, "malformed reply dropped");
        // When it says whose it is, that caller learns now instead of at its timeout.
        if (decoded.correlationId) this.pending.get(decoded.correlationId)?.settle(errorReply(decoded.correlationId, "", decoded.error));
        continue;
      }
      const waiting = this.pending.get(decoded.value.correlationId);
      if (!waiting) {
        // Its caller gave up (timeout) or it is a duplicate: nobody to hand it to.
        this.o.logger.debug({ correlationId: decoded.value.correlationId }, "late or duplicate reply dropped");
        continue;
      }
      waiting.settle(decoded.value);
    }
  }
}
