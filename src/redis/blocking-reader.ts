import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import { errorFields, type Logger } from "../core/log.js";
import { within } from "../core/within.js";
import { duplicateConnection, type RedisClient } from "./client.js";
import { ensureGroup, isNoGroupError, readGroup, type StreamEntry } from "./streams.js";

export interface BlockingReaderOptions {
  /** The shared connection; the reader makes its own from it. */
  redis: RedisClient;
  redisUrl: string;
  logger: Logger;
  /** Names the connection in CLIENT LIST and log lines. */
  name: string;
  stream: string;
  group: string;
  consumer: string;
  /** Where a recreated group starts: `0` for a request stream, `$` for a reply stream. */
  groupStart: string;
  /** @defaultValue 1000 */
  blockMs?: number;
  /** @defaultValue 2000 */
  watchdogGraceMs?: number;
  /** Read without adding to the pending list (replies: the caller is their only reader). @defaultValue false */
  noAck?: boolean;
}

export interface ConsumeHandlers {
  /** How many entries to ask for; waits while there is no room. Resolves 0 to stop. */
  room(): Promise<number>;
  onEntries(entries: StreamEntry[]): void;
}

/**
 * One consumer's blocking read loop on its own connection. A read that does
 * not return within its block time plus a grace gets its connection replaced
 * (a half-open socket never errors by itself); a lost group is recreated;
 * any other failure is logged and retried with a capped backoff. Liveness is
 * `lastProgressAt`: the time the last read came back.
 */
export class BlockingReader {
  lastProgressAt = 0;
  private connection: RedisClient | undefined;
  private running = false;
  private done: Promise<void> = Promise.resolve();
  /** Aborted by stop(): a new connection still waiting for Redis is given up, not left retrying. */
  private stopping = new AbortController();
  private readonly blockMs: number;
  private readonly graceMs: number;

  constructor(private readonly options: BlockingReaderOptions) {
    this.blockMs = options.blockMs ?? 1000;
    this.graceMs = options.watchdogGraceMs ?? 2000;
  }

  /** Longest time a healthy loop goes without progress. */
  get stallMs(): number {
    return this.blockMs + this.graceMs;
  }

  /** The loop is live: a read came back within the longest time a healthy one takes. */
  get progressing(): boolean {
    return this.running && Date.now() - this.lastProgressAt < this.stallMs;
  }

  async open(): Promise<void> {
    this.connection ??= await this.connect();
  }

  /** A one-off read without blocking (e.g. this consumer's own pending entries, id `0`). */
  async readOnce(id: string, count: number): Promise<StreamEntry[]> {
    await this.open();
    return readGroup(this.connectionOrThrow(), { group: this.options.group, consumer: this.options.consumer, stream: this.options.stream, id, count });
  }

  start(handlers: ConsumeHandlers): void {
    if (this.running) return;
    this.running = true;
    this.lastProgressAt = Date.now();
    this.done = this.loop(handlers);
  }

  /** Ends the loop; a read already sent comes back within the block time, and what it brings is delivered. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    this.stopping = new AbortController();
    try {
      await within(this.done, this.stallMs + 1000, "the read loop");
    } catch (err) {
      // Stuck in a read or a handler: leave it; it drops what it opens once it sees it is stopped.
      this.options.logger.warn({ reader: this.options.name, ...errorFields(err) }, "read loop did not end in time; leaving it");
    }
    this.connection?.destroy();
    this.connection = undefined;
  }

  private async loop(handlers: ConsumeHandlers): Promise<void> {
    let backoff = 0;
    while (this.running) {
      const count = await handlers.room();
      if (!this.running || count <= 0) break;
      try {
        const entries = await this.watched(
          readGroup(this.connectionOrThrow(), {
            group: this.options.group,
            consumer: this.options.consumer,
            stream: this.options.stream,
            id: ">",
            count,
            blockMs: this.blockMs,
            ...(this.options.noAck ? { noAck: true } : {}),
          }),
        );
        this.lastProgressAt = Date.now();
        backoff = 0;
        if (entries.length > 0) {
          handlers.onEntries(entries);
          // Read again only after what these entries set off has been written: node-redis writes a
          // turn's commands in a setImmediate, and a read sent first would go ahead of a reply (on a
          // worker) or of the next request (on a caller), and Redis would serve it first. Two turns:
          // after one, building the read still ran before the reply's write (docs/benchmarks.md,
          // "Choices in the code, measured").
          await nextTurn();
          await nextTurn();
        }
      } catch (err) {
        if (!this.running) break;
        if (isNoGroupError(err)) {
          // Redis lost the group: restarted without persistence, or the stream was deleted.
          await this.recreateGroup();
          continue;
        }
        backoff = Math.min(Math.max(50, backoff * 2), 1000);
        this.options.logger.warn({ reader: this.options.name, stream: this.options.stream, retryInMs: backoff, ...errorFields(err) }, "stream read failed");
        await sleep(backoff);
        if (!this.connection) await this.reconnect();
      }
    }
  }

  /**
   * The read, or a StalledReadError when it has not returned by the stall
   * time: its connection is then destroyed, which fails the read at once.
   * (A timer, not a race against a second promise: two fewer promise
   * turns between a read's reply and its entries, on every call.)
   */
  private async watched<T>(read: Promise<T>): Promise<T> {
    let stalled = false;
    let settled = false;
    const timer = setTimeout(() => {
      // Timers run before I/O in a turn of the event loop. After a stall of this process's own (a
      // long synchronous task), the reply may be waiting in the socket: destroying the connection
      // now would drop it, and entries read with NOACK are gone. Give up only after the I/O phase.
      setImmediate(() => {
        if (settled) return;
        stalled = true;
        this.options.logger.warn({ reader: this.options.name, stream: this.options.stream }, "blocking read stalled; replacing its connection");
        this.connection?.destroy();
        this.connection = undefined;
      });
    }, this.stallMs);
    try {
      return await read;
    } catch (err) {
      throw stalled ? new StalledReadError(this.stallMs, err) : err;
    } finally {
      settled = true;
      clearTimeout(timer);
    }
  }

  private async reconnect(): Promise<void> {
    try {
      const connection = await this.connect();
      if (this.running) this.connection = connection;
      else connection.destroy(); // stopped while connecting
    } catch (err) {
      if (!this.running) return; // stop() gave up the wait
      this.options.logger.warn({ reader: this.options.name, ...errorFields(err) }, "could not open a new blocking connection; will retry");
    }
  }

  private connect(): Promise<RedisClient> {
    return duplicateConnection(this.options.redis, {
      url: this.options.redisUrl,
      logger: this.options.logger,
      name: this.options.name,
      signal: this.stopping.signal,
    });
  }

  private connectionOrThrow(): RedisClient {
    if (!this.connection) throw new Error("no blocking connection (reconnecting)");
    return this.connection;
  }

  private async recreateGroup(): Promise<void> {
    try {
      await ensureGroup(this.options.redis, this.options.stream, this.options.group, this.options.groupStart);
      this.options.logger.warn({ reader: this.options.name, stream: this.options.stream }, "consumer group was missing; recreated it");
    } catch (err) {
      this.options.logger.warn({ reader: this.options.name, stream: this.options.stream, ...errorFields(err) }, "could not recreate the consumer group");
      await sleep(100);
    }
  }
}

class StalledReadError extends Error {
  constructor(ms: number, cause: unknown) {
    super(`blocking read did not return within ${ms} ms`, { cause });
  }
}
