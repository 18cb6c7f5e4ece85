// The chat test doubles the unit and Redis chat tests share: a user, a platform
// that records what the bot says, and a responder with the example tools.
import { examplePermissions, exampleTools } from "../../examples/tools.js";
import { staticConfig } from "../../src/config/live.js";
import { defineConfig } from "../../src/config/schema.js";
import { ToolRegistry } from "../../src/core/registry.js";
import type { ChatPlatform, IncomingMessage, OutgoingMessage, PlatformHooks } from "../../src/gateway/platform.js";
import { ChatResponder } from "../../src/inference/chat-responder.js";
import { LOOP_TOOLS } from "../../src/inference/llm-loop.js";
import { RecordingLogger } from "./helpers.js";

export const identity = { platform: "test", channelId: "c1", userId: "alice", userName: "Alice", guildId: "", messageId: "m1" };

/** A platform that records what the bot says, and lets the test type as a user. */
export class RecordingPlatform implements ChatPlatform {
  readonly platform = "test";
  readonly ownsPlatformClient = true;
  readonly sent: { channelId: string; message: OutgoingMessage }[] = [];
  readonly reactions: string[] = [];
  user: ((m: IncomingMessage) => void) | undefined;
  hooks: PlatformHooks | undefined;
  start(onMessage: (m: IncomingMessage) => void, hooks?: PlatformHooks): Promise<void> {
    this.user = onMessage;
    this.hooks = hooks;
    return Promise.resolve();
  }
  send(channelId: string, message: OutgoingMessage): Promise<void> {
    this.sent.push({ channelId, message });
    return Promise.resolve();
  }
  react(_c: string, messageId: string, emoji: string): Promise<void> {
    this.reactions.push(`${messageId}:${emoji}`);
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

export function localResponder(logger = new RecordingLogger(), chatCommands = true): ChatResponder {
  const config = staticConfig(defineConfig({ backgroundThreshold: 0, chatCommands }));
  const registry = new ToolRegistry({ config, logger }).register(...exampleTools, ...LOOP_TOOLS);
  registry.setPermissions(examplePermissions);
  return new ChatResponder({ registry, config, logger });
}
