import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { errorFields, type Logger } from "../core/log.js";
import { repeatEvery } from "../core/repeat.js";
import { within } from "../core/within.js";
import { BlockingReader } from "./blocking-reader.js";
import type { RedisClient } from "./client.js";
import type { Keys } from "./keys.js";
import { DEPARTED_SWEEP_MS, DepartedConsumers } from "./live-workers.js";
import { autoClaim, consumerPending, joinGroup, deliveryCounts, ensureGroup, ownPending, touchPending, trimAcknowledged, type StreamEntry } from "./streams.js";
import { EntryCommitter } from "./entry-commit.js";
import { ToolfleetError, rejected } from "../core/errors.js";
import { AckBatch } from "./ack-batch.js";
import { SharedSlots } from "./shared-slots.js";
import type { DeliveredEntry, EntryHandler, Heartbeat, StreamWorkerOptions } from "./stream-worker-options.js";

export type { DeliveredEntry, Disposition, EntryHandler, Heartbeat, Outbound, StreamWorkerOptions } from "./stream-worker-options.js";

/** After stop's timeout aborts the handlers, how long they get to finish before the worker leaves anyway. */
const ABANDON_AFTER_ABORT_MS = 2000;

/**
 * The request side of a Redis Streams RPC: reads a stream in a consumer
 * group, runs entries concurrently through a handler, sends each reply and,
 * once Redis has taken it, its ack (batched with the next write), reclaims
 * entries abandoned by dead workers, and dead-letters poison. Used by the tool-exec server (tools workers, gateways) and the chat consumer.
 */
export class StreamWorker {
  private readonly options: Required<Omit<StreamWorkerOptions, "handler" | "redis" | "logger" | "keys" | "heartbeatExtra" | "slots" | "beats">>;
  private readonly redis: RedisClient;
  private readonly logger: Logger;
  private readonly handler: EntryHandler;
  private readonly keys: Keys;
  private readonly group: string;
  private readonly committer: EntryCommitter;
  private readonly reader: BlockingReader;
  private readonly acks: AckBatch;
  private running = false;
  private readonly inFlight = new Map<string, Promise<void>>();
  /** The concurrency limit: this worker's own, or one shared with the other shards' workers of its process. */
  private readonly slots: SharedSlots;
  /** Writes the heartbeat (a shard's worker other than shard 0's does not: shard 0's names the process). */
  private readonly beats: boolean;
  private readonly stopping = new AbortController();
  private stoppers: (() => void)[] = [];
  private stopLeases: (() => void) | undefined;
  private claimCursor = "0-0";
  private readonly startedAt = Date.now();
  private reclaimed = 0;
  /** Forgets the consumers of workers that left this stream's group without leaving. */
  private readonly departed: DepartedConsumers;
  private readonly heartbeatExtra: (() => Record<string, unknown>) | undefined;

  constructor(options: StreamWorkerOptions) {
    const leaseMs = options.leaseMs ?? 30_000;
    this.options = {
      redisUrl: options.redisUrl,
      service: options.service,
      stream: options.stream,
      consumer: options.consumer,
      concurrency: positive("concurrency", options.concurrency ?? 16),
      blockMs: positive("blockMs", options.blockMs ?? 1000),
      watchdogGraceMs: positive("watchdogGraceMs", options.watchdogGraceMs ?? 2000),
      leaseMs: positive("leaseMs", leaseMs),
      claimEveryMs: positive("claimEveryMs", options.claimEveryMs ?? Math.max(50, leaseMs / 2)),
      maxDeliveries: positive("maxDeliveries", options.maxDeliveries ?? 5),
      maxLen: positive("maxLen", options.maxLen ?? 10_000),
      heartbeatMs: positive("heartbeatMs", options.heartbeatMs ?? 2000),
    };
    this.redis = options.redis;
    this.logger = options.logger;
    this.handler = options.handler;
    this.heartbeatExtra = options.heartbeatExtra;
    this.slots = options.slots ?? new SharedSlots(this.options.concurrency);
    this.slots.join();
    this.beats = options.beats !== false;
    this.keys = options.keys;
    this.group = options.keys.group(options.stream);
    const acks = new AckBatch(options.redis, options.stream, this.group, (err, ids) =>
      this.logger.warn(
        { service: this.options.service, entries: ids.length, ...errorFields(err) },
        "could not ack replied entries; they are redelivered after the lease and answered again",
      ),
    );
    this.acks = acks;
    this.committer = new EntryCommitter(
      {
        redis: this.redis,
        logger: this.logger,
        service: this.options.service,
        stream: this.options.stream,
        group: this.group,
        maxLen: this.options.maxLen,
        consumer: this.options.consumer,
        deadLetterStream: this.keys.deadLetter(this.options.stream),
      },
      acks,
      this.stopping.signal,
    );
    this.departed = new DepartedConsumers({
      redis: this.redis,
      keys: this.keys,
      logger: this.logger,
      stream: this.options.stream,
      service: this.options.service,
    });
    this.reader = new BlockingReader({
      redis: options.redis,
      redisUrl: options.redisUrl,
      logger: options.logger,
      name: `${options.service}-${options.consumer}-reader`,
      stream: options.stream,
      group: this.group,
      consumer: options.consumer,
      groupStart: "0",
      blockMs: this.options.blockMs,
      watchdogGraceMs: this.options.watchdogGraceMs,
    });
  }

  get consumer(): string {
    return this.options.consumer;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Healthy while the read loop makes progress, whatever the socket says. */
  get healthy(): boolean {
    return this.running && this.reader.progressing;
  }

  async start(): Promise<void> {
    if (this.running) return;
    await ensureGroup(this.redis, this.options.stream, this.group);
    await this.reader.open();
    this.running = true;
    await this.drainOwnPending();
    this.reader.start({
      room: async () => {
        // Never 0 while running: the reader takes 0 as "stop". A reclaim may run more than
        // `concurrency` entries for a moment (a read already waiting brings what it was sized for).
        for (;;) {
          await this.waitForSlot();
          if (!this.running) return 0;
          if (this.slots.free > 0) return this.slots.share;
        }
      },
      onEntries: (entries) => {
        for (const entry of entries) this.dispatch(entry, 1);
      },
    });
    // Apart from the rest: stop() keeps lease extension going until in-flight work is done.
    this.stopLeases = repeatEvery(
      Math.max(50, this.options.leaseMs / 3),
      () => this.extendLeases(),
      (err) => this.logger.warn({ service: this.options.service, worker: this.options.consumer, ...errorFields(err) }, "lease extension failed"),
    );
    this.every(this.options.claimEveryMs, () => this.claimAbandoned());
    this.every(this.options.claimEveryMs, () => this.trimAcknowledged());
    this.every(DEPARTED_SWEEP_MS, () => this.departed.sweep());
    this.every(this.options.heartbeatMs, () => joinGroup(this.redis, this.options.stream, this.group, this.options.consumer));
    if (this.beats) {
      this.every(this.options.heartbeatMs, () => this.beat());
      await this.beat();
    }
  }

  /**
   * Stops reading, lets in-flight entries finish (up to `timeoutMs`, then
   * tells their handlers to stop), acks them, and closes the connections.
   * An entry not finished by then stays pending and is reclaimed elsewhere.
   */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    // Claiming and heartbeats end now; lease extension goes on until in-flight work is done,
    // or a long call still running here would be reclaimed and run twice.
    for (const stop of this.stoppers) stop();
    this.stoppers = [];
    this.slots.wake();
    // A read already sent returns within blockMs; what it brings is ours and is run.
    await this.reader.stop();
    const drained = await Promise.race([Promise.allSettled(this.inFlight.values()).then(() => true), sleep(timeoutMs, false, { ref: false })]);
    if (!drained) {
      this.logger.warn(
        { service: this.options.service, worker: this.options.consumer, inFlight: this.inFlight.size },
        "stop timed out; abandoning in-flight entries to other workers",
      );
      this.stopping.abort(new Error("worker stopping"));
      // A handler deaf to the abort is not waited for long: its entry stays pending and is reclaimed.
      await Promise.race([Promise.allSettled(this.inFlight.values()), sleep(ABANDON_AFTER_ABORT_MS, undefined, { ref: false })]);
    }
    this.stopLeases?.();
    try {
      // Bounded: with Redis away the acks wait for a reconnect that may not come.
      await within(this.acks.drain(), 2000, "sending the last acks");
    } catch (err) {
      this.logger.warn(
        { service: this.options.service, worker: this.options.consumer, ...errorFields(err) },
        "last acks not confirmed; their entries may be redelivered and answered again",
      );
    }
    await this.leaveGroup();
  }

  // ── reading ─────────────────────────────────────────────────────────────

  /**
   * Entries this consumer name holds from an earlier life: run them before anything new.
   * Read with `ownPending`, which does not count a delivery: a worker restarted under the
   * same id is not a new delivery, and counting it dead-lettered calls after a few restarts.
   */
  private async drainOwnPending(): Promise<void> {
    await joinGroup(this.redis, this.options.stream, this.group, this.options.consumer);
    let after = "0-0";
    for (;;) {
      const entries = await ownPending(this.redis, this.options.stream, this.group, this.options.consumer, after, 100);
      if (entries.length === 0) return;
      for (const entry of entries) {
        await this.waitForSlot();
        this.dispatch(entry, Math.max(1, entry.deliveries));
      }
      after = entries[entries.length - 1]?.id ?? after;
      this.logger.info({ service: this.options.service, worker: this.options.consumer, entries: entries.length }, "resumed own pending entries");
    }
  }

  private async claimAbandoned(): Promise<void> {
    if (this.slots.free <= 0 || !this.running) return;
    const free = this.slots.share;
    const { next, entries } = await autoClaim(this.redis, this.options.stream, this.group, this.options.consumer, this.options.leaseMs, this.claimCursor, free);
    this.claimCursor = next;
    const fresh = entries.filter((e) => !this.inFlight.has(e.id));
    if (fresh.length === 0) return;
    const counts = await deliveryCounts(
      this.redis,
      this.options.stream,
      this.group,
      this.options.consumer,
      fresh.map((e) => e.id),
    );
    // Stopped meanwhile: stop() no longer waits for new work. What was claimed stays pending, and
    // another worker reclaims it after the lease.
    if (!this.running) return;
    this.reclaimed += fresh.length;
    this.logger.info({ service: this.options.service, worker: this.options.consumer, entries: fresh.length }, "reclaimed abandoned entries");
    for (const entry of fresh) this.dispatch(entry, counts.get(entry.id) ?? 2);
  }

  private async extendLeases(): Promise<void> {
    const ids = [...this.inFlight.keys()];
    if (ids.length === 0) return;
    await touchPending(this.redis, this.options.stream, this.group, this.options.consumer, ids);
    await this.handler.extendLeases?.(ids);
  }

  // ── handling ────────────────────────────────────────────────────────────

  // dispatch(), process() and EntryCommitter.commit() take an entry's common path with one `.then` per step rather than
  // async functions and awaits: with an OTel SDK installed, Node 20 runs a hook for every promise
  // (docs/observability.md, "What it costs"). The rare paths stay async functions.
  private dispatch(entry: StreamEntry, deliveries: number): void {
    if (this.inFlight.has(entry.id)) return;
    const finish = (): void => {
      this.inFlight.delete(entry.id);
      this.slots.release();
    };
    let processing: Promise<void>;
    try {
      processing = this.process(entry, deliveries);
    } catch (err) {
      processing = rejected(err);
    }
    const work = processing.then(finish, (err: unknown) => {
      try {
        this.logger.error(
          { service: this.options.service, worker: this.options.consumer, entryId: entry.id, ...errorFields(err) },
          "entry left pending after an error; it will be retried",
        );
      } finally {
        finish();
      }
    });
    this.slots.take();
    this.inFlight.set(entry.id, work);
  }

  /** May throw rather than reject: dispatch() takes either. */
  private process(raw: StreamEntry, deliveries: number): Promise<void> {
    if (raw.fields === null || deliveries > this.options.maxDeliveries) return this.processUnusual(raw, deliveries);
    const entry: DeliveredEntry = { id: raw.id, fields: raw.fields, deliveries };
    // Promise.resolve: a handler written in plain JavaScript may answer with the disposition itself (no promise made for one that is).
    return Promise.resolve(this.handler.handle(entry, this.stopping.signal)).then((disposition) =>
      disposition.kind === "leave" ? undefined : this.committer.commit(entry.id, disposition, entry),
    );
  }

  /** An entry trimmed away while pending, or delivered more times than allowed. */
  private async processUnusual(raw: StreamEntry, deliveries: number): Promise<void> {
    if (raw.fields === null) {
      // Trimmed away while pending: nothing left to run, only the ack.
      await this.committer.commit(raw.id, { kind: "ack" });
      return;
    }
    const entry: DeliveredEntry = { id: raw.id, fields: raw.fields, deliveries };
    // Its work may have finished with only the ack lost: the stored reply is its answer, not an error.
    const stored = await this.handler.storedReply?.(entry);
    if (stored) {
      this.logger.info({ service: this.options.service, entryId: entry.id, deliveries }, "over the delivery limit, but its reply was stored; sent that");
      await this.committer.commit(entry.id, { kind: "ack", reply: stored }, entry);
      return;
    }
    const reason = `delivered ${deliveries} times (limit ${this.options.maxDeliveries})`;
    await this.committer.commit(entry.id, { kind: "dead", reason, reply: this.handler.deadLetterReply(entry, reason) }, entry);
  }

  // ── lifecycle helpers ───────────────────────────────────────────────────

  /** Resolves once a slot is free (fewer than `concurrency` entries in flight here, or over the shared limit), or the worker stops. */
  private waitForSlot(): Promise<void> {
    if (this.slots.free > 0 || !this.running) return Promise.resolve();
    // Checked again on waking: another waiter (the reader, a drain, another shard) may have taken the slot first.
    return this.slots.next().then(() => this.waitForSlot());
  }

  private every(ms: number, fn: () => Promise<void>): void {
    this.stoppers.push(
      repeatEvery(ms, fn, (err) =>
        this.logger.warn({ service: this.options.service, worker: this.options.consumer, task: fn.name, ...errorFields(err) }, "periodic stream task failed"),
      ),
    );
  }

  /** The stream this engine reads. */
  get stream(): string {
    return this.options.stream;
  }

  heartbeat(): Heartbeat {
    return {
      service: this.options.service,
      workerId: this.options.consumer,
      pid: process.pid,
      host: hostname(),
      startedAt: this.startedAt,
      lastProgressAt: this.reader.lastProgressAt,
      inFlight: this.inFlight.size,
      processed: this.committer.processed,
      deadLettered: this.committer.deadLettered,
      reclaimed: this.reclaimed,
      healthy: this.healthy,
    };
  }

  /**
   * Drops the entries every group has acked, so an idle stream shrinks (MAXLEN ~ on XADD only
   * caps it); on the claim tick, a few commands whatever the traffic.
   */
  private async trimAcknowledged(): Promise<void> {
    await trimAcknowledged(this.redis, this.options.stream);
  }

  private async beat(): Promise<void> {
    // The extra comes last: a worker of several shards puts its totals over theirs in place of this one's.
    const record = this.heartbeatExtra ? { ...this.heartbeat(), ...this.heartbeatExtra() } : this.heartbeat();
    await this.redis.set(this.keys.heartbeat(this.options.service, this.options.consumer), JSON.stringify(record), {
      expiration: { type: "PX", value: this.options.heartbeatMs * 3 },
    });
  }

  /** Deletes the heartbeat, and the consumer itself when it holds nothing, so departed workers leave no trace. */
  private async leaveGroup(): Promise<void> {
    try {
      // Bounded: a stop during an outage must end; the heartbeat expires and the consumer can be removed later.
      await within(
        (async () => {
          if (this.beats) await this.redis.del(this.keys.heartbeat(this.options.service, this.options.consumer));
          if ((await consumerPending(this.redis, this.options.stream, this.group, this.options.consumer)) === 0) {
            await this.redis.sendCommand(["XGROUP", "DELCONSUMER", this.options.stream, this.group, this.options.consumer]);
          }
        })(),
        2000,
        "leaving the consumer group",
      );
    } catch (err) {
      this.logger.warn(
        { service: this.options.service, worker: this.options.consumer, ...errorFields(err) },
        "could not clean up the worker's group membership",
      );
    }
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new ToolfleetError("CONFIG_INVALID", `StreamWorker option ${name}: expected a number > 0, got ${value}`);
  return value;
}
