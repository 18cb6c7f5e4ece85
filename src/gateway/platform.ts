import type { PlatformAdapter, RichMessage, SentFile, ToolCallIdentity } from "../core/context.js";

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
}

/**
 * A live chat platform, held by the gateway: it receives users' messages and
 * sends the bot's answers, files and reactions. It owns the platform client,
 * so gateway-pinned tools run where it is (they reach it as `ctx.adapter`).
 */
export interface ChatPlatform extends PlatformAdapter {
  readonly ownsPlatformClient: true;
  /** Starts taking messages; each one a user sends is passed to `onMessage`. */
  start(onMessage: (message: IncomingMessage) => void): Promise<void>;
  send(channelId: string, message: OutgoingMessage): Promise<void>;
  react(channelId: string, messageId: string, emoji: string): Promise<void>;
  /** Stops taking messages and closes the platform connection. */
  stop(): Promise<void>;
}

/** True when a tool's adapter is a live platform it can act on directly (a gateway-pinned tool on the gateway). */
export function isChatPlatform(adapter: PlatformAdapter | null | undefined): adapter is ChatPlatform {
  return adapter?.ownsPlatformClient === true && typeof (adapter as Partial<ChatPlatform>).react === "function";
}
