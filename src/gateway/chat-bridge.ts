import { randomUUID } from "node:crypto";
import type { ConfigSource } from "../config/live.js";
import { errorFields, type Logger } from "../core/log.js";
import { repeatEvery } from "../core/repeat.js";
import { within } from "../core/within.js";
import { BlockingReader } from "../redis/blocking-reader.js";
import { decodeAnswer, encodeInbound, type ChatAnswer } from "../redis/chat-wire.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { ensureGroup, xaddArgs, type StreamEntry } from "../redis/streams.js";
import type { EntryFields } from "../redis/wire.js";
import { REPLY_STREAM_TTL_SECONDS } from "../tools/service.js";
import { ChatHistory } from "./chat-history.js";
import type { ChatPlatform, IncomingMessage } from "./platform.js";

export interface ChatBridgeOptions {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  config: ConfigSource;
  logger: Logger;
  /** This gateway's stable id: names its answer stream. */
  gatewayId: string;
  platform: ChatPlatform;
  /** The gateway stream shard this gateway serves, so a chat's gateway-pinned calls come back to it. @defaultValue the shared stream */
  shard?: string;
  /** Approximate cap of the chat stream. @defaultValue 10000 */
  maxLen?: number;
}

interface Waiting {
  channelId: string;
  platformMessageId: string;
  text: string;
  timer: NodeJS.Timeout;
}

const STOP_CLEANUP_MS = 2000;

/**
 * The gateway's chat path: each message the platform receives goes to the
 * inference tier's stream with the identity the platform authenticated;
 * answers come back on this gateway's own stream and go out through the
 * platform. A message with no answer by `chatTimeout` gets a clear apology,
 * never silence.
 */
export class ChatBridge {
  private readonly replyStream: string;
  private readonly reader: BlockingReader;
  private readonly waiting = new Map<string, Waiting>();
  private readonly history = new ChatHistory();
  private stopRefresh: (() => void) | undefined;
  private started = false;
  /** Chats forwarded and answered, for ready lines and tests. */
  readonly stats = { forwarded: 0, answered: 0, timedOut: 0, failed: 0 };

  constructor(private readonly o: ChatBridgeOptions) {
    this.replyStream = o.keys.chatReplyStream(o.gatewayId);
    this.reader = new BlockingReader({
      redis: o.redis,
      redisUrl: o.redisUrl,
      logger: o.logger,
      name: `chat-${o.gatewayId}`,
      stream: this.replyStream,
      group: o.keys.group(this.replyStream),
      consumer: o.gatewayId,
      // As for tool replies: `0`, so answers written before a recreated group are still read.
      groupStart: "0",
      noAck: true,
    });
  }

  async start(): Promise<void> {
    if (this.started) return;
    await ensureGroup(this.o.redis, this.replyStream, this.o.keys.group(this.replyStream), "$");
    await this.o.redis.expire(this.replyStream, REPLY_STREAM_TTL_SECONDS);
    await this.reader.open();
    this.started = true;
    this.reader.start({ room: () => Promise.resolve(this.started ? 32 : 0), onEntries: (entries) => this.deliver(entries) });
    this.stopRefresh = repeatEvery((REPLY_STREAM_TTL_SECONDS / 3) * 1000, () => this.o.redis.expire(this.replyStream, REPLY_STREAM_TTL_SECONDS).then(() => undefined), (err) =>
      this.o.logger.warn({ stream: this.replyStream, ...errorFields(err) }, "could not refresh the answer stream's TTL"),
    );
    await this.o.platform.start((message) => this.forward(message));
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.stopRefresh?.();
    await this.o.platform.stop();
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    this.waiting.clear();
    await this.reader.stop();
    try {
      await within(this.o.redis.del(this.replyStream), STOP_CLEANUP_MS, "deleting the chat answer stream");
    } catch (err) {
      this.o.logger.warn({ stream: this.replyStream, ...errorFields(err) }, "could not delete the chat answer stream; its TTL will");
    }
  }

  /** Sends one message to the inference tier; failures are told to the user, not thrown. */
  forward(message: IncomingMessage): void {
    const id = `chat-${randomUUID()}`;
    const { channelId, messageId } = message.identity;
    const timeoutMs = this.o.config.get().chatTimeout * 1000;
    const now = Date.now();
    let fields: EntryFields;
    try {
      fields = encodeInbound({
        id,
        replyTo: this.replyStream,
        identity: message.identity,
        text: message.text,
        history: this.history.of(channelId),
        sentAtMs: now,
        deadlineMs: now + timeoutMs,
        ...(this.o.shard !== undefined ? { gatewayShard: this.o.shard } : {}),
      });
    } catch (err) {
      this.o.logger.warn({ chat: id, channelId, ...errorFields(err) }, "chat message refused");
      this.tell(channelId, messageId, `Sorry — ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const timer = setTimeout(() => this.giveUp(id), timeoutMs);
    this.waiting.set(id, { channelId, platformMessageId: messageId, text: message.text, timer });
    this.o.redis.sendCommand(xaddArgs(this.o.keys.chatStream, fields, this.o.maxLen ?? 10_000)).then(
      () => {
        this.stats.forwarded++;
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        this.stats.failed++;
        this.o.logger.error({ chat: id, channelId, ...errorFields(err) }, "could not pass a chat message to the inference tier");
        this.tell(channelId, messageId, "Sorry — the bot cannot be reached right now (its message queue is unavailable). Please try again shortly.");
      },
    );
  }

  /** The message's time is up: the user hears so, once. */
  private giveUp(id: string): void {
    const w = this.waiting.get(id);
    if (!w) return;
    clearTimeout(w.timer);
    this.waiting.delete(id);
    this.stats.timedOut++;
    const seconds = this.o.config.get().chatTimeout;
    this.o.logger.warn({ chat: id, channelId: w.channelId, seconds }, "no answer to a chat message in time");
    this.tell(w.channelId, w.platformMessageId, `Sorry — no answer came back within ${seconds} s. The inference tier may be down or busy; please try again.`);
  }

  private deliver(entries: StreamEntry[]): void {
    const ids = entries.map((e) => e.id);
    for (const entry of entries) {
      if (!entry.fields) continue;
      const decoded = decodeAnswer(entry.fields);
      if (!decoded.ok) {
        this.o.logger.warn({ stream: this.replyStream, entryId: entry.id, error: decoded.error }, "malformed chat answer dropped");
        continue;
      }
      this.answer(decoded.value);
    }
    this.o.redis.sendCommand(["XDEL", this.replyStream, ...ids]).catch((err: unknown) =>
      this.o.logger.warn({ stream: this.replyStream, ...errorFields(err) }, "could not delete read answers; the stream's TTL will"),
    );
  }

  private answer(a: ChatAnswer): void {
    const w = this.waiting.get(a.inReplyTo);
    if (!w) {
      // Its timeout already apologised (or a redelivered duplicate): a second message now would confuse.
      this.o.logger.warn({ chat: a.inReplyTo, worker: a.workerId }, "late or duplicate chat answer dropped");
      return;
    }
    // An inference worker that found it past its deadline (clocks differ, or the timer is late): the same apology.
    if (a.ended === "expired") return this.giveUp(a.inReplyTo);
    clearTimeout(w.timer);
    this.waiting.delete(a.inReplyTo);
    this.stats.answered++;
    this.history.add(w.channelId, w.text, a.text);
    this.o.platform.send(w.channelId, { text: a.text, files: a.files, richMessages: a.richMessages, inReplyTo: w.platformMessageId }).catch((err: unknown) =>
      this.o.logger.error({ chat: a.inReplyTo, channelId: w.channelId, ...errorFields(err) }, "could not deliver an answer to the platform"),
    );
  }

  private tell(channelId: string, messageId: string, text: string): void {
    this.o.platform.send(channelId, { text, files: [], richMessages: [], inReplyTo: messageId }).catch((err: unknown) =>
      this.o.logger.error({ channelId, ...errorFields(err) }, "could not tell the user about a failure"),
    );
  }
}
