import { contextOf, endedAs, inSpan } from "../core/tracing.js";
import type { ConfigSource } from "../config/live.js";
import type { PlatformAdapter } from "../core/context.js";
import { errorFields, type Logger } from "../core/log.js";
import { type ToolRegistry } from "../core/registry.js";
import type { Catalog } from "./catalog.js";
import { ServedTools } from "./served-tools.js";
import { CatalogPresence } from "./catalog-presence.js";
import type { RedisClient } from "../redis/client.js";
import { randomBytes } from "node:crypto";
import { claimArgsFor, extendClaimArgs, readRequestState, storeReplyArgs } from "./idempotency.js";
import { DEFAULT_POOL, checkedPool, checkedShards, type Keys } from "../redis/keys.js";
import { SharedSlots } from "../redis/shared-slots.js";
import { SessionCache, parseSession, sessionReadArgs, type SessionLookup } from "./session.js";
import { StreamWorker, type DeliveredEntry, type Disposition, type StreamWorkerOptions } from "../redis/stream-worker.js";
import { DEFAULT_MAX_REQUEST_BYTES, decodeRequest, encodeReply, errorReply, type ToolReply, type ToolRequest } from "./codec.js";
import { DEFAULT_MAX_REPLY_BYTES, type EntryFields } from "../redis/entry-codec.js";
import { ToolfleetError, wireError, type WireError } from "../core/errors.js";
import { kindOfWireCode } from "../core/outcome.js";
import { ControlListener, RunningCalls } from "../redis/control.js";
import { runRequest, type RunDeps } from "./run-call.js";
import { NO_METRICS, RunStats, type CallMetrics } from "../core/metrics.js";
import { packageVersion } from "../core/version.js";
import { signEntry, signatureProblem } from "./signing.js";
import { RepeatDeliveries } from "./repeat-deliveries.js";

/**
 * How long a stopping worker still reads after saying it drains: callers learn it from the change notice within
 * milliseconds (a caller that missed the notice learns it at its next refresh, and its calls the worker then
 * left unread are withdrawn and sent elsewhere when the worker leaves).
 */
const DRAIN_GRACE_MS = 300;

export interface ToolExecServerOptions {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  registry: ToolRegistry;
  config: ConfigSource;
  logger: Logger;
  workerId: string;
  /** Stream-engine settings: concurrency, lease, block time … */
  worker?: Partial<
    Pick<StreamWorkerOptions, "concurrency" | "blockMs" | "watchdogGraceMs" | "leaseMs" | "claimEveryMs" | "maxDeliveries" | "maxLen" | "heartbeatMs">
  >;
  /** @defaultValue 1 MiB */
  maxRequestBytes?: number;
  /** @defaultValue 64 MiB */
  maxReplyBytes?: number;
  /** Seconds a finished request's reply is kept for duplicate deliveries. @defaultValue 120 */
  replyTtlSeconds?: number;
  /** The pool this worker serves: it reads the pool's stream, and publishes its part of the catalog under it. @defaultValue "default" */
  pool?: string;
  /** The request stream. @defaultValue keys.poolStream(pool) */
  stream?: string;
  /**
   * How many shard streams of its pool it reads (`keys.poolShardStream`, docs/protocol.md §1.3), published in its
   * catalog part; each shard has its own engine, all of them sharing `worker.concurrency`. Not with `stream`.
   * @defaultValue 1
   */
  shards?: number;
  /** Names this kind of worker in heartbeats and logs. @defaultValue "tools" */
  service?: string;
  /**
   * Publish this worker's part of the catalog and keep it alive while the worker runs, and read its own
   * stream too (calls only it can serve: its pool disagrees on a tool). The tools tier does; a gateway does not.
   * @defaultValue true
   */
  publishesCatalog?: boolean;
  /** The platform adapter every call's context gets (a gateway's live adapter). @defaultValue none */
  adapter?: PlatformAdapter;
  /** Where each request's run is reported (docs/observability.md). @defaultValue NO_METRICS */
  metrics?: CallMetrics;
}

/**
 * The tools tier: runs every tool not pinned elsewhere for requests taken
 * from `sg:stream:tools`, and publishes the catalog of what it runs.
 *
 * Per request: refuse it if expired, stale for this tool, or without a
 * session record; take identity only from that record and re-check the
 * permission with it; claim the idempotency key so it runs once; run it
 * through the registry; reply with the result and the write-back.
 */
export class ToolExecServer {
  /** Reads the pool's stream (shard 0). */
  readonly worker: StreamWorker;
  /** One engine per shard stream of the pool: `worker` first, then shards 1..K-1. */
  readonly shardWorkers: readonly StreamWorker[];
  /** Reads this worker's own stream (`keys.workerStream`): set when it publishes a catalog. */
  readonly ownWorker: StreamWorker | undefined;
  readonly pool: string;
  /** Its part of the merged catalog: set when it publishes one. */
  private readonly presence: CatalogPresence | undefined;
  private readonly options: ToolExecServerOptions;
  private readonly claimMs: number;
  private readonly served: ServedTools;
  private readonly metrics: CallMetrics;
  /** What it ran, for its heartbeat (the dashboard's rates, latencies and recent errors). */
  readonly runStats = new RunStats();
  /** Idempotency keys of requests running here, by stream and entry id (ids repeat across streams), so their claims are extended with the lease. */
  private readonly running = new Map<string, string>();
  private readonly sessions = new SessionCache();
  /** The fleet secret (docs/security.md): requests must carry its signature, replies get one. Null: no signing at all. */
  private readonly secret: string | null;
  /** This process among the lives of `workerId`: written into claims (see RunningClaim). */
  private readonly instance: string;
  /** Calls running here that their callers may cancel, and cancels heard for requests not started. */
  private readonly calls = new RunningCalls();
  private readonly control: ControlListener;
  private readonly runDeps: RunDeps;
  /** The claim command of this process (`claimArgsFor()`). */
  private readonly claimOf: (idemKey: string) => string[];
  /** What a request delivered again gets: its stored reply, a skip, or a run resumed. */
  private readonly repeats: RepeatDeliveries;

  constructor(options: ToolExecServerOptions) {
    this.options = options;
    this.secret = options.config.get().fleetSecret || null;
    // A claim lives a little less than the entry's lease: when a dead worker's entry becomes
    // reclaimable, its claim is already gone, so the reclaiming worker runs it at once.
    this.claimMs = (options.worker?.leaseMs ?? 30_000) * 0.9;
    this.instance = `${options.workerId}#${randomBytes(6).toString("hex")}`;
    this.claimOf = claimArgsFor(options.keys, options.workerId, this.instance, this.claimMs);
    this.repeats = new RepeatDeliveries(options, this.instance, this.claimMs, this.secret, this.claimOf);
    this.control = new ControlListener({
      redis: options.redis,
      url: options.redisUrl,
      keys: options.keys,
      logger: options.logger,
      name: options.workerId,
      onCancel: (idemKey, reason) => {
        if (this.calls.cancel(idemKey, reason)) options.logger.info({ worker: options.workerId, idemKey, reason }, "call cancelled by its caller");
      },
    });
    this.runDeps = {
      registry: options.registry,
      config: options.config,
      logger: options.logger,
      redis: options.redis,
      workerId: options.workerId,
      adapter: options.adapter ?? null,
      calls: this.calls,
      secret: this.secret,
      // The same cap as the replies beside them (StreamWorker's default).
      maxLen: options.worker?.maxLen ?? 10_000,
    };
    this.pool = checkedPool(options.pool ?? DEFAULT_POOL);
    this.served = new ServedTools(options.registry, options.publishesCatalog !== false);
    this.metrics = options.metrics ?? NO_METRICS;
    const shards = checkedShards(options.shards ?? 1, "shard count");
    if (shards > 1 && options.stream !== undefined)
      throw new ToolfleetError("CONFIG_INVALID", "ToolExecServer: shards > 1 reads the pool's shard streams; give no stream");
    // K shards share the one concurrency limit; shard 0's engine writes the heartbeat, with the totals of all.
    const slots = shards > 1 ? new SharedSlots(options.worker?.concurrency ?? 16) : undefined;
    const service = options.service ?? "tools";
    this.shardWorkers = Array.from({ length: shards }, (_, i) =>
      this.streamWorker(service, i === 0 ? (options.stream ?? options.keys.poolStream(this.pool)) : options.keys.poolShardStream(this.pool, i), {
        slots,
        beats: i === 0,
        shards,
      }),
    );
    this.worker = this.shardWorkers[0]!;
    // Its own stream has its own engine (and its own heartbeat service name, so `status` counts the pool's work
    // apart): the same handler, claims and leases.
    if (options.publishesCatalog !== false) {
      this.ownWorker = this.streamWorker(`${options.service ?? "tools"}-own`, options.keys.workerStream(options.workerId));
      this.presence = new CatalogPresence({
        redis: options.redis,
        keys: options.keys,
        logger: options.logger,
        publisher: { pool: this.pool, workerId: options.workerId, ...(shards > 1 ? { shards } : {}) },
      });
    }
  }

  private streamWorker(service: string, stream: string, sharding?: { slots: SharedSlots | undefined; beats: boolean; shards: number }): StreamWorker {
    const options = this.options;
    return new StreamWorker({
      ...options.worker,
      ...(sharding?.slots ? { slots: sharding.slots } : {}),
      beats: sharding?.beats ?? true,
      redis: options.redis,
      redisUrl: options.redisUrl,
      logger: options.logger,
      keys: options.keys,
      service,
      stream,
      consumer: options.workerId,
      heartbeatExtra: () => ({
        version: packageVersion(),
        pool: this.pool,
        runs: this.runStats.snapshot(),
        ...(sharding && sharding.shards > 1 ? this.shardTotals() : {}),
      }),
      handler: {
        handle: (entry, stopping) => this.handle(entry, stopping, stream),
        deadLetterReply: (entry, reason) => this.repeats.deadLetterReply(entry, reason),
        storedReply: (entry) => this.repeats.storedReply(entry),
        extendLeases: (ids) => this.extendClaims(stream, ids),
      },
    });
  }

  /** The heartbeat's counts over every shard's engine, with the shard count; healthy only while every shard's reader is. */
  private shardTotals(): Record<string, number | boolean> {
    const beats = this.shardWorkers.map((w) => w.heartbeat());
    const sum = (f: (h: (typeof beats)[number]) => number): number => beats.reduce((n, h) => n + f(h), 0);
    return {
      shards: beats.length,
      inFlight: sum((h) => h.inFlight),
      processed: sum((h) => h.processed),
      deadLettered: sum((h) => h.deadLettered),
      reclaimed: sum((h) => h.reclaimed),
      healthy: beats.every((h) => h.healthy),
    };
  }

  get workerId(): string {
    return this.options.workerId;
  }

  /** Publishes its part of the catalog (when it does) and keeps it alive, and takes requests. */
  async start(): Promise<void> {
    // Its own stream's reader, then its part, then the pool's reader: a caller that sees the part may send to
    // its own stream at once, and callers learn what it runs before it takes anything from the pool (taking a
    // call built against another schema first would make a caller that has not yet seen the part retry).
    if (this.ownWorker) await this.ownWorker.start();
    await this.presence?.publish(this.served.catalog);
    try {
      await this.control.start();
    } catch (err) {
      // Cancels still reach running calls through their marks, at the lease tick, only later.
      this.options.logger.warn(
        { worker: this.options.workerId, ...errorFields(err) },
        "could not subscribe to the control channel; cancels are seen at the lease tick",
      );
    }
    // Shard 0 last: it writes the heartbeat that callers count every shard's readers by.
    for (const w of this.shardWorkers.slice(1)) await w.start();
    await this.worker.start();
    this.options.logger.info(
      {
        service: this.options.service ?? "tools",
        worker: this.options.workerId,
        pool: this.pool,
        ...(this.shardWorkers.length > 1 ? { shards: this.shardWorkers.length } : {}),
        tools: this.served.catalog.tools.length,
        schemaHash: this.served.catalog.schemaHash,
      },
      "service started",
    );
  }

  /**
   * Stops gracefully: first says it is draining (callers send it nothing new, and still wait for what it
   * holds), then finishes the calls in flight, then leaves the catalog.
   */
  async stop(timeoutMs?: number): Promise<void> {
    if (this.presence) {
      await this.presence.drain();
      // Callers see the drain within a refresh; what they sent meanwhile (to its own stream, or to a pool where
      // it is the only worker) is still read and served, not left unread until the withdraw.
      await new Promise((resolve) => setTimeout(resolve, DRAIN_GRACE_MS));
    }
    await Promise.all([...this.shardWorkers.map((w) => w.stop(timeoutMs)), this.ownWorker?.stop(timeoutMs)]);
    await this.control.stop();
    await this.presence?.withdraw();
    await this.options.registry.close();
  }

  /** Rebuilds and republishes this worker's part of the catalog; call it after changing the registry's tools or permissions. */
  async publishCatalog(): Promise<Catalog> {
    const catalog = this.served.rebuild();
    await this.presence?.publish(catalog);
    return catalog;
  }

  private async handle(entry: DeliveredEntry, stopping: AbortSignal, stream: string): Promise<Disposition> {
    if (this.secret) {
      // Checked before anything is read from the body: an unsigned request is not even answered,
      // since its reply_to and correlation id are as forged as the rest.
      const problem = signatureProblem(this.secret, "request", entry.fields);
      if (problem) return { kind: "dead", reason: `UNAUTHENTICATED: ${problem}`, reply: null };
    }
    const decoded = decodeRequest(entry.fields, this.options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES);
    if (!decoded.ok) {
      const replyTo = decoded.replyTo && this.repeats.isOurReplyStream(decoded.replyTo) ? decoded.replyTo : undefined;
      const reply =
        replyTo && decoded.correlationId ? this.repeats.outbound(replyTo, errorReply(decoded.correlationId, this.options.workerId, decoded.error)) : null;
      return { kind: "dead", reason: `${decoded.error.code}: ${decoded.error.message}`, reply };
    }
    const req = decoded.value;
    // A reply stream outside our namespace would let a request write anywhere.
    if (!this.repeats.isOurReplyStream(req.replyTo)) {
      return { kind: "dead", reason: `INVALID_REQUEST: reply stream '${req.replyTo}' is not a reply stream of this namespace`, reply: null };
    }
    const refuse = (error: WireError): Disposition => ({
      kind: "ack",
      reply: this.repeats.outbound(req.replyTo, errorReply(req.correlationId, this.options.workerId, error)),
    });

    if (Date.now() > req.deadlineMs) {
      // A late duplicate of a request that did run still gets its real reply.
      const state = await readRequestState(this.options.redis, this.options.keys, req.idemKey);
      if (state?.state === "done") return this.repeats.resend(req, state);
      return refuse(wireError("EXPIRED", `The request for tool '${req.toolName}' expired before a worker could start it; the caller has given up.`));
    }
    if (this.calls.cancelledBefore(req.idemKey) !== undefined) {
      // Its caller has gone: no reply, and it never starts.
      this.options.logger.info({ worker: this.options.workerId, tool: req.toolName, idemKey: req.idemKey }, "request cancelled by its caller; skipped");
      return { kind: "ack" };
    }
    const stale = this.served.staleness(req.toolName, req.schemaHash, this.options.workerId);
    if (stale) return refuse(stale);
    // A tool that is safe to run twice (annotated idempotent or read-only) needs no claim and no stored
    // reply: a redelivery just runs it again. Every other tool is claimed first. The session record is
    // read unless this worker has it already (an earlier call of the same trace); the read and the
    // claim share one round trip (a pipeline: neither needs the other's atomicity).
    const repeatSafe = this.served.isRepeatSafe(req.toolName);
    const sessionKey = this.options.keys.toolSession(req.traceId, req.sessionTag);
    const known = this.sessions.get(sessionKey);
    // A trace of one call (its id is the correlation id) is not read again: its record is not kept.
    const toKeep = req.traceId !== req.correlationId;
    const commands = known ? [] : sessionReadArgs(sessionKey, toKeep);
    if (!repeatSafe) commands.push(this.claimOf(req.idemKey));
    // Sent one by one in this turn, so they leave in one write: a pipeline object (multi) costs more than it saves.
    // One command (the claim, or the read) needs no Promise.all, which costs two promises more.
    const send = (args: (typeof commands)[number]): Promise<unknown> => this.options.redis.sendCommand<unknown>(args);
    const results: unknown[] = commands.length === 0 ? [] : commands.length === 1 ? [await send(commands[0]!)] : await Promise.all(commands.map(send));
    if (!repeatSafe) {
      if (results[results.length - 1] !== "OK") {
        const other = await this.repeats.alreadyClaimed(req);
        if (other !== "resumed") return other;
      }
      this.running.set(runningKey(stream, entry.id), req.idemKey);
    }
    const session: SessionLookup = known ? { ok: true, identity: known } : this.sessionRead(req, sessionKey, toKeep, results);
    try {
      let reply: ToolReply;
      let fields: EntryFields;
      try {
        // A refusal is this request's outcome too: stored like a result, so a duplicate gets the same.
        const runStarted = performance.now();
        const queueMs = Date.now() - publishedAt(entry.id);
        const identity = session.ok ? session.identity : null;
        // A child of the caller's span when the request carries its trace context (no-op without an OTel SDK).
        reply = await inSpan(
          `tool run ${req.toolName}`,
          "server",
          {
            "toolfleet.tool": req.toolName,
            "toolfleet.worker": this.options.workerId,
            "toolfleet.deliveries": entry.deliveries,
            "toolfleet.queue_wait_ms": queueMs,
          },
          (span) => {
            const ended = (done: ToolReply): ToolReply => {
              endedAs(span, done.status === "ok" ? (done.outcome ?? "ok") : kindOfWireCode(done.error?.code));
              return done;
            };
            // A .then, not an async callback: promises on this path cost a hook each with an OTel SDK (docs/observability.md).
            return identity
              ? runRequest(this.runDeps, req, identity, stopping).then(ended)
              : Promise.resolve(
                  ended(
                    errorReply(req.correlationId, this.options.workerId, wireError("UNAUTHENTICATED", `Request refused: ${session.ok ? "" : session.reason}.`)),
                  ),
                );
          },
          contextOf(req.traceparent),
        );
        const kind = reply.status === "ok" ? (reply.outcome ?? "ok") : kindOfWireCode(reply.error?.code);
        const runMs = performance.now() - runStarted;
        this.metrics.runEnded(req.toolName, kind, runMs, queueMs, entry.deliveries);
        this.runStats.record(req.toolName, kind, runMs, reply.status === "ok" ? reply.result : reply.error?.message);
        fields = encodeReply(reply, this.options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES);
      } catch (err) {
        // The claim is ours and the tool may have run (a write-back that cannot be encoded, say). An error
        // stored as the outcome ends it here: left to throw, the claim would lapse and a redelivery run it again.
        this.options.logger.error(
          { worker: this.options.workerId, tool: req.toolName, idemKey: req.idemKey, ...errorFields(err) },
          "call failed after it started; answering with an error, not running it again",
        );
        reply = errorReply(
          req.correlationId,
          this.options.workerId,
          wireError(
            "INTERNAL",
            `Tool '${req.toolName}' failed on the tools service after it started, and is not run again: ${err instanceof Error ? err.message : String(err)}`,
          ),
        );
        fields = encodeReply(reply, this.options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES);
      }
      if (this.secret) fields = signEntry(this.secret, "reply", fields);
      const done: Disposition = { kind: "ack", reply: { stream: req.replyTo, fields } };
      if (!repeatSafe)
        done.commands = [
          storeReplyArgs(this.options.keys, req.idemKey, this.repeats.keptForDuplicates(reply, fields), this.options.replyTtlSeconds ?? 120, sessionKey),
        ];
      return done;
    } finally {
      this.running.delete(runningKey(stream, entry.id));
    }
  }

  /** The session record from the replies of `sessionReadArgs` (GET, then PTTL when it is to be kept). */
  private sessionRead(req: ToolRequest, key: string, toKeep: boolean, replies: unknown[]): SessionLookup {
    const session = parseSession(typeof replies[0] === "string" ? replies[0] : null, req.traceId, req.sessionTag);
    if (session.ok && toKeep) this.sessions.keep(key, session.identity, replies[1]);
    return session;
  }

  /** The lease tick: keeps this worker's claims alive, and catches cancels whose control message was lost (their marks). */
  private async extendClaims(stream: string, ids: readonly string[]): Promise<void> {
    const tx = this.options.redis.multi();
    let any = false;
    for (const id of ids) {
      const idemKey = this.running.get(runningKey(stream, id));
      if (!idemKey) continue;
      tx.addCommand(extendClaimArgs(this.options.keys, idemKey, this.claimMs));
      any = true;
    }
    const marks = this.calls.markCheck(this.options.keys);
    if (marks) tx.addCommand(marks.args);
    if (!any && !marks) return;
    const results = await tx.execAsPipeline();
    marks?.apply(results[results.length - 1], (idemKey, reason) =>
      this.options.logger.info({ worker: this.options.workerId, idemKey, reason }, "call cancelled by its caller (found at the lease tick)"),
    );
  }
}

/** A running entry's key in `running`: its stream and id (two shards may hand out the same id). */
function runningKey(stream: string, entryId: string): string {
  return `${stream}\n${entryId}`;
}

/** When an entry was added to its stream: the milliseconds part of its id (`<ms>-<seq>`). */
function publishedAt(entryId: string): number {
  return Number(entryId.slice(0, entryId.indexOf("-")));
}
