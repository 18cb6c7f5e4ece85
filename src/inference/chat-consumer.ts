import { contextOf, endedAs, inSpan } from "../core/tracing.js";
import { packageVersion } from "../core/version.js";
import type { PlatformAdapter } from "../core/context.js";
import { errorFields, type Logger } from "../core/log.js";
import { decodeInbound, encodeAnswer, type ChatAnswer, type InboundChat } from "../chat/codec.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { StreamWorker, type DeliveredEntry, type Disposition, type Outbound, type StreamWorkerOptions } from "../redis/stream-worker.js";
import type { ChatResponder } from "./chat-responder.js";
import { MAX_CALL_TIMEOUT_MS } from "../core/timeout.js";
import { CallSignal } from "../core/context.js";
import { ControlListener, RunningCalls } from "../redis/control.js";
import { encodeProgress, ProgressSender } from "../redis/progress-entry.js";
import { xaddArgs } from "../redis/streams.js";

/** Chats one inference worker answers at once, by default. */
export const CHAT_CONCURRENCY = 8;

export interface ChatConsumerOptions {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  logger: Logger;
  workerId: string;
  responder: ChatResponder;
  /** The platform as this tier sees it: a proxy to the gateway (shard) that holds the chat. */
  adapterFor: (platform: string, gatewayShard: string | undefined) => PlatformAdapter;
  /** Chats answered at once, the lease … A chat's loop can be long: its lease is extended while it runs. */
  worker?: Partial<Pick<StreamWorkerOptions, "concurrency" | "blockMs" | "leaseMs" | "claimEveryMs" | "maxDeliveries" | "maxLen" | "heartbeatMs">>;
}

/**
 * The inference tier's chat consumer: takes chat messages from the gateways'
 * stream in one consumer group (inference workers share the load), answers
 * each through the tool loop, and sends the answer to the gateway that asked,
 * in the same round trip as the ack. A worker that dies mid-answer leaves the
 * message pending; another one answers it after the lease.
 */
export class ChatConsumer {
  /** The engine that reads the chat stream (its counters are reported as metrics). */
  readonly worker: StreamWorker;
  /** Chats being answered here that their gateway may cancel (a web page abandoned), by chat id. */
  private readonly chats = new RunningCalls();
  private readonly control: ControlListener;

  constructor(private readonly options: ChatConsumerOptions) {
    this.control = new ControlListener({
      redis: options.redis,
      url: options.redisUrl,
      keys: options.keys,
      logger: options.logger,
      name: options.workerId,
      onCancel: (id, reason) => {
        if (this.chats.cancel(id, reason)) options.logger.info({ chat: id, reason }, "chat cancelled by its gateway");
      },
    });
    this.worker = new StreamWorker({
      redis: options.redis,
      redisUrl: options.redisUrl,
      logger: options.logger,
      keys: options.keys,
      service: "inference",
      stream: options.keys.chatStream,
      consumer: options.workerId,
      concurrency: CHAT_CONCURRENCY,
      leaseMs: 30_000,
      maxDeliveries: 3,
      // What `toolfleet dashboard` shows of each worker.
      heartbeatExtra: () => ({ version: packageVersion() }),
      ...options.worker,
      handler: {
        handle: (entry, stopping) => this.handle(entry, stopping),
        deadLetterReply: (entry, reason) => this.failureReply(entry, `Sorry — this message could not be answered (${reason}).`),
        // A cancel whose control message was lost is found by its mark.
        extendLeases: async () => {
          const check = this.chats.markCheck(options.keys);
          if (!check) return;
          check.apply(await options.redis.sendCommand(check.args), (id, reason) =>
            options.logger.info({ chat: id, reason }, "chat cancelled by its gateway (found at the lease tick)"),
          );
        },
      },
    });
  }

  async start(): Promise<void> {
    try {
      await this.control.start();
    } catch (err) {
      this.options.logger.warn({ ...errorFields(err) }, "could not subscribe to the control channel; chat cancels are seen at the lease tick");
    }
    await this.worker.start();
  }

  /** Stops taking messages; answers in progress finish (bounded by `timeoutMs`). */
  async stop(timeoutMs?: number): Promise<void> {
    await this.worker.stop(timeoutMs);
    await this.control.stop();
  }

  private async handle(entry: DeliveredEntry, stopping: AbortSignal): Promise<Disposition> {
    const decoded = decodeInbound(entry.fields);
    if (!decoded.ok) return { kind: "dead", reason: decoded.error.message };
    const chat = decoded.value;
    // Answers go only to gateways' answer streams, never to a key the message names at will.
    if (!chat.replyTo.startsWith(this.options.keys.chatReplyPrefix))
      return { kind: "dead", reason: `reply_to '${chat.replyTo}' is not a gateway answer stream` };
    const started = performance.now();
    if (Date.now() > chat.deadlineMs) {
      // The gateway already told the user it gave up; an answer now would only confuse.
      this.options.logger.warn({ chat: chat.id, waitedMs: Date.now() - chat.sentAtMs }, "chat message expired before an inference worker took it");
      return { kind: "ack", reply: this.reply(chat, { text: "", files: [], richMessages: [], ended: "expired", toolCalls: 0 }, started) };
    }
    // The loop ends at the chat's deadline (the user has been told to retry: no more tool calls for it),
    // or when this worker's stop gives up waiting.
    // Bounded like any call's wait: past Node's timer limit a timeout fires at once.
    // Or when its gateway cancels it (the user left): the loop stops and its running tools are cancelled.
    if (this.chats.cancelledBefore(chat.id) !== undefined) return { kind: "ack" };
    const cancel = new CallSignal(stopping);
    const signal = AbortSignal.any([cancel.signal, AbortSignal.timeout(Math.min(MAX_CALL_TIMEOUT_MS, Math.max(1, chat.deadlineMs - Date.now())))]);
    this.chats.begin(chat.id, cancel);
    // The chat's tools' progress, to a gateway that asked for it (one that shows it), coalesced like a tool call's.
    const progress = !chat.progress
      ? undefined
      : new ProgressSender((update) => {
          const { tool, ...rest } = update as typeof update & { tool?: string };
          this.options.redis
            .sendCommand(xaddArgs(chat.replyTo, encodeProgress(chat.id, rest, tool), 10_000, true))
            .catch((err: unknown) => this.options.logger.debug({ chat: chat.id, ...errorFields(err) }, "a progress update was not sent"));
        });
    try {
      // The LLM turn, a child of the gateway's span of the message: the tool calls it makes are its children.
      const answer = await inSpan(
        "chat turn",
        "consumer",
        { "toolfleet.chat": chat.id, "toolfleet.worker": this.options.workerId },
        async (span) => {
          const adapter = this.options.adapterFor(chat.identity.platform, chat.gatewayShard);
          const a = await this.options.responder.answer(chat, adapter, signal, progress ? (p) => progress.report(p) : undefined);
          endedAs(span, a.ended === "answer" ? "ok" : a.ended, { "toolfleet.tool_calls": a.toolCalls });
          return a;
        },
        contextOf(chat.traceparent),
      );
      // Stopped mid-answer: leave it pending, for another worker to answer after the lease.
      if (stopping.aborted) return { kind: "leave" };
      // Cancelled: its gateway has stopped waiting; nobody to answer.
      if (cancel.aborted) return { kind: "ack" };
      return { kind: "ack", reply: this.reply(chat, answer, started) };
    } catch (err) {
      if (stopping.aborted) return { kind: "leave" };
      if (cancel.aborted) return { kind: "ack" };
      this.options.logger.error({ chat: chat.id, ...errorFields(err) }, "answering a chat message failed");
      return {
        kind: "ack",
        reply: this.reply(
          chat,
          { text: "Sorry — something went wrong while answering; please try again.", files: [], richMessages: [], ended: "error", toolCalls: 0 },
          started,
        ),
      };
    } finally {
      this.chats.end(chat.id);
      progress?.close();
      cancel.detach();
    }
  }

  private reply(chat: InboundChat, a: Omit<ChatAnswer, "inReplyTo" | "channelId" | "workerId" | "durationMs">, started: number): Outbound {
    const answer: ChatAnswer = {
      ...a,
      inReplyTo: chat.id,
      channelId: chat.identity.channelId,
      workerId: this.options.workerId,
      durationMs: performance.now() - started,
    };
    return { stream: chat.replyTo, fields: encodeAnswer(answer) };
  }

  private failureReply(entry: DeliveredEntry, text: string): Outbound | null {
    const decoded = decodeInbound(entry.fields);
    if (!decoded.ok || !decoded.value.replyTo.startsWith(this.options.keys.chatReplyPrefix)) return null;
    return this.reply(decoded.value, { text, files: [], richMessages: [], ended: "error", toolCalls: 0 }, performance.now());
  }
}
