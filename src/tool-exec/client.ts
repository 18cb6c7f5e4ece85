import { currentTraceparent } from "../core/tracing.js";
import { within } from "../core/within.js";
import type { Logger } from "../core/log.js";
import { isCluster, type RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { WrittenSessions, sessionRecord, sessionWriteArgs, type SessionIdentity } from "./session.js";
import { RpcClient, type RequestExtras } from "../redis/rpc-client.js";
import { LiveWorkers } from "../redis/live-workers.js";
import { xaddArgs } from "../redis/streams.js";
import { ID_PATTERN, shardOf } from "../redis/keys.js";
import { DEFAULT_MAX_REQUEST_BYTES, decodeReply, encodeRequest, errorReply, type ToolReply, type ToolRequest, type WireContext } from "./codec.js";
import type { JsonValue, ToolContext } from "../core/context.js";
import { DEFAULT_MAX_REPLY_BYTES, type Decoded, type EntryFields } from "../redis/entry-codec.js";
import { ToolfleetError, isToolfleetError, reasonText, rejected, wireError } from "../core/errors.js";
import { checkedTimeoutMs } from "../core/timeout.js";
import { errorFields } from "../core/log.js";
import { cancelUnstarted, type PublishedRequest } from "./idempotency.js";
import { signEntry, signatureProblem } from "./signing.js";
import type { ProgressUpdate, ToolLog } from "../core/progress.js";
import { decodeLog, decodeProgress, PROGRESS_FIELD } from "../redis/progress-entry.js";
import { cancelRunning } from "./cancel.js";

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
  /** A pool's shard streams (shard 0 first), in place of `stream`: the call goes to one by its idempotency key (`shardOf`). */
  shards?: readonly string[];
  /**
   * Publish only if the stream exists (a worker's own stream: it exists while the worker lives). When it does
   * not, the call fails at once with PUBLISH_FAILED caused by NO_LIVE_WORKER, and nothing was published.
   */
  onlyIfStreamExists?: boolean;
  /**
   * Send the call again, within its time, when a restarted Redis lost its request (only for tools that
   * may run twice: annotated idempotent or read-only). Otherwise such a call fails at once with REQUEST_LOST.
   */
  resendIfLost?: boolean;
  /** Aborting it cancels the call (docs/protocol.md §9.5): it ends at once with a CANCELLED error. */
  signal?: AbortSignal;
  /** Asks the worker for progress updates (v1.1) and hears them; each moves the deadline on, up to `maxTotalMs`. */
  onProgress?: (update: ProgressUpdate) => void;
  /** Hears the tool's log messages (v1.1 `tool_log` entries; asks for updates as onProgress does). */
  onLog?: (log: ToolLog) => void;
  /** @defaultValue timeoutMs */
  maxTotalMs?: number;
}

/** One connection's life (from one `ready` to the next) and the run_id of the Redis it talks to, once known. */
interface Connection {
  runId: string | undefined;
}

/** What the client keeps about a call in flight: where its request landed, once the XADD answered. */
interface CallMeta {
  stream: string;
  entryId?: string;
  /** The connection that carried the XADD and its answer. */
  connection?: Connection;
  /** Settles when the XADD has answered (entryId set) or failed. */
  published?: Promise<void>;
}

// Where the request of a call that ended without a reply landed, keyed by the error it ended with.
const publishedBy = new WeakMap<object, CallMeta>();

/**
 * Where the request of a call that failed with `err` (TIMEOUT, STOPPED, REQUEST_LOST) landed, for
 * `cancelUnstarted()`; undefined when that is not known for sure (the XADD never answered, or the run_id of
 * the Redis that answered it was not learned), and then nothing can prove the request never started.
 */
export function publishedRequestOf(err: unknown, keys: Keys): PublishedRequest | undefined {
  const meta = typeof err === "object" && err !== null ? publishedBy.get(err) : undefined;
  const runId = meta?.connection?.runId;
  if (!meta?.entryId || !runId) return undefined;
  return { stream: meta.stream, group: keys.group(meta.stream), entryId: meta.entryId, runId };
}

/** The run_id line of INFO server. */
function runIdOf(info: string): string | undefined {
  return /^run_id:([0-9a-f]+)\s*$/m.exec(info)?.[1];
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
  private readonly rpc: RpcClient<ToolReply, CallMeta>;
  // Replaced on every `ready`: a request is known to be in the Redis whose run_id its connection learned.
  private connection: Connection = { runId: undefined };
  /** The run_id last learned: a different one on a reconnect means Redis restarted (or failed over) and lost what it held. */
  private lastRunId: string | undefined;
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
      // A progress entry whose signature does not hold is dropped like any other unsigned entry.
      sideOf: (fields) =>
        fields[PROGRESS_FIELD] === undefined || (options.fleetSecret && signatureProblem(options.fleetSecret, "progress", fields))
          ? null
          : (decodeProgress(fields) ?? logEntry(fields)),
      malformed: (correlationId, error) => errorReply(correlationId, "", error),
      // Where the request of a call that ended without a reply landed, for publishedRequestOf().
      failed: (err, meta) => {
        if (meta) publishedBy.set(err, meta);
      },
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
    this.learnRunId(this.connection);
  }

  // A reconnect may be to a Redis that restarted empty: write every session record again,
  // and give the workers a heartbeat's time to show up again before calls fail for want of one.
  private readonly onReconnect = (): void => {
    this.sessions.clear();
    this.liveWorkers.reconnected();
    this.connection = { runId: undefined };
    this.learnRunId(this.connection);
  };

  /**
   * Asks which Redis `connection` talks to. node-redis emits `ready` before it writes anything queued,
   * so this INFO goes out on that connection; its answer counts only if no reconnect came in between
   * (else it may have gone out on the next one, and that one asks for itself).
   */
  private learnRunId(connection: Connection): void {
    // A cluster's INFO answers from any node, which says nothing of the master that took a request:
    // there, calls in flight at a failover wait for their replies until their deadlines (docs/protocol.md §1.3).
    if (isCluster(this.options.redis)) return;
    this.options.redis.sendCommand<Buffer | string>(["INFO", "server"]).then(
      (info) => {
        const runId = runIdOf(info.toString());
        if (connection !== this.connection || !runId) return;
        connection.runId = runId;
        const before = this.lastRunId;
        this.lastRunId = runId;
        if (before !== undefined && before !== runId) this.lostInRestart(runId);
      },
      (err: unknown) => this.options.logger.debug({ ...errorFields(err) }, "could not learn Redis's run_id"),
    );
  }

  /**
   * Redis restarted: the requests the old one took are gone, with every worker's claim, and no reply will
   * come for them. End those calls now rather than at their timeouts: REQUEST_LOST (call() sends it again
   * when the call says it may). A request whose connection never learned its run_id counts as lost: which
   * Redis took it cannot be told.
   */
  private lostInRestart(runId: string): void {
    const lost = this.rpc.failPending(
      (meta) => meta?.entryId !== undefined && meta.connection?.runId !== runId,
      (idemKey) =>
        new ToolfleetError("REQUEST_LOST", "Redis restarted after the request was published: the request is gone, and a worker may or may not have run it.", {
          idemKey,
        }),
    );
    if (lost > 0) this.options.logger.warn({ calls: lost, runId }, "Redis restarted (a new run_id): calls in flight lost their requests");
  }

  /**
   * For the pending calls whose request went to one of `streams` (streams that lost their last live reader):
   * asks `cancel` whether each provably never started (`cancelUnstarted()`, which then marks it cancelled so
   * it never will), and ends those now with WORKER_GONE, so the caller can send them elsewhere. A call a
   * worker has read is left to its reply or its deadline: the worker may only be paused, and still answer.
   * Returns how many were ended.
   */
  async cancelUnstartedOn(streams: ReadonlySet<string>, cancel: (published: PublishedRequest, idemKey: string) => Promise<string>): Promise<number> {
    const candidates = this.rpc.pendingWith((meta) => meta !== undefined && streams.has(meta.stream));
    let ended = 0;
    for (const { idemKey, meta } of candidates) {
      const runId = meta?.connection?.runId;
      if (!meta?.entryId || !runId) continue;
      const published = { stream: meta.stream, group: this.options.keys.group(meta.stream), entryId: meta.entryId, runId };
      let verdict: string;
      try {
        verdict = await cancel(published, idemKey);
      } catch (err) {
        this.options.logger.debug({ idemKey, ...errorFields(err) }, "could not tell whether a call whose workers left had started; it waits for its reply");
        continue;
      }
      if (verdict !== "cancelled") continue;
      ended += this.rpc.failPending(
        (m) => m === meta,
        (key) =>
          new ToolfleetError("WORKER_GONE", "no live worker reads the request's stream; the request never started, and now never will", { idemKey: key }),
      );
    }
    if (ended > 0)
      this.options.logger.info({ calls: ended, streams: [...streams] }, "calls no worker had started were withdrawn from streams their workers left");
    return ended;
  }

  /** Ends the reader, fails every pending call, and deletes the reply stream. */
  async stop(): Promise<void> {
    if (!this.rpc.isStarted) return;
    this.options.redis.off("ready", this.onReconnect);
    await this.rpc.stop();
  }

  /**
   * Publishes a call and resolves with its reply; rejects with a ToolfleetError (TIMEOUT, STOPPED,
   * PUBLISH_FAILED, REQUEST_LOST) when none comes in time.
   */
  call(call: ToolCall): Promise<ToolReply> {
    // Not async, nor are callOnce() and send(): one `.then` per step instead of a promise for each async
    // function and each await, which an installed OTel SDK's context manager pays a hook for on Node 20
    // (docs/observability.md, "What it costs"). Whatever they throw is returned as a rejection here.
    try {
      if (!this.rpc.isStarted) throw new ToolfleetError("NOT_STARTED", "ToolsClient.call() before start()");
      checkedTimeoutMs(call.timeoutMs, "ToolsClient.call()");
      return this.callOnce(call, call.resendIfLost ? Date.now() : undefined);
    } catch (err) {
      return rejected(err);
    }
  }

  /** After a call's request was lost (REQUEST_LOST): sends it again, within its time; any other error is rethrown. */
  private async resendLost(call: ToolCall, started: number, err: unknown): Promise<ToolReply> {
    // A bound on resends: each needs another restart to be lost, but a flapping Redis must not loop.
    for (let resends = 0; ; resends++) {
      const left = call.timeoutMs - (Date.now() - started);
      if (!isToolfleetError(err, "REQUEST_LOST") || left <= 0 || resends >= 3) throw err;
      this.options.logger.warn({ tool: call.toolName, leftMs: left }, "request lost in a Redis restart; sending it again (the tool may run twice)");
      call = { ...call, timeoutMs: left };
      try {
        return await this.callOnce(call);
      } catch (next) {
        err = next;
      }
    }
  }

  /**
   * One send of a call (and, when the session record was missing, one more). `resendFrom`: when the call
   * may be sent again after Redis lost its request, when it started. May throw (a request that cannot be encoded).
   */
  private callOnce(call: ToolCall, resendFrom?: number): Promise<ToolReply> {
    const started = Date.now();
    const first = this.send(call, false);
    // In the same .then as the reply: one promise fewer than a .catch after it.
    const lost = resendFrom === undefined ? undefined : (err: unknown): Promise<ToolReply> => this.resendLost(call, resendFrom, err);
    return first.reply.then((reply) => {
      if (first.sessionWritten || reply.status !== "error" || reply.error?.code !== "UNAUTHENTICATED") return reply;
      // This caller took the trace's record to be there and it was not (Redis lost it: an eviction, a restart
      // not yet noticed). The tool did not run: write the record and ask once more, within the same time.
      this.options.logger.warn({ traceId: first.traceId, tool: call.toolName }, "session record missing; writing it again and retrying the call");
      this.sessions.forget(first.traceId);
      const left = call.timeoutMs - (Date.now() - started);
      if (left <= 0) return reply;
      const again = this.send({ ...call, timeoutMs: left }, true).reply;
      return lost ? again.catch(lost) : again;
    }, lost);
  }

  /** Publishes the request; `reply` settles as the RpcClient ends the call. May throw (a request that cannot be encoded). */
  private send(call: ToolCall, writeSession: boolean): { reply: Promise<ToolReply>; traceId: string; sessionWritten: boolean } {
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
    // The caller's span, when it traces: the worker's span of this request is its child (docs/observability.md).
    const traceparent = currentTraceparent();
    if (traceparent) request.traceparent = traceparent;
    const maxTotalMs = call.maxTotalMs ?? call.timeoutMs;
    if (call.onProgress || call.onLog) {
      request.progress = true;
      request.maxDeadlineMs = Math.ceil(Date.now() + maxTotalMs);
    }
    const fields = encodeRequest(request, this.options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES);
    // Signed in place (the sig field added): bench/stages.ts marks the line above.
    if (this.options.fleetSecret) signEntry(this.options.fleetSecret, "request", fields);
    const stream =
      call.shards && call.shards.length > 1 ? call.shards[shardOf(request.idemKey, call.shards.length)]! : (call.stream ?? this.options.keys.toolsStream);
    const xadd = xaddArgs(stream, fields, this.options.maxLen ?? 100_000, call.onlyIfStreamExists === true);
    // The session record and the request in one round trip, in that order on one connection:
    // the record exists before any worker can read the request (no MULTI needed for that).
    const publish = sessionWritten
      ? this.options.redis
          .multi()
          .addCommand(sessionWriteArgs(this.options.keys, traceId, session.rec, ttlSeconds))
          .addCommand(xadd)
          .execAsPipeline()
      : this.options.redis.sendCommand(xadd);
    const meta: CallMeta = { stream };
    const published = publish.then((answer) => {
      // The answer came on the connection current now: a reconnect's `ready` comes after the old one's answers.
      const entryId = Array.isArray(answer) ? answer[answer.length - 1] : answer;
      if (entryId === null && call.onlyIfStreamExists) throw new ToolfleetError("NO_LIVE_WORKER", `${stream} does not exist: the worker that reads it is gone`);
      if (typeof entryId === "string" || Buffer.isBuffer(entryId)) {
        meta.entryId = entryId.toString();
        meta.connection = this.connection;
      }
      if (sessionWritten && !oneOff) this.sessions.wrote(traceId, call.identity, session.rec, ttlSeconds);
    });
    meta.published = published;
    try {
      // An error the call ends with is mapped to `meta` by the RpcClient's `failed` (see the constructor).
      const reply = this.rpc.request(
        correlationId,
        request.idemKey,
        call.timeoutMs,
        published,
        meta,
        call.signal || call.onProgress || call.onLog ? this.extrasOf(call, request.idemKey, maxTotalMs, meta) : undefined,
      );
      return { reply, traceId, sessionWritten };
    } catch (err) {
      if (typeof err === "object" && err !== null) publishedBy.set(err, meta);
      throw err;
    }
  }

  /**
   * Cancels a call: a request no worker has read yet is first withdrawn from its stream (`cancelUnstarted`,
   * so it never starts, whatever its tool's annotations, even on a worker that missed the notice), then the
   * marks and the notice go out for a worker that runs it (`cancelRunning`).
   */
  private async cancel(tool: string, idemKey: string, reason: string, ttlSeconds: number, meta: CallMeta): Promise<void> {
    const { redis, keys, logger } = this.options;
    try {
      // A cancel can come before the XADD has answered: wait for the entry id, so that a request no worker
      // has read is still withdrawn. A failed or late XADD is the call's to report; the marks still go out.
      if (!meta.entryId && meta.published)
        await within(meta.published, PUBLISH_ANSWER_WAIT_MS, "the request's XADD").catch((err: unknown) =>
          logger.debug({ tool, idemKey, ...errorFields(err) }, "cancelling without the request's entry id"),
        );
      const runId = meta.connection?.runId;
      if (meta.entryId && runId) {
        const published = { stream: meta.stream, group: keys.group(meta.stream), entryId: meta.entryId, runId };
        // Unproven (Redis slow to answer, say) is no reason to skip the marks: a worker may be running it.
        const verdict = await cancelUnstarted(redis, keys, published, idemKey, ttlSeconds).catch((err: unknown) => {
          logger.debug({ tool, idemKey, ...errorFields(err) }, "could not tell whether the call had started; sending the cancel anyway");
          return "unknown";
        });
        if (verdict === "cancelled") logger.debug({ tool, idemKey }, "cancelled before any worker read it");
      }
      await cancelRunning(redis, keys, idemKey, reason, ttlSeconds);
    } catch (err) {
      logger.warn({ tool, idemKey, ...errorFields(err) }, "could not send the cancel; the worker may run the call to its end");
    }
  }

  private extrasOf(call: ToolCall, idemKey: string, maxTotalMs: number, meta: CallMeta): RequestExtras {
    const extras: RequestExtras = { maxTotalMs };
    const { onProgress, onLog } = call;
    // A side entry is a progress update, or a log message (sideOf wraps those: { log }).
    if (onProgress || onLog)
      extras.onUpdate = (update) => {
        const log = (update as { log?: ToolLog }).log;
        if (log) onLog?.(log);
        else onProgress?.(update as ProgressUpdate);
      };
    if (call.signal) {
      extras.signal = call.signal;
      // The marks outlive the longest the request could still be waiting or running.
      extras.onCancel = (reason) => void this.cancel(call.toolName, idemKey, reasonText(reason), maxTotalMs / 1000 + 60, meta);
    }
    return extras;
  }
}

/** How long a cancel waits for its request's XADD to answer before it goes on without the entry id. */
const PUBLISH_ANSWER_WAIT_MS = 5000;

/** A log entry as a side entry: its message wrapped ({ log }), and no sign of progress (the deadline stays). */
function logEntry(fields: EntryFields): { correlationId: string; update: { log: ToolLog }; still: true } | null {
  const decoded = decodeLog(fields);
  return decoded ? { correlationId: decoded.correlationId, update: { log: decoded.log }, still: true } : null;
}
