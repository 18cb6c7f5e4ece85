import { randomUUID } from "node:crypto";
import type { ConfigSource } from "../config/live.js";
import { errorFields, type Logger } from "../core/log.js";
import { decodeAnswer, encodeInbound, type ChatAnswer, type InboundChat } from "../chat/codec.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { ReplyInbox } from "../redis/reply-inbox.js";
import { xaddArgs, type StreamEntry } from "../redis/streams.js";
import type { EntryFields } from "../tool-exec/codec.js";
import { ChatHistory } from "./chat-history.js";
import type { ChatPlatform, IncomingMessage } from "./platform.js";

/** An answer as the inference side produces it. */
export type ChatOutcome = Pick<ChatAnswer, "text" | "files" | "richMessages" | "ended">;

interface Common {
  config: ConfigSource;
  logger: Logger;
  platform: ChatPlatform;
}

/** A gateway: messages go to the inference tier's stream, answers come back on this gateway's own. */
export interface ChatBridgeOverRedis extends Common {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  /** This gateway's stable id: names its answer stream. */
  gatewayId: string;
  /** The gateway stream shard this gateway serves, so a chat's gateway-pinned calls come back to it. @defaultValue the shared stream */
  shard?: string;
}

/** One process: messages are answered right here (the in-process fleet). */
export interface ChatBridgeInProcess extends Common {
  respond(chat: InboundChat, signal: AbortSignal): Promise<ChatOutcome>;
}

export type ChatBridgeOptions = ChatBridgeOverRedis | ChatBridgeInProcess;

interface Waiting {
  channelId: string;
  platformMessageId: string;
  text: string;
  timer: NodeJS.Timeout;
}

const CHAT_STREAM_MAXLEN = 10_000;

/**
 * The gateway's chat path: each message the platform receives goes to the
 * inference tier with the identity the platform authenticated and the
 * channel's recent turns; the answer goes out through the platform. A message
 * with no answer by `chatTimeout` gets a clear apology, never silence.
 */
export class ChatBridge {
  private readonly inbox: ReplyInbox | undefined;
  private readonly replyStream: string;
  private readonly waiting = new Map<string, Waiting>();
  private readonly history = new ChatHistory();
  private started = false;

  constructor(private readonly o: ChatBridgeOptions) {
    if ("respond" in o) {
      this.replyStream = "in-process";
      return;
    }
    this.replyStream = o.keys.chatReplyStream(o.gatewayId);
    this.inbox = new ReplyInbox({
      redis: o.redis,
      redisUrl: o.redisUrl,
      keys: o.keys,
      logger: o.logger,
      stream: this.replyStream,
      consumer: o.gatewayId,
      onEntries: (entries) => this.deliver(entries),
    });
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.inbox?.start();
    this.started = true;
    await this.o.platform.start((message) => this.forward(message));
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.o.platform.stop();
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    this.waiting.clear();
    await this.inbox?.stop();
  }

  /** Sends one message to the inference tier; failures are told to the user, not thrown. */
  forward(message: IncomingMessage): void {
    const { channelId, messageId } = message.identity;
    const timeoutMs = this.o.config.get().chatTimeout * 1000;
    const now = Date.now();
    const chat: InboundChat = {
      id: `chat-${randomUUID()}`,
      replyTo: this.replyStream,
      identity: message.identity,
      text: message.text,
      history: this.history.of(channelId),
      sentAtMs: now,
      deadlineMs: now + timeoutMs,
      ...("shard" in this.o && this.o.shard !== undefined ? { gatewayShard: this.o.shard } : {}),
    };
    let fields: EntryFields;
    try {
      fields = encodeInbound(chat);
    } catch (err) {
      this.o.logger.warn({ chat: chat.id, channelId, ...errorFields(err) }, "chat message refused");
      this.tell(channelId, messageId, `Sorry — ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const timer = setTimeout(() => this.giveUp(chat.id), timeoutMs);
    this.waiting.set(chat.id, { channelId, platformMessageId: messageId, text: message.text, timer });
    if ("respond" in this.o) {
      this.o.respond(chat, AbortSignal.timeout(timeoutMs)).then(
        (outcome) => this.answer({ ...outcome, inReplyTo: chat.id }),
        (err: unknown) => this.failed(chat.id, err, "Sorry — something went wrong while answering; please try again."),
      );
      return;
    }
    this.o.redis
      .sendCommand(xaddArgs(this.o.keys.chatStream, fields, CHAT_STREAM_MAXLEN))
      .catch((err: unknown) => this.failed(chat.id, err, "Sorry — the bot cannot be reached right now (its message queue is unavailable). Please try again shortly."));
  }

  private deliver(entries: StreamEntry[]): void {
    for (const entry of entries) {
      if (!entry.fields) continue;
      const decoded = decodeAnswer(entry.fields);
      if (!decoded.ok) {
        this.o.logger.warn({ stream: this.replyStream, entryId: entry.id, error: decoded.error }, "malformed chat answer dropped");
        continue;
      }
      this.answer(decoded.value);
    }
  }

  private answer(a: ChatOutcome & { inReplyTo: string }): void {
    const w = this.waiting.get(a.inReplyTo);
    if (!w) {
      // Its timeout already apologised (or a redelivered duplicate): a second message now would confuse.
      this.o.logger.warn({ chat: a.inReplyTo }, "late or duplicate chat answer dropped");
      return;
    }
    // An inference worker that found it past its deadline (clocks differ, or the timer is late): the same apology.
    if (a.ended === "expired") return this.giveUp(a.inReplyTo);
    clearTimeout(w.timer);
    this.waiting.delete(a.inReplyTo);
    this.history.add(w.channelId, w.text, a.text);
    this.o.platform.send(w.channelId, { text: a.text, files: a.files, richMessages: a.richMessages, inReplyTo: w.platformMessageId }).catch((err: unknown) =>
      this.o.logger.error({ chat: a.inReplyTo, channelId: w.channelId, ...errorFields(err) }, "could not deliver an answer to the platform"),
    );
  }

  /** The message's time is up: the user hears so, once. */
  private giveUp(id: string): void {
    const w = this.end(id);
    if (!w) return;
    const seconds = this.o.config.get().chatTimeout;
    this.o.logger.warn({ chat: id, channelId: w.channelId, seconds }, "no answer to a chat message in time");
    this.tell(w.channelId, w.platformMessageId, `Sorry — no answer came back within ${seconds} s. The inference tier may be down or busy; please try again.`);
  }

  private failed(id: string, err: unknown, text: string): void {
    const w = this.end(id);
    if (!w) return;
    this.o.logger.error({ chat: id, channelId: w.channelId, ...errorFields(err) }, "a chat message could not be answered");
    this.tell(w.channelId, w.platformMessageId, text);
  }

  private end(id: string): Waiting | undefined {
    const w = this.waiting.get(id);
    if (!w) return undefined;
    clearTimeout(w.timer);
    this.waiting.delete(id);
    return w;
  }

  private tell(channelId: string, messageId: string, text: string): void {
    this.o.platform.send(channelId, { text, files: [], richMessages: [], inReplyTo: messageId }).catch((err: unknown) =>
      this.o.logger.error({ channelId, ...errorFields(err) }, "could not tell the user about a failure"),
    );
  }
}
