import { randomUUID } from "node:crypto";
import { ChatClient, InProcessChat, type ChatTransport } from "../chat/client.js";
import type { ChatReply, InboundChat } from "../chat/codec.js";
import type { ConfigSource } from "../config/live.js";
import { isToolfleetError } from "../core/errors.js";
import { errorFields, type Logger } from "../core/log.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { ChatHistory } from "./chat-history.js";
import type { ChatPlatform, IncomingMessage } from "./platform.js";

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
  respond(chat: InboundChat, signal: AbortSignal): Promise<ChatReply>;
}

export type ChatBridgeOptions = ChatBridgeOverRedis | ChatBridgeInProcess;

/**
 * The gateway's chat path: each message the platform receives goes to the
 * inference tier with the identity the platform authenticated and the
 * channel's recent turns; the answer goes out through the platform. A message
 * with no answer by `chatTimeout` gets a clear apology, never silence.
 */
export class ChatBridge {
  private readonly transport: ChatTransport;
  private readonly history = new ChatHistory();
  private started = false;

  constructor(private readonly options: ChatBridgeOptions) {
    this.transport =
      "respond" in options
        ? new InProcessChat((chat, signal) => options.respond(chat, signal))
        : new ChatClient({ redis: options.redis, redisUrl: options.redisUrl, keys: options.keys, logger: options.logger, gatewayId: options.gatewayId });
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.transport.start();
    this.started = true;
    await this.options.platform.start((message) => this.forward(message));
  }

  /** Stops taking messages; answers still on their way are dropped (their users are gone with the platform). */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.options.platform.stop();
    await this.transport.stop();
  }

  /** Sends one message to the inference tier; failures are told to the user, not thrown. */
  forward(message: IncomingMessage): void {
    const { channelId, messageId } = message.identity;
    const seconds = this.options.config.get().chatTimeout;
    const now = Date.now();
    const chat: InboundChat = {
      id: `chat-${randomUUID()}`,
      replyTo: this.transport.replyTo,
      identity: message.identity,
      text: message.text,
      history: this.history.of(channelId),
      sentAtMs: now,
      deadlineMs: now + seconds * 1000,
      ...("shard" in this.options && this.options.shard !== undefined ? { gatewayShard: this.options.shard } : {}),
    };
    let asked: Promise<ChatReply>;
    try {
      asked = this.transport.ask(chat, seconds * 1000);
    } catch (err) {
      this.options.logger.warn({ chat: chat.id, channelId, ...errorFields(err) }, "chat message refused");
      this.tell(channelId, messageId, `Sorry — ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    asked.then(
      (reply) => {
        if (!this.started) return;
        // An inference worker that found it past its deadline (clocks differ, or the timer is late): the same apology.
        if (reply.ended === "expired") return this.giveUp(chat.id, channelId, messageId, seconds);
        this.history.add(channelId, message.text, reply.text);
        this.options.platform
          .send(channelId, { text: reply.text, files: reply.files, richMessages: reply.richMessages, inReplyTo: messageId })
          .catch((err: unknown) => this.options.logger.error({ chat: chat.id, channelId, ...errorFields(err) }, "could not deliver an answer to the platform"));
      },
      (err: unknown) => {
        if (isToolfleetError(err, "STOPPED") || !this.started) return;
        if (isToolfleetError(err, "TIMEOUT")) return this.giveUp(chat.id, channelId, messageId, seconds);
        this.options.logger.error({ chat: chat.id, channelId, ...errorFields(err) }, "a chat message could not be answered");
        this.tell(
          channelId,
          messageId,
          isToolfleetError(err, "PUBLISH_FAILED")
            ? "Sorry — the bot cannot be reached right now (its message queue is unavailable). Please try again shortly."
            : "Sorry — something went wrong while answering; please try again.",
        );
      },
    );
  }

  /** The message's time is up: the user hears so, once. */
  private giveUp(id: string, channelId: string, messageId: string, seconds: number): void {
    this.options.logger.warn({ chat: id, channelId, seconds }, "no answer to a chat message in time");
    this.tell(channelId, messageId, `Sorry — no answer came back within ${seconds} s. The inference tier may be down or busy; please try again.`);
  }

  private tell(channelId: string, messageId: string, text: string): void {
    this.options.platform
      .send(channelId, { text, files: [], richMessages: [], inReplyTo: messageId })
      .catch((err: unknown) => this.options.logger.error({ channelId, ...errorFields(err) }, "could not tell the user about a failure"));
  }
}
