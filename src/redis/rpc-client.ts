import { randomBytes } from "node:crypto";
import { ToolfleetError, reasonText, type WireError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { Decoded, EntryFields } from "./entry-codec.js";
import type { RedisClient } from "./client.js";
import type { Keys } from "./keys.js";
import { ReplyInbox } from "./reply-inbox.js";
import type { StreamEntry } from "./streams.js";

export interface RpcClientOptions<Reply, Meta = never> {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  logger: Logger;
  /** This caller's own reply stream. */
  replyStream: string;
  /** Consumer name on it, and its reader connection's name. */
  consumer: string;
  /** Names the client in errors and logs ("tools client", "chat client"). */
  name: string;
  decode(fields: EntryFields): Decoded<Reply>;
  correlationOf(reply: Reply): string;
  /** The reply a caller gets for an undecodable reply that still names its call. @defaultValue none: the call waits for its deadline */
  malformed?(correlationId: string, error: WireError): Reply;
  /** Hears each call that ends with an error, with its `meta`, before its caller does. @defaultValue none */
  failed?(error: ToolfleetError, meta: Meta | undefined): void;
  /** A reply stream not refreshed this long (its caller died) is deleted by Redis. @defaultValue 600 */
  replyStreamTtlSeconds?: number;
  /** @defaultValue 1000 */
  blockMs?: number;
  /**
   * Reads an entry that is not a reply but news of a call in flight (a progress update): its call and
   * what it says, or null when the entry is a reply. Checked before `decode`. @defaultValue none
   */
  sideOf?(fields: EntryFields): { correlationId: string; update: unknown; /** Not a sign of progress: the deadline stays. */ still?: boolean } | null;
}

/** What a request may carry besides its deadline. */
export interface RequestExtras {
  /** Aborting it ends the call at once with a CANCELLED error, and `onCancel` is called. */
  signal?: AbortSignal;
  onCancel?: (reason: unknown) => void;
  /** Hears each side entry (`sideOf`) of the call; each one also moves the deadline to `timeoutMs` from now, never past `maxTotalMs` from the start. */
  onUpdate?: (update: unknown) => void;
  /** @defaultValue timeoutMs: no extension */
  maxTotalMs?: number;
}

interface Pending<Reply, Meta> {
  /** Ends the call with its reply or why it has none; only the first outcome counts. */
  settle(outcome: Reply | ToolfleetError): void;
  idemKey: string;
  /** When the call times out, on performance.now()'s clock. */
  deadline: number;
  timeoutMs: number;
  /** What the caller keeps about the call (e.g. where its request landed), for `failPending()`. */
  meta: Meta | undefined;
  /** The latest the deadline may move to, and who hears the call's side entries. */
  limit: number;
  onUpdate: ((update: unknown) => void) | undefined;
}

/**
 * Request/reply over Redis Streams, for every RPC of the fleet (tool calls,
 * gateway calls, chat messages): correlation ids, one deadline timer for all
 * pending calls, this caller's reply inbox, and `stop()`. Every pending call
 * ends: with its reply, a TIMEOUT, a PUBLISH_FAILED or a STOPPED error.
 * What a request holds and how it is published is the caller's business.
 */
export class RpcClient<Reply, Meta = never> {
  private readonly pending = new Map<string, Pending<Reply, Meta>>();
  private readonly inbox: ReplyInbox;
  private started = false;
  // Correlation ids: this client's random prefix and a count. Unique across callers and restarts
  // (96 random bits), shorter on the wire than a UUID, and no random bytes drawn per call.
  private readonly idPrefix = randomBytes(12).toString("base64url");
  private sent = 0;
  // One timer for every pending call's deadline, armed for the earliest: a timer per call cost
  // a Timeout object and two list operations on every call, and almost no call times out.
  private deadlineTimer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  constructor(private readonly options: RpcClientOptions<Reply, Meta>) {
    this.inbox = new ReplyInbox({
      redis: options.redis,
      redisUrl: options.redisUrl,
      keys: options.keys,
      logger: options.logger,
      stream: options.replyStream,
      consumer: options.consumer,
      onEntries: (entries) => this.deliver(entries),
      ...(options.replyStreamTtlSeconds ? { ttlSeconds: options.replyStreamTtlSeconds } : {}),
      ...(options.blockMs ? { blockMs: options.blockMs } : {}),
    });
  }

  get replyStream(): string {
    return this.options.replyStream;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get healthy(): boolean {
    return this.started && this.inbox.healthy;
  }

  get isStarted(): boolean {
    return this.started;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.inbox.start();
    this.started = true;
  }

  /** Ends the reader, fails every pending call with STOPPED, and deletes the reply stream. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const p of [...this.pending.values()]) {
      p.settle(new ToolfleetError("STOPPED", `The ${this.options.name} stopped before the reply arrived.`, { idemKey: p.idemKey }));
    }
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.armedFor = Infinity;
    await this.inbox.stop();
  }

  /** A correlation id no other call of any caller has. */
  nextCorrelationId(): string {
    return `${this.idPrefix}.${(this.sent++).toString(36)}`;
  }

  /**
   * Waits for the reply to `correlationId`, whose request `publish` is
   * sending. Rejects with a ToolfleetError (TIMEOUT, PUBLISH_FAILED, STOPPED,
   * each carrying `idemKey`) when no reply comes in time. The timeout also
   * covers a publish waiting in node-redis's offline queue while Redis is away.
   * `timeoutMs` is the caller's, already checked (`checkedTimeoutMs`).
   * `meta` is the caller's own record of the call, for `failPending()`.
   */
  request(correlationId: string, idemKey: string, timeoutMs: number, publish: Promise<unknown>, meta?: Meta, extras?: RequestExtras): Promise<Reply> {
    if (!this.started) throw new ToolfleetError("NOT_STARTED", `${this.options.name}: request() before start()`);
    return new Promise((resolve, reject) => {
      const signal = extras?.signal;
      const settle = (outcome: Reply | ToolfleetError): void => {
        if (!this.pending.delete(correlationId)) return;
        if (onAbort) signal?.removeEventListener("abort", onAbort);
        if (outcome instanceof ToolfleetError) {
          this.options.failed?.(outcome, meta);
          reject(outcome);
        } else resolve(outcome);
      };
      // Only a call given a signal pays for a listener.
      const onAbort = signal
        ? (): void => {
            if (!this.pending.has(correlationId)) return;
            settle(
              new ToolfleetError("CANCELLED", `Cancelled by the caller: ${reasonText(signal.reason)}`, {
                idemKey,
              }),
            );
            extras?.onCancel?.(signal.reason);
          }
        : undefined;
      const started = performance.now();
      const deadline = started + timeoutMs;
      const limit = extras?.maxTotalMs !== undefined ? started + Math.max(timeoutMs, extras.maxTotalMs) : deadline;
      this.pending.set(correlationId, { settle, idemKey, deadline, timeoutMs, meta, limit, onUpdate: extras?.onUpdate });
      if (deadline < this.armedFor) this.armDeadlines(deadline);
      publish.catch((err: unknown) =>
        settle(new ToolfleetError("PUBLISH_FAILED", `Could not publish the request: ${(err as Error).message}`, { idemKey, cause: err })),
      );
      if (signal && onAbort) {
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      }
    });
  }

  /**
   * Ends now, with the error `errorFor` makes, every pending call whose `meta`
   * `which` picks (e.g. calls whose requests a restarted Redis lost, which no
   * reply will ever answer); returns how many. Which calls, and why, is the caller's policy.
   */
  /** The pending calls whose meta `which` picks: their idempotency keys and metas. */
  pendingWith(which: (meta: Meta | undefined) => boolean): { idemKey: string; meta: Meta | undefined }[] {
    return [...this.pending.values()].filter((p) => which(p.meta)).map((p) => ({ idemKey: p.idemKey, meta: p.meta }));
  }

  failPending(which: (meta: Meta | undefined) => boolean, errorFor: (idemKey: string) => ToolfleetError): number {
    let failed = 0;
    for (const p of [...this.pending.values()]) {
      if (!which(p.meta)) continue;
      p.settle(errorFor(p.idemKey));
      failed++;
    }
    return failed;
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
      if (p.deadline <= now) p.settle(new ToolfleetError("TIMEOUT", `No reply within ${p.timeoutMs} ms.`, { idemKey: p.idemKey }));
      else next = Math.min(next, p.deadline);
    }
    if (next !== Infinity) this.armDeadlines(next);
  };

  /** A side entry: handed to its call, whose deadline moves on (the timer finds it later and re-arms). */
  private update(correlationId: string, update: unknown, still = false): void {
    const p = this.pending.get(correlationId);
    if (!p) return;
    if (!still) p.deadline = Math.min(performance.now() + p.timeoutMs, p.limit);
    try {
      p.onUpdate?.(update);
    } catch (err) {
      this.options.logger.warn(
        { correlationId, error: err instanceof Error ? err.message : String(err) },
        `a call's update listener threw (${this.options.name})`,
      );
    }
  }

  private deliver(entries: StreamEntry[]): void {
    for (const entry of entries) {
      if (!entry.fields) continue;
      const side = this.options.sideOf?.(entry.fields);
      if (side) {
        this.update(side.correlationId, side.update, side.still);
        continue;
      }
      const decoded = this.options.decode(entry.fields);
      if (!decoded.ok) {
        this.options.logger.warn(
          { stream: this.options.replyStream, entryId: entry.id, error: decoded.error },
          `malformed reply dropped (${this.options.name})`,
        );
        // When it says whose it is, that caller learns now instead of at its timeout.
        if (decoded.correlationId && this.options.malformed)
          this.pending.get(decoded.correlationId)?.settle(this.options.malformed(decoded.correlationId, decoded.error));
        continue;
      }
      const correlationId = this.options.correlationOf(decoded.value);
      const waiting = this.pending.get(correlationId);
      if (!waiting) {
        // Its caller gave up (timeout) or it is a duplicate: nobody to hand it to.
        this.options.logger.debug({ correlationId }, `late or duplicate reply dropped (${this.options.name})`);
        continue;
      }
      waiting.settle(decoded.value);
    }
  }
}
