import { currentTraceparent } from "../core/tracing.js";
import { ToolfleetError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { RpcClient, type RequestExtras } from "../redis/rpc-client.js";
import { announceCancelArgs } from "../redis/control.js";
import { decodeProgress } from "../redis/progress-entry.js";
import type { ProgressUpdate } from "../core/progress.js";
import { errorFields } from "../core/log.js";
import { reasonText } from "../core/errors.js";
import { xaddArgs } from "../redis/streams.js";
import { LiveWorkers } from "../redis/live-workers.js";
import { decodeAnswer, encodeInbound, type ChatAnswer, type ChatReply, type InboundChat } from "./codec.js";

/** How a gateway gets a chat message answered: over Redis, or by the inference tier in the same process. */
export interface ChatTransport {
  /** Where answers to this gateway go (an InboundChat's `replyTo`). */
  readonly replyTo: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Resolves with the answer; rejects with a ToolfleetError: TIMEOUT (none
   * within `timeoutMs`), NO_LIVE_WORKER (no inference worker runs: nothing was
   * published), PUBLISH_FAILED, STOPPED, PAYLOAD_TOO_LARGE (the
   * message cannot be sent), CANCELLED (`extras.signal` aborted: the answering worker was told) — or with
   * the in-process responder's own error.
   */
  ask(chat: InboundChat, timeoutMs: number, extras?: ChatExtras): Promise<ChatReply>;
}

/** A running tool's progress while a chat is answered. */
export type ChatProgress = ProgressUpdate & { tool: string };

export interface ChatExtras {
  /** Aborting it cancels the chat: its loop stops and its running tools are cancelled. */
  signal?: AbortSignal;
  /** Hears the progress of the chat's tools. */
  onProgress?: (progress: ChatProgress) => void;
}

export interface ChatClientOptions {
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  logger: Logger;
  /** This gateway's stable id: names its answer stream. */
  gatewayId: string;
}

const CHAT_STREAM_MAXLEN = 10_000;

/** The gateway's side of the chat RPC: messages to the inference tier's stream, answers on this gateway's own stream. */
export class ChatClient implements ChatTransport {
  private readonly rpc: RpcClient<ChatAnswer>;
  /** Whether an inference worker reads the chat stream: with none, a message fails at once instead of waiting out chatTimeout. */
  private readonly live: LiveWorkers;

  constructor(private readonly options: ChatClientOptions) {
    this.live = new LiveWorkers({ redis: options.redis, keys: options.keys, logger: options.logger });
    this.rpc = new RpcClient({
      redis: options.redis,
      redisUrl: options.redisUrl,
      keys: options.keys,
      logger: options.logger,
      replyStream: options.keys.chatReplyStream(options.gatewayId),
      consumer: options.gatewayId,
      name: "chat client",
      decode: (fields) => decodeAnswer(fields),
      correlationOf: (answer) => answer.inReplyTo,
      sideOf: (fields) => decodeProgress(fields),
    });
  }

  get replyTo(): string {
    return this.rpc.replyStream;
  }

  async start(): Promise<void> {
    await this.rpc.start();
    this.options.redis.on("ready", this.onReconnect);
  }

  async stop(): Promise<void> {
    this.options.redis.off("ready", this.onReconnect);
    await this.rpc.stop();
  }

  // Redis may have restarted empty: the workers' heartbeats come back within one interval.
  private readonly onReconnect = (): void => this.live.reconnected();

  async ask(chat: InboundChat, timeoutMs: number, extras?: ChatExtras): Promise<ChatAnswer> {
    // Undefined (cannot tell: Redis slow or away) publishes as before, and the deadline applies.
    if ((await this.live.has(this.options.keys.chatStream, "inference")) === false)
      throw new ToolfleetError("NO_LIVE_WORKER", "no inference worker is running to answer: start one (toolfleet inference)");
    return this.publish(chat, timeoutMs, extras);
  }

  private publish(chat: InboundChat, timeoutMs: number, extras?: ChatExtras): Promise<ChatAnswer> {
    // The gateway's span of this message, when it traces: the inference worker's turn is its child.
    const traceparent = currentTraceparent();
    // Progress entries only for a gateway that shows them: another (or a v1 one) would drop each as malformed.
    const progress = extras?.onProgress !== undefined;
    const fields = encodeInbound(traceparent || progress ? { ...chat, ...(traceparent ? { traceparent } : {}), ...(progress ? { progress } : {}) } : chat);
    const publish = this.options.redis.sendCommand(xaddArgs(this.options.keys.chatStream, fields, CHAT_STREAM_MAXLEN));
    return this.rpc.request(chat.id, chat.id, timeoutMs, publish, undefined, extras ? this.extrasOf(chat, timeoutMs, extras) : undefined);
  }

  private extrasOf(chat: InboundChat, timeoutMs: number, extras: ChatExtras): RequestExtras {
    const out: RequestExtras = {};
    const onProgress = extras.onProgress;
    if (onProgress) out.onUpdate = (update) => onProgress({ tool: "", ...(update as ProgressUpdate & { tool?: string }) });
    if (extras.signal) {
      out.signal = extras.signal;
      // The inference worker answering it hears this on the control channel (or finds the mark at its lease tick).
      out.onCancel = (reason) => {
        const round = this.options.redis.multi();
        for (const args of announceCancelArgs(this.options.keys, chat.id, reasonText(reason), timeoutMs / 1000 + 60)) round.addCommand(args);
        round
          .execAsPipeline()
          .catch((err: unknown) =>
            this.options.logger.warn({ chat: chat.id, ...errorFields(err) }, "could not send the chat's cancel; it is answered to its end"),
          );
      };
    }
    return out;
  }
}

/** One process: the message is answered right here (the in-process fleet), within the same deadline. */
export class InProcessChat implements ChatTransport {
  readonly replyTo = "in-process";

  constructor(private readonly respond: (chat: InboundChat, signal: AbortSignal, onProgress?: (progress: ChatProgress) => void) => Promise<ChatReply>) {}

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  ask(chat: InboundChat, timeoutMs: number, extras?: ChatExtras): Promise<ChatReply> {
    encodeInbound(chat); // the same limits as over Redis
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ToolfleetError("TIMEOUT", `No answer within ${timeoutMs} ms.`)), timeoutMs);
      const given = extras?.signal;
      const onAbort = (): void => reject(new ToolfleetError("CANCELLED", `Cancelled: ${reasonText(given?.reason)}`));
      given?.addEventListener("abort", onAbort, { once: true });
      const signal = given ? AbortSignal.any([AbortSignal.timeout(timeoutMs), given]) : AbortSignal.timeout(timeoutMs);
      this.respond(chat, signal, extras?.onProgress)
        .then(resolve, reject)
        .finally(() => {
          clearTimeout(timer);
          given?.removeEventListener("abort", onAbort);
        });
    });
  }
}
