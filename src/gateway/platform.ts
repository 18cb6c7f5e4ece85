import type { ToolCallDetail } from "../chat/codec.js";
import type { ChatProgress } from "../chat/client.js";
import type { PlatformAdapter, RichMessage, SentFile, ToolCallIdentity } from "../core/context.js";
import type { HistoryEntry } from "./chat-history.js";

/** A message a user sent, with the identity the platform authenticated. */
export interface IncomingMessage {
  identity: ToolCallIdentity;
  text: string;
}

/** What the bot says back: text, the files its tools sent, rich messages. */
export interface OutgoingMessage {
  text: string;
  files: readonly SentFile[];
  richMessages: readonly RichMessage[];
  /** The platform message id this answers. */
  inReplyTo?: string;
  /** This answer's id (the chat id), the same in the channel's history. */
  answerId?: string;
  /** The tool calls behind the answer: which tool ran where, how it ended, in how long. */
  toolCalls?: readonly ToolCallDetail[];
  /** The inference worker that answered (absent in one process). */
  answeredBy?: string;
  /** An apology (no answer in time, the bot unreachable …), not an answer. */
  failed?: boolean;
}

/** What the gateway offers a platform besides messages. */
export interface PlatformHooks {
  /**
   * A channel's conversation as the gateway keeps it, oldest first (a web
   * page shows it again after a reload); `waiting` marks the user's messages
   * whose answer this gateway still waits for.
   */
  history(channelId: string): Promise<(HistoryEntry & { waiting?: boolean })[]>;
  /**
   * Cancels the answers still awaited in a channel (one message's, or all when `messageId` is undefined):
   * the user stopped them or left. Their running tools are cancelled. Returns how many there were.
   */
  cancel?(channelId: string, messageId: string | undefined, reason: string): number;
}

/**
 * A live chat platform, held by the gateway: it receives users' messages and
 * sends the bot's answers, files and reactions. It owns the platform client,
 * so gateway-pinned tools run where it is (they reach it as `ctx.adapter`).
 */
export interface ChatPlatform extends PlatformAdapter {
  readonly ownsPlatformClient: true;
  /** Starts taking messages; each one a user sends is passed to `onMessage`. */
  start(onMessage: (message: IncomingMessage) => void, hooks?: PlatformHooks): Promise<void>;
  send(channelId: string, message: OutgoingMessage): Promise<void>;
  react(channelId: string, messageId: string, emoji: string): Promise<void>;
  /** A tool running for the answer to `inReplyTo` reports progress (a live line while the user waits). Optional. */
  progress?(channelId: string, inReplyTo: string, progress: ChatProgress): void;
  /** Stops taking messages and closes the platform connection. */
  stop(): Promise<void>;
}

/** True when a tool's adapter is a live platform it can act on directly (a gateway-pinned tool on the gateway). */
export function isChatPlatform(adapter: PlatformAdapter | null | undefined): adapter is ChatPlatform {
  return adapter?.ownsPlatformClient === true && typeof (adapter as Partial<ChatPlatform>).react === "function";
}
