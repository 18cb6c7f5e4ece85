import { endedAs, inSpan } from "../core/tracing.js";
import { randomUUID } from "node:crypto";
import { ChatClient, InProcessChat, type ChatProgress, type ChatTransport } from "../chat/client.js";
import type { ChatReply, HistoryTurn, InboundChat } from "../chat/codec.js";
import type { ConfigSource } from "../config/live.js";
import { isToolfleetError, reasonText } from "../core/errors.js";
import { errorFields, type Logger } from "../core/log.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { within } from "../core/within.js";
import { MemoryChatHistory, RedisChatHistory, modelTurns, type ChatHistoryStore, type HistoryEntry } from "./chat-history.js";
import type { ChatPlatform, IncomingMessage, OutgoingMessage } from "./platform.js";

interface Common {
  config: ConfigSource;
  logger: Logger;
  platform: ChatPlatform;
  /** Where the channels' conversations are kept. @defaultValue in Redis over Redis (a day, 100 entries a channel), else in memory */
  history?: ChatHistoryStore;
}

/** How long a chat waits on the history store (Redis away): past it, the message goes without its history. */
const HISTORY_WAIT_MS = 2000;

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
  respond(chat: InboundChat, signal: AbortSignal, onProgress?: (progress: ChatProgress) => void): Promise<ChatReply>;
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
  private readonly history: ChatHistoryStore;
  /** `<channelId>\n<messageId>` of the messages whose answer is awaited (for a page that reloads meanwhile), each with its cancel. */
  private readonly waiting = new Map<string, AbortController>();
  private started = false;

  constructor(private readonly options: ChatBridgeOptions) {
    if ("respond" in options) {
      this.transport = new InProcessChat((chat, signal, onProgress) => options.respond(chat, signal, onProgress));
      this.history = options.history ?? new MemoryChatHistory();
    } else {
      this.transport = new ChatClient({
        redis: options.redis,
        redisUrl: options.redisUrl,
        keys: options.keys,
        logger: options.logger,
        gatewayId: options.gatewayId,
      });
      this.history = options.history ?? new RedisChatHistory({ redis: options.redis, keys: options.keys });
    }
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.transport.start();
    this.started = true;
    await this.options.platform.start((message) => this.forward(message), {
      history: (channelId) => this.historyOf(channelId),
      cancel: (channelId, messageId, reason) => this.cancel(channelId, messageId, reason),
    });
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
    this.ask(message).catch((err: unknown) => this.options.logger.error({ ...errorFields(err) }, "a chat message could not be forwarded"));
  }

  /** A channel's conversation for the platform to show, the messages still awaiting an answer marked. */
  async historyOf(channelId: string): Promise<(HistoryEntry & { waiting?: boolean })[]> {
    const entries = await within(this.history.read(channelId), HISTORY_WAIT_MS, "reading the chat history");
    return entries.map((e) => (e.role === "user" && this.waiting.has(`${channelId}\n${e.messageId}`) ? { ...e, waiting: true } : e));
  }

  /**
   * Cancels the answers awaited in a channel (one message's, or all of them): the inference worker answering
   * stops its loop and cancels the tools running for it. Returns how many were cancelled.
   */
  cancel(channelId: string, messageId: string | undefined, reason: string): number {
    let cancelled = 0;
    for (const [key, controller] of this.waiting) {
      const [channel, message] = key.split("\n");
      if (channel !== channelId || (messageId !== undefined && message !== messageId)) continue;
      controller.abort(reason);
      cancelled++;
    }
    if (cancelled > 0) this.options.logger.info({ channelId, messageId, reason, cancelled }, "chat answers cancelled");
    return cancelled;
  }

  private async ask(message: IncomingMessage): Promise<void> {
    const { channelId, messageId } = message.identity;
    // Marked before the question is kept: a page that reads it back meanwhile knows an answer is coming.
    const waitKey = `${channelId}\n${messageId}`;
    const controller = new AbortController();
    this.waiting.set(waitKey, controller);
    let out: OutgoingMessage | null;
    const id = `chat-${randomUUID()}`;
    try {
      // The span of this chat message: its answer's turn and tool calls, in every process, are its children.
      out = await inSpan("chat message", "server", { "toolfleet.chat": id, "toolfleet.platform": message.identity.platform }, (span) =>
        this.answer(id, message, controller.signal).then((answer) => {
          endedAs(span, answer === null ? "stopped" : answer.failed ? "error" : "ok");
          return answer;
        }),
      );
    } finally {
      this.waiting.delete(waitKey);
    }
    // Stopped meanwhile: the platform, and the user with it, are gone.
    if (out === null || !this.started) return;
    await this.deliver(id, channelId, out);
  }

  /** The message's answer, or the apology the user gets instead; null when the gateway is stopping. */
  private async answer(id: string, message: IncomingMessage, signal: AbortSignal): Promise<OutgoingMessage | null> {
    const { channelId, messageId } = message.identity;
    const seconds = this.options.config.get().chatTimeout;
    const now = Date.now();
    const apology = (text: string): OutgoingMessage => ({ text, files: [], richMessages: [], inReplyTo: messageId, failed: true });
    // The question is kept at once (a page reloaded before the answer still shows it); the model is shown only
    // answered questions, so reading and writing may overlap.
    const [history] = await Promise.all([this.turns(channelId, id), this.record(channelId, { role: "user", text: message.text, messageId, atMs: now })]);
    const chat: InboundChat = {
      id,
      replyTo: this.transport.replyTo,
      identity: message.identity,
      text: message.text,
      history,
      sentAtMs: now,
      deadlineMs: now + seconds * 1000,
      ...("shard" in this.options && this.options.shard !== undefined ? { gatewayShard: this.options.shard } : {}),
    };
    let reply: ChatReply;
    try {
      const platform = this.options.platform;
      reply = await this.transport.ask(chat, seconds * 1000, {
        signal,
        ...(platform.progress ? { onProgress: (p: ChatProgress) => platform.progress?.(channelId, messageId, p) } : {}),
      });
    } catch (err) {
      if (isToolfleetError(err, "TIMEOUT")) return this.giveUp(id, channelId, seconds, apology);
      if (isToolfleetError(err, "NO_LIVE_WORKER")) {
        this.options.logger.warn({ chat: id, channelId, ...errorFields(err) }, "chat message not sent");
        return apology("Sorry — the bot's answering side (its inference tier) is not running right now. Please try again shortly.");
      }
      if (isToolfleetError(err, "CANCELLED")) return apology(`Stopped (${reasonText(signal.reason)}).`);
      if (isToolfleetError(err, "PAYLOAD_TOO_LARGE")) {
        this.options.logger.warn({ chat: id, channelId, ...errorFields(err) }, "chat message refused");
        return apology(`Sorry — ${err instanceof Error ? err.message : String(err)}`);
      }
      if (isToolfleetError(err, "STOPPED") || !this.started) return null;
      this.options.logger.error({ chat: id, channelId, ...errorFields(err) }, "a chat message could not be answered");
      return apology(
        isToolfleetError(err, "PUBLISH_FAILED")
          ? "Sorry — the bot cannot be reached right now (its message queue is unavailable). Please try again shortly."
          : "Sorry — something went wrong while answering; please try again.",
      );
    }
    // An inference worker that found it past its deadline (clocks differ, or the timer is late): the same apology.
    if (reply.ended === "expired") return this.giveUp(id, channelId, seconds, apology);
    const answeredBy = "workerId" in reply && typeof reply.workerId === "string" && reply.workerId !== "" ? reply.workerId : undefined;
    return {
      text: reply.text,
      files: reply.files,
      richMessages: reply.richMessages,
      inReplyTo: messageId,
      ...(reply.toolCallsDetail ? { toolCalls: reply.toolCallsDetail } : {}),
      ...(answeredBy !== undefined ? { answeredBy } : {}),
    };
  }

  /** The model's view of the channel; without it (the store is away) the message still goes. */
  private async turns(channelId: string, chatId: string): Promise<HistoryTurn[]> {
    try {
      return modelTurns(await within(this.history.read(channelId), HISTORY_WAIT_MS, "reading the chat history"));
    } catch (err) {
      this.options.logger.warn({ chat: chatId, channelId, ...errorFields(err) }, "chat history unavailable; the message goes without it");
      return [];
    }
  }

  private async record(channelId: string, entry: HistoryEntry): Promise<void> {
    try {
      await within(this.history.append(channelId, entry), HISTORY_WAIT_MS, "writing the chat history");
    } catch (err) {
      this.options.logger.warn({ channelId, ...errorFields(err) }, "could not keep a chat line in the history");
    }
  }

  /**
   * Kept first, then sent: a page that reloads meanwhile either reads it from
   * the history or gets it on its event stream (it listens before it reads).
   */
  private async deliver(chatId: string, channelId: string, message: OutgoingMessage): Promise<void> {
    const out: OutgoingMessage = { ...message, answerId: chatId };
    await this.record(channelId, {
      role: "assistant",
      text: out.text,
      messageId: out.inReplyTo ?? "",
      atMs: Date.now(),
      answerId: chatId,
      ...(out.failed ? { failed: true } : {}),
      ...(out.files.length > 0 ? { files: out.files.map((f) => ({ name: f.name, contentType: f.contentType, size: f.data.byteLength })) } : {}),
      ...(out.richMessages.length > 0 ? { richMessages: [...out.richMessages] } : {}),
      ...(out.toolCalls ? { toolCalls: [...out.toolCalls] } : {}),
      ...(out.answeredBy !== undefined ? { answeredBy: out.answeredBy } : {}),
    });
    await this.options.platform
      .send(channelId, out)
      .catch((err: unknown) =>
        this.options.logger.error(
          { chat: chatId, channelId, ...errorFields(err) },
          out.failed ? "could not tell the user about a failure" : "could not deliver an answer to the platform",
        ),
      );
  }

  /** The message's time is up: the user hears so, once. */
  private giveUp(id: string, channelId: string, seconds: number, apology: (text: string) => OutgoingMessage): OutgoingMessage {
    this.options.logger.warn({ chat: id, channelId, seconds }, "no answer to a chat message in time");
    return apology(`Sorry — no answer came back within ${seconds} s. The inference tier may be down or busy; please try again.`);
  }
}
