import { errorFields, type Logger } from "../core/log.js";
import { repeatEvery } from "../core/repeat.js";
import { within } from "../core/within.js";
import { BlockingReader } from "./blocking-reader.js";
import type { RedisClient } from "./client.js";
import type { Keys } from "./keys.js";
import { ensureGroup, type StreamEntry } from "./streams.js";

/**
 * A reader's reply stream expires this long after its owner last refreshed
 * it: an owner that died leaves no one to delete it. Workers add replies only
 * to a stream that exists, and re-create a missing one with this TTL.
 */
export const REPLY_STREAM_TTL_SECONDS = 600;

/** Small read entries are deleted together after this long; entries with files at once. */
const DELETE_BATCH_MS = 50;
/** How long stop() waits to delete the stream before leaving it to its TTL. */
const STOP_CLEANUP_MS = 1000;

export interface ReplyInboxOptions {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  logger: Logger;
  /** The stream, owned by this reader alone. */
  stream: string;
  /** Consumer name, and the reader connection's name. */
  consumer: string;
  onEntries(entries: StreamEntry[]): void;
  /** @defaultValue REPLY_STREAM_TTL_SECONDS */
  ttlSeconds?: number;
  /** @defaultValue 1000 */
  blockMs?: number;
}

/**
 * One process's own reply stream (a caller's tool replies, a gateway's chat
 * answers): made on start with a TTL kept fresh, read without acks on a
 * blocking connection of its own, read entries deleted (in batches), and the
 * stream deleted on stop.
 */
export class ReplyInbox {
  private readonly reader: BlockingReader;
  private readonly ttl: number;
  private readonly toDelete: string[] = [];
  private deleteTimer: NodeJS.Timeout | undefined;
  private stopRefresh: (() => void) | undefined;
  private started = false;

  constructor(private readonly options: ReplyInboxOptions) {
    this.ttl = options.ttlSeconds ?? REPLY_STREAM_TTL_SECONDS;
    this.reader = new BlockingReader({
      redis: options.redis,
      redisUrl: options.redisUrl,
      logger: options.logger,
      name: `reply-${options.consumer}`,
      stream: options.stream,
      group: options.keys.group(options.stream),
      consumer: options.consumer,
      // Why `0`, not `$`: the group is lost when Redis restarts empty (or the
      // stream expires), and workers may write replies to the new stream before
      // this reader notices; `$` skipped those. Every entry here is unread (read
      // ones are deleted), and one nobody waits for is dropped by the owner.
      groupStart: "0",
      ...(options.blockMs ? { blockMs: options.blockMs } : {}),
      // Nobody else reads this stream and a reply matters only to a live owner: no pending list to grow.
      noAck: true,
    });
  }

  get healthy(): boolean {
    return this.started && this.reader.progressing;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await ensureGroup(this.options.redis, this.options.stream, this.options.keys.group(this.options.stream), "$");
    await this.touch();
    await this.reader.open();
    this.started = true;
    this.reader.start({
      room: () => Promise.resolve(this.started ? 64 : 0),
      onEntries: (entries) => {
        this.forget(entries);
        this.options.onEntries(entries);
      },
    });
    this.stopRefresh = repeatEvery(
      Math.max(1, this.ttl / 3) * 1000,
      () => this.touch(),
      (err) => this.options.logger.warn({ stream: this.options.stream, ...errorFields(err) }, "could not refresh the reply stream's TTL"),
    );
  }

  /** Ends the reader and deletes the stream (bounded: a Redis that is away leaves it to its TTL). */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.stopRefresh?.();
    clearTimeout(this.deleteTimer);
    this.deleteTimer = undefined; // or a restarted inbox would never schedule its deletes again
    this.toDelete.length = 0; // the stream itself is deleted below
    await this.reader.stop();
    try {
      await within(this.options.redis.del(this.options.stream), STOP_CLEANUP_MS, "deleting the reply stream");
    } catch (err) {
      this.options.logger.warn({ stream: this.options.stream, ...errorFields(err) }, "could not delete the reply stream; its TTL will");
    }
  }

  /**
   * Read with NOACK, an entry is only weight once read: delete it. Entries
   * that carried files go at once; small ones are gathered and deleted
   * together a moment later (a command per entry costs more than the entry).
   */
  private forget(entries: StreamEntry[]): void {
    for (const entry of entries) this.toDelete.push(entry.id);
    const heavy = entries.some((e) => e.fields !== null && Object.keys(e.fields).length > 1);
    if (heavy) this.flushDeletes();
    else this.deleteTimer ??= setTimeout(() => this.flushDeletes(), DELETE_BATCH_MS).unref();
  }

  private flushDeletes(): void {
    clearTimeout(this.deleteTimer);
    this.deleteTimer = undefined;
    if (this.toDelete.length === 0) return;
    const ids = this.toDelete.splice(0);
    this.options.redis
      .sendCommand(["XDEL", this.options.stream, ...ids])
      .catch((err: unknown) =>
        this.options.logger.warn({ stream: this.options.stream, ...errorFields(err) }, "could not delete read replies; MAXLEN trimming will"),
      );
  }

  private async touch(): Promise<void> {
    await this.options.redis.expire(this.options.stream, this.ttl);
  }
}
