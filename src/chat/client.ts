import { ToolfleetError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { RpcClient } from "../redis/rpc-client.js";
import { xaddArgs } from "../redis/streams.js";
import { decodeAnswer, encodeInbound, type ChatAnswer, type ChatReply, type InboundChat } from "./codec.js";

/** How a gateway gets a chat message answered: over Redis, or by the inference tier in the same process. */
export interface ChatTransport {
  /** Where answers to this gateway go (an InboundChat's `replyTo`). */
  readonly replyTo: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Resolves with the answer; rejects with a ToolfleetError: TIMEOUT (none
   * within `timeoutMs`), PUBLISH_FAILED, STOPPED, PAYLOAD_TOO_LARGE (the
   * message cannot be sent) — or with the in-process responder's own error.
   */
  ask(chat: InboundChat, timeoutMs: number): Promise<ChatReply>;
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

  constructor(private readonly options: ChatClientOptions) {
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
    });
  }

  get replyTo(): string {
    return this.rpc.replyStream;
  }

  start(): Promise<void> {
    return this.rpc.start();
  }

  stop(): Promise<void> {
    return this.rpc.stop();
  }

  ask(chat: InboundChat, timeoutMs: number): Promise<ChatAnswer> {
    const fields = encodeInbound(chat);
    const publish = this.options.redis.sendCommand(xaddArgs(this.options.keys.chatStream, fields, CHAT_STREAM_MAXLEN));
    return this.rpc.request(chat.id, chat.id, timeoutMs, publish);
  }
}

/** One process: the message is answered right here (the in-process fleet), within the same deadline. */
export class InProcessChat implements ChatTransport {
  readonly replyTo = "in-process";

  constructor(private readonly respond: (chat: InboundChat, signal: AbortSignal) => Promise<ChatReply>) {}

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  ask(chat: InboundChat, timeoutMs: number): Promise<ChatReply> {
    encodeInbound(chat); // the same limits as over Redis
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ToolfleetError("TIMEOUT", `No answer within ${timeoutMs} ms.`)), timeoutMs);
      this.respond(chat, AbortSignal.timeout(timeoutMs))
        .then(resolve, reject)
        .finally(() => clearTimeout(timer));
    });
  }
}
