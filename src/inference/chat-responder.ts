import type { ConfigSource } from "../config/live.js";
import { ToolContext, type PlatformAdapter, type ToolCallIdentity } from "../core/context.js";
import type { Logger } from "../core/log.js";
import type { ToolRegistryLike } from "../core/registry.js";
import { boundCallDetails, type ChatReply, type HistoryTurn } from "../chat/codec.js";
import { withCommands } from "./command-model.js";
import type { ChatProgress } from "../chat/client.js";
import type { ProgressUpdate } from "../core/progress.js";
import { LOOP_TOOLS, openAIModel, runToolLoop, type ChatMessage, type ChatModel } from "./llm-loop.js";

export interface ChatTurn {
  /** The message's fleet-wide id: the trace id of its tool calls. */
  id: string;
  identity: ToolCallIdentity;
  text: string;
  history: readonly HistoryTurn[];
}

export interface ChatResponderOptions {
  registry: ToolRegistryLike;
  config: ConfigSource;
  logger: Logger;
  /** @defaultValue the configured LLM (none without an API key), behind slash commands */
  model?: ChatModel;
  /** The tools shown to the model for a user; injected tools join during the loop. @defaultValue every tool, plus the loop's own */
  disclosedTools?: (identity: ToolCallIdentity) => Iterable<string>;
  /** @defaultValue a short prompt naming the platform */
  systemPrompt?: (identity: ToolCallIdentity) => string;
}

/** The configured model: the LLM when a key is set, behind slash commands either way. */
function configuredModel(config: ConfigSource): ChatModel {
  const c = config.get();
  const llm = c.llmApiKey ? openAIModel({ baseURL: c.llmBaseUrl, apiKey: c.llmApiKey, model: c.llmModel, timeoutMs: c.llmTimeout * 1000 }) : null;
  return withCommands(llm, c.chatCommands);
}

/** One line saying which model answers, for ready lines (never the key). */
export function describeModel(config: ConfigSource): string {
  const c = config.get();
  return c.llmApiKey ? `LLM ${c.llmModel} at ${c.llmBaseUrl}` : "no LLM key (slash commands only; set TOOLFLEET_LLM_API_KEY for live chat)";
}

/**
 * Answers one chat message the way the inference tier does everywhere: the
 * tool loop over the registry (which routes each call to its tier), with a
 * context carrying the authenticated identity and the platform adapter;
 * what the tools sent comes back with the text.
 */
export class ChatResponder {
  constructor(private readonly options: ChatResponderOptions) {}

  /** `signal` ends the loop and cancels its running tools; `onProgress` hears their progress. */
  async answer(turn: ChatTurn, adapter: PlatformAdapter | null, signal?: AbortSignal, onProgress?: (progress: ChatProgress) => void): Promise<ChatReply> {
    const ctx = new ToolContext({ ...turn.identity, observabilityRequestId: turn.id, adapter, ...(signal ? { signal } : {}) });
    const messages: ChatMessage[] = [
      { role: "system", content: this.options.systemPrompt?.(turn.identity) ?? defaultPrompt(turn.identity) },
      ...turn.history.map((h): ChatMessage => ({ role: h.role, content: h.text })),
      { role: "user", content: turn.text },
    ];
    const disclosed = this.options.disclosedTools?.(turn.identity) ?? [...this.options.registry.toolNames(), ...LOOP_TOOLS.map((t) => t.name)];
    const result = await runToolLoop(messages, {
      // Built per message from the live config, so a changed key, model or switch applies to the next one.
      model: this.options.model ?? configuredModel(this.options.config),
      registry: this.options.registry,
      logger: this.options.logger,
      userId: turn.identity.userId,
      ctx,
      activeTools: disclosed,
      maxIterations: this.options.config.get().llmMaxIterations,
      ...(signal ? { signal } : {}),
      ...(onProgress ? { onProgress: (tool: string, update: ProgressUpdate) => onProgress({ ...update, tool }) } : {}),
    });
    const toolCallsDetail = boundCallDetails(
      result.calls.map((c) => ({
        name: c.name,
        route: c.outcome.route,
        kind: c.outcome.kind,
        durationMs: c.outcome.durationMs,
        args: c.arguments,
        result: c.outcome.text,
        nested: c.nested,
      })),
    );
    return { text: result.text, files: ctx.sentFiles, richMessages: ctx.sentRichMessages, ended: result.ended, toolCalls: result.toolCalls, toolCallsDetail };
  }
}

function defaultPrompt(identity: ToolCallIdentity): string {
  return `You are a helpful assistant in a chat on ${identity.platform || "a chat platform"}, talking with ${identity.userName || identity.userId}. Use the tools when they help; files and images your tools send reach the user by themselves.`;
}
