import { recordSpan } from "../core/tracing.js";
import type OpenAI from "openai";
import stringify from "safe-stable-stringify";
import { z } from "zod";
import type { ToolContext } from "../core/context.js";
import type { CallOutcome, OutcomeKind } from "../core/outcome.js";
import type { ProgressUpdate } from "../core/progress.js";
import { imageParts } from "../core/result.js";
import type { CallOptions } from "../core/registry.js";
import { errorFields, type Logger } from "../core/log.js";
import { openAITool, type OpenAITool, type ToolRegistryLike } from "../core/registry.js";
import { defineTool, type ToolDefinition } from "../core/tool.js";

/** A message of an OpenAI-compatible chat, as the loop builds them. */
export type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

export interface ModelTurn {
  content: string | null;
  toolCalls: { id: string; name: string; arguments: string }[];
}

/** The one thing the loop needs of an LLM: a chat completion with tools. */
export interface ChatModel {
  complete(messages: ChatMessage[], tools: OpenAITool[], signal?: AbortSignal): Promise<ModelTurn>;
}

export interface OpenAIModelOptions {
  /** @defaultValue "https://openrouter.ai/api/v1" */
  baseURL?: string;
  apiKey: string;
  model: string;
  /** @defaultValue 60000 */
  timeoutMs?: number;
  /** Retries of rate limits and server errors, by the client library. @defaultValue 2 */
  maxRetries?: number;
}

// The `openai` client, loaded at the first completion: a process that never talks to an LLM
// (a tools worker, a gateway) never loads it.
let openaiModule: typeof import("openai") | undefined;

/** An OpenAI-compatible chat endpoint (OpenRouter by default) through the `openai` client. */
export function openAIModel(options: OpenAIModelOptions): ChatModel {
  let client: OpenAI | undefined;
  return {
    async complete(messages, tools, signal) {
      if (!client) {
        openaiModule ??= await import("openai");
        client = new openaiModule.default({
          baseURL: options.baseURL ?? "https://openrouter.ai/api/v1",
          apiKey: options.apiKey,
          timeout: options.timeoutMs ?? 60_000,
          maxRetries: options.maxRetries ?? 2,
        });
      }
      const res = await client.chat.completions.create({ model: options.model, messages, ...(tools.length > 0 ? { tools } : {}) }, signal ? { signal } : {});
      const message = res.choices[0]?.message;
      if (!message) throw new Error("the model returned no choice");
      const toolCalls = (message.tool_calls ?? []).flatMap((c) =>
        c.type === "function" ? [{ id: c.id, name: c.function.name, arguments: c.function.arguments }] : [],
      );
      return { content: message.content ?? null, toolCalls };
    },
  };
}

export interface LoopOptions {
  model: ChatModel;
  registry: ToolRegistryLike;
  logger: Logger;
  userId: string;
  ctx: ToolContext;
  /** The tools the model may see (the disclosed subset); injected tools join it. */
  activeTools: Iterable<string>;
  /** Model turns before the loop stops asking. @defaultValue 8 */
  maxIterations?: number;
  /** However often extend_tool_loop is called, never more turns than this. @defaultValue 32 */
  hardIterationCap?: number;
  /** Inner loops (call_subagent) mark their tool calls nested. @defaultValue false */
  nested?: boolean;
  /** The chat's signal: it ends the loop, and cancels the tool calls running when it aborts. */
  signal?: AbortSignal;
  /** Hears the progress of the tools the loop runs (a chat shows it as a live line). */
  onProgress?: (tool: string, update: ProgressUpdate) => void;
}

/** One tool call of a loop, as the model asked for it and as it ended (where it ran, how long it took). */
export interface LoopToolCall {
  name: string;
  /** The arguments as the model sent them (JSON text, perhaps invalid). */
  arguments: string;
  outcome: CallOutcome;
  /** Made by a subagent (call_subagent's inner loop). */
  nested: boolean;
}

export interface LoopResult {
  text: string;
  iterations: number;
  toolCalls: number;
  /** Every call of the loop in the order the model asked for them; a subagent's calls follow its call_subagent. */
  calls: LoopToolCall[];
  /** Why it ended: the model answered, the iteration limit, the caller's signal, or an LLM failure. */
  ended: "answer" | "limit" | "stopped" | "llm_error";
}

/** The loop's own inference-pinned tools; the loop runs them itself (they steer the loop). */
export const LOOP_TOOLS: readonly ToolDefinition[] = [
  defineTool({
    name: "extend_tool_loop",
    description: "Ask for more tool-calling turns when the task needs them.",
    parameters: z.object({ turns: z.number().int().min(1).max(16) }),
    noBackground: true,
    handler: () => "extend_tool_loop only works inside a tool loop.",
  }),
  defineTool({
    name: "call_subagent",
    description: "Hand a self-contained sub-task to a helper that can use the same tools, and get its answer.",
    parameters: z.object({ task: z.string().min(1) }),
    noBackground: true,
    handler: () => "call_subagent only works inside a tool loop.",
  }),
];

/**
 * The LLM tool-calling loop: ask the model, run the tool calls of its turn
 * concurrently, feed back results, files (as image or file parts) and
 * injected tools, until it answers or the iteration limit is reached. An LLM
 * failure ends the loop with a clear answer, never a hang.
 */
export async function runToolLoop(messages: ChatMessage[], options: LoopOptions): Promise<LoopResult> {
  const active = new Set(options.activeTools);
  const repeatable = options.registry.repeatAllowedTools();
  const seen = new Set<string>();
  const cap = options.hardIterationCap ?? 32;
  let limit = Math.min(options.maxIterations ?? 8, cap);
  let toolCalls = 0;
  const calls: LoopToolCall[] = [];
  const nested = options.nested ?? false;
  let shownHashes = new Map<string, string | undefined>();
  for (let iteration = 1; iteration <= limit; iteration++) {
    if (options.signal?.aborted) {
      return { text: "Sorry — answering took too long and was stopped. Please try again.", iterations: iteration - 1, toolCalls, calls, ended: "stopped" };
    }
    let turn: ModelTurn;
    try {
      const offered = offeredTools(options.registry, active);
      // The schema of each tool as the model was shown it: its calls go to workers that run that schema (a rolling deploy).
      shownHashes = new Map(offered.map((t) => [t.function.name, options.registry.schemaHashOf?.(t.function.name)]));
      turn = await options.model.complete(messages, offered, options.signal);
    } catch (err) {
      options.logger.error({ iteration, ...errorFields(err) }, "LLM call failed");
      return { text: llmFailure(err), iterations: iteration, toolCalls, calls, ended: "llm_error" };
    }
    if (turn.toolCalls.length === 0) return { text: turn.content ?? "", iterations: iteration, toolCalls, calls, ended: "answer" };
    messages.push({
      role: "assistant",
      content: turn.content,
      tool_calls: turn.toolCalls.map((c) => ({ id: c.id, type: "function" as const, function: { name: c.name, arguments: c.arguments } })),
    });
    const filesBefore = options.ctx.sentFiles.length;
    const results = await Promise.all(
      turn.toolCalls.map(async (call): Promise<LoopToolCall[]> => {
        toolCalls++;
        const started = performance.now();
        // A call the loop answers itself ran here, on the loop's tier.
        const own = (kind: OutcomeKind, text: string): LoopToolCall[] => {
          recordSpan(`tool call ${call.name}`, kind, { "toolfleet.tool": call.name, "toolfleet.route": "local" });
          return [{ name: call.name, arguments: call.arguments, outcome: { kind, text, route: "local", durationMs: performance.now() - started }, nested }];
        };
        let args: unknown;
        try {
          args = call.arguments.trim() === "" ? {} : JSON.parse(call.arguments);
        } catch {
          // The model hears what was wrong and can send valid JSON next turn.
          return own("invalid_args", `Invalid arguments for tool '${call.name}': not valid JSON.`);
        }
        const key = `${call.name}\u0000${stringify(args) ?? ""}`;
        if (seen.has(key) && !repeatable.has(call.name)) {
          return own("denied", `Refused: '${call.name}' was already called with these exact arguments in this conversation turn; use its earlier result.`);
        }
        seen.add(key);
        if (call.name === "extend_tool_loop") {
          const turns = z.object({ turns: z.number().int().min(1).max(16) }).safeParse(args);
          if (!turns.success) return own("invalid_args", "Invalid arguments for tool 'extend_tool_loop': turns must be an integer from 1 to 16.");
          const before = limit;
          limit = Math.min(limit + turns.data.turns, cap);
          return own("ok", `The tool loop now allows ${limit} turns (was ${before}).`);
        }
        if (call.name === "call_subagent") {
          // One level only: a subagent that could start subagents would nest until the chat's deadline.
          if (options.nested) return own("denied", "Refused: 'call_subagent' cannot be called from inside a subagent; do the task with the other tools.");
          const task = z.object({ task: z.string().min(1) }).safeParse(args);
          if (!task.success) return own("invalid_args", "Invalid arguments for tool 'call_subagent': task must be a non-empty string.");
          const innerTools = [...active].filter((name) => name !== "call_subagent");
          const inner = await runToolLoop([{ role: "user", content: task.data.task }], {
            ...options,
            nested: true,
            activeTools: innerTools,
            maxIterations: Math.min(4, cap),
          });
          // The subagent's own calls follow it, so a reader sees what it did.
          return [...own(inner.ended === "answer" ? "ok" : "error", inner.text), ...inner.calls];
        }
        const schemaHash = shownHashes.get(call.name);
        const callOptions: CallOptions = { userId: options.userId, ctx: options.ctx, nested, ...(schemaHash ? { schemaHash } : {}) };
        if (options.signal) callOptions.signal = options.signal;
        const onProgress = options.onProgress;
        if (onProgress) callOptions.onProgress = (update) => onProgress(call.name, update);
        const outcome = await options.registry.execute(call.name, args, callOptions);
        return [{ name: call.name, arguments: call.arguments, outcome, nested }];
      }),
    );
    turn.toolCalls.forEach((call, i) => messages.push({ role: "tool", tool_call_id: call.id, content: results[i]?.[0]?.outcome.text ?? "" }));
    for (const r of results) calls.push(...r);
    const newFiles = options.ctx.sentFiles.slice(filesBefore);
    // Image parts of structured results: a tool message holds text only, so they follow as the user's, like sent files.
    const images = results.flatMap((r) => imageParts(r[0]?.outcome.result));
    if (newFiles.length > 0 || images.length > 0) {
      // The model sees what its tools sent: images as image parts, other files named.
      messages.push({
        role: "user",
        content: [
          ...newFiles.map((f) =>
            f.contentType.startsWith("image/")
              ? { type: "image_url" as const, image_url: { url: `data:${f.contentType};base64,${Buffer.from(f.data).toString("base64")}` } }
              : { type: "text" as const, text: `[file sent: ${f.name}, ${f.contentType}, ${f.data.byteLength} bytes]` },
          ),
          ...images.map((img) => ({ type: "image_url" as const, image_url: { url: `data:${img.mimeType};base64,${img.data}` } })),
        ],
      });
    }
    for (const name of options.ctx.injectedTools ?? []) active.add(name);
  }
  return {
    text: `I stopped after ${limit} rounds of tool calls without a final answer. Ask me to continue if you want me to keep going.`,
    iterations: limit,
    toolCalls,
    calls,
    ended: "limit",
  };
}

/** The active tools' definitions; the loop's own tools are offered even when the registry (a catalog) does not list them. */
function offeredTools(registry: ToolRegistryLike, active: ReadonlySet<string>): OpenAITool[] {
  const tools = registry.getOpenAIToolsByNames(active);
  const listed = new Set(tools.map((t) => t.function.name));
  for (const t of LOOP_TOOLS) if (active.has(t.name) && !listed.has(t.name)) tools.push(openAITool(t));
  return tools;
}

function llmFailure(err: unknown): string {
  // An error of the client's own kinds can only come once the client is loaded.
  const OpenAI = openaiModule?.default;
  if (!OpenAI) return "Sorry — the language model could not be reached. Please try again.";
  if (err instanceof OpenAI.RateLimitError) return "Sorry — the language model is rate-limited right now. Please try again in a moment.";
  if (err instanceof OpenAI.APIConnectionTimeoutError) return "Sorry — the language model did not answer in time. Please try again.";
  if (err instanceof OpenAI.AuthenticationError) return "Sorry — the language model refused our credentials; an operator needs to check the API key.";
  if (err instanceof OpenAI.APIError) return `Sorry — the language model returned an error (${err.status ?? "?"}). Please try again.`;
  return "Sorry — the language model could not be reached. Please try again.";
}
