import type { Logger } from "../core/log.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { WrittenSessions, sessionRecord, sessionWriteArgs, type SessionIdentity } from "./session.js";
import { RpcClient } from "../redis/rpc-client.js";
import { LiveWorkers } from "../redis/live-workers.js";
import { xaddArgs } from "../redis/streams.js";
import { ID_PATTERN } from "../redis/keys.js";
import { DEFAULT_MAX_REQUEST_BYTES, decodeReply, encodeRequest, errorReply, type ToolReply, type ToolRequest, type WireContext } from "./codec.js";
import type { JsonValue, ToolContext } from "../core/context.js";
import { DEFAULT_MAX_REPLY_BYTES, type Decoded, type EntryFields } from "../redis/entry-codec.js";
import { ToolfleetError, wireError } from "../core/errors.js";
import { checkedTimeoutMs } from "../core/timeout.js";
import { signEntry, signatureProblem } from "./signing.js";

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
  /** The fleet secret (docs/security.md): requests are signed with it and only replies signed with it are taken. @defaultValue "" (none) */
  fleetSecret?: string;
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

/**
 * The caller side of the tools RPC: publishes a request (with its session
 * record, in one round trip) and waits for the reply on this caller's own
 * reply stream. Every pending call ends: with its reply, a timeout, or stop().
 */
export class ToolsClient {
  private readonly rpc: RpcClient<ToolReply>;
  private readonly sessions = new WrittenSessions();
  /** Whether a live worker reads a request stream, for callers that fail at once when none does (call() itself does not ask). */
  readonly liveWorkers: LiveWorkers;

  constructor(private readonly options: ToolsClientOptions) {
    this.liveWorkers = new LiveWorkers({ redis: options.redis, keys: options.keys, logger: options.logger });
    this.rpc = new RpcClient({
      redis: options.redis,
      redisUrl: options.redisUrl,
      keys: options.keys,
      logger: options.logger,
      replyStream: options.keys.toolsReplyStream(options.workerId),
      consumer: options.workerId,
      name: "tools client",
      decode: options.fleetSecret
        ? (fields) => this.decodeSigned(options.fleetSecret!, fields)
        : (fields) => decodeReply(fields, options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES),
      correlationOf: (reply) => reply.correlationId,
      malformed: (correlationId, error) => errorReply(correlationId, "", error),
      ...(options.replyStreamTtlSeconds ? { replyStreamTtlSeconds: options.replyStreamTtlSeconds } : {}),
      ...(options.blockMs ? { blockMs: options.blockMs } : {}),
    });
  }

  // A reply not signed with the fleet secret is dropped as malformed, with no correlation id, so it
  // settles nothing: the call still takes the real reply, or times out.
  private decodeSigned(secret: string, fields: EntryFields): Decoded<ToolReply> {
    const problem = signatureProblem(secret, "reply", fields);
    if (problem) return { ok: false, error: wireError("UNAUTHENTICATED", problem) };
    return decodeReply(fields, this.options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES);
  }

  get replyStream(): string {
    return this.rpc.replyStream;
  }

  get pendingCount(): number {
    return this.rpc.pendingCount;
  }

  get healthy(): boolean {
    return this.rpc.healthy;
  }

  async start(): Promise<void> {
    if (this.rpc.isStarted) return;
    await this.rpc.start();
    this.options.redis.on("ready", this.onReconnect);
  }

  // A reconnect may be to a Redis that restarted empty: write every session record again,
  // and give the workers a heartbeat's time to show up again before calls fail for want of one.
  private readonly onReconnect = (): void => {
    this.sessions.clear();
    this.liveWorkers.reconnected();
  };

  /** Ends the reader, fails every pending call, and deletes the reply stream. */
  async stop(): Promise<void> {
    if (!this.rpc.isStarted) return;
    this.options.redis.off("ready", this.onReconnect);
    await this.rpc.stop();
  }

  /** Publishes a call and resolves with its reply; rejects with a ToolfleetError (TIMEOUT, STOPPED, PUBLISH_FAILED) when none comes in time. */
  async call(call: ToolCall): Promise<ToolReply> {
    if (!this.rpc.isStarted) throw new ToolfleetError("NOT_STARTED", "ToolsClient.call() before start()");
    checkedTimeoutMs(call.timeoutMs, "ToolsClient.call()");
    const started = Date.now();
    const first = await this.send(call, false);
    if (first.sessionWritten || first.reply.status !== "error" || first.reply.error?.code !== "UNAUTHENTICATED") return first.reply;
    // This caller took the trace's record to be there and it was not (Redis lost it: an eviction, a restart
    // not yet noticed). The tool did not run: write the record and ask once more, within the same time.
    this.options.logger.warn({ traceId: first.traceId, tool: call.toolName }, "session record missing; writing it again and retrying the call");
    this.sessions.forget(first.traceId);
    const left = call.timeoutMs - (Date.now() - started);
    return left > 0 ? (await this.send({ ...call, timeoutMs: left }, true)).reply : first.reply;
  }

  private async send(call: ToolCall, writeSession: boolean): Promise<{ reply: ToolReply; traceId: string; sessionWritten: boolean }> {
    const correlationId = this.rpc.nextCorrelationId();
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
      replyTo: this.rpc.replyStream,
      schemaHash: call.schemaHash,
      deadlineMs: Math.ceil(Date.now() + call.timeoutMs),
      sessionTag: session.rec.tag,
      ctx: call.ctx,
    };
    const fields = encodeRequest(request, this.options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES);
    // Signed in place (the sig field added): bench/stages.ts marks the line above.
    if (this.options.fleetSecret) signEntry(this.options.fleetSecret, "request", fields);
    const xadd = xaddArgs(call.stream ?? this.options.keys.toolsStream, fields, this.options.maxLen ?? 100_000);
    // The session record and the request in one round trip, in that order on one connection:
    // the record exists before any worker can read the request (no MULTI needed for that).
    const publish = sessionWritten
      ? this.options.redis
          .multi()
          .addCommand(sessionWriteArgs(this.options.keys, traceId, session.rec, ttlSeconds))
          .addCommand(xadd)
          .execAsPipeline()
      : this.options.redis.sendCommand(xadd);
    const published = publish.then(() => {
      if (sessionWritten && !oneOff) this.sessions.wrote(traceId, call.identity, session.rec, ttlSeconds);
    });
    const reply = await this.rpc.request(correlationId, request.idemKey, call.timeoutMs, published);
    return { reply, traceId, sessionWritten };
  }
}
