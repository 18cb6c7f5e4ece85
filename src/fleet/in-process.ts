import { ToolfleetError } from "../core/errors.js";
import type { ConfigSource } from "../config/live.js";
import type { ToolRegistry } from "../core/registry.js";
import { ChatBridge } from "../gateway/bridge.js";
import { HttpChatAdapter } from "../gateway/http-adapter.js";
import type { ChatPlatform } from "../gateway/platform.js";
import { ChatResponder, describeModel } from "../inference/chat-responder.js";
import type { ChatModel } from "../inference/llm-loop.js";
import { Lifecycle, resolveMember, startInOrder, type FleetMember, type MemberOptions, type ToolSet } from "./common.js";
import { registryFor } from "./local.js";

export interface InProcessFleetOptions extends Omit<MemberOptions, "redisUrl" | "workerId">, ToolSet {
  /** The chat platform (a `ConsoleAdapter`, an `HttpChatAdapter` …). */
  platform: ChatPlatform;
  /** @defaultValue the configured LLM (none without an API key), behind slash commands */
  model?: ChatModel;
}

export interface InProcessFleet extends FleetMember {
  /** Runs every tool here; exists from creation. */
  readonly registry: ToolRegistry;
}

/**
 * The whole fleet in one process, with no Redis: the platform's messages go
 * straight to the tool loop, and every tool runs here (the `in_process`
 * mode, whatever the config says). The embedded default.
 */
export function createInProcessFleet(options: InProcessFleetOptions): InProcessFleet {
  const member = resolveMember("fleet", options);
  if (!options.platform.ownsPlatformClient) throw new ToolfleetError("CONFIG_INVALID", "the in-process fleet's platform must own its client (a ChatPlatform)");
  const base = member.config;
  const config: ConfigSource = { get: () => ({ ...base.get(), toolsServiceMode: "in_process" }) };
  const registry = registryFor({ tools: [...(options.tools ?? [])], permissions: options.permissions ?? {} }, config, member.logger);
  const responder = new ChatResponder({ registry, config, logger: member.logger, ...(options.model ? { model: options.model } : {}) });
  const { platform } = options;
  const life = new Lifecycle("in-process fleet");
  return {
    workerId: member.workerId,
    redisUrl: "",
    get description() {
      return `${registry.size} tools in this process, ${options.model ? "the given model" : describeModel(config)}`;
    },
    get url() {
      return platform instanceof HttpChatAdapter && life.started ? platform.url : undefined;
    },
    registry,
    start: () =>
      life.start(() =>
        startInOrder(
          () => Promise.resolve(undefined),
          () => registry.close(),
          () => {
            // The gateway's chat path, with the inference tier's answer in place of the chat stream.
            const bridge = new ChatBridge({
              config,
              logger: member.logger,
              platform,
              respond: (chat, signal, onProgress) => responder.answer(chat, platform, signal, onProgress),
            });
            return [bridge];
          },
          member.logger,
        ),
      ),
    stop: () => life.stop(),
  };
}
