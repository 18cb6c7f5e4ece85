import type { OpenAITool } from "../core/registry.js";
import type { ChatMessage, ChatModel, ModelTurn } from "./llm-loop.js";

const COMMAND = /^\/([A-Za-z0-9_-]{1,64})\s*([\s\S]*)$/;

/**
 * Slash commands as a model: a message like `/echo {"text":"hi"}` (several
 * separated by newlines or `;`) becomes tool calls of one turn, run through
 * the same loop, routing and tiers as a model's calls would be; the answer
 * lists what each tool returned. Any other message goes to `llm`, or, with no
 * LLM configured, gets an answer saying how to set one up. This is how the
 * fleet works, and is shown working, without an API key. With `commands`
 * off, every message goes to the LLM.
 */
export function withCommands(llm: ChatModel | null, commands = true): ChatModel {
  let callCount = 0;
  return {
    complete(messages, tools, signal): Promise<ModelTurn> {
      const at = lastUserText(messages);
      const text = at === -1 ? "" : (messages[at]?.content as string);
      if (!commands || !text.trimStart().startsWith("/")) {
        return llm ? llm.complete(messages, tools, signal) : Promise.resolve({ content: noModel(tools, commands), toolCalls: [] });
      }
      const after = messages.slice(at + 1);
      if (after.some((m) => m.role === "tool")) return Promise.resolve({ content: summary(after), toolCalls: [] });
      const offered = new Set(tools.map((t) => t.function.name));
      const toolCalls: ModelTurn["toolCalls"] = [];
      for (const part of text.trim().split(/\n|;\s*(?=\/)/)) {
        const command = COMMAND.exec(part.trim());
        if (!command)
          return Promise.resolve({ content: `I could not read '${part.trim()}' as a command: write /tool_name {"json":"arguments"}.`, toolCalls: [] });
        const [, name = "", args = ""] = command;
        if (name === "help") return Promise.resolve({ content: help(tools), toolCalls: [] });
        if (!offered.has(name)) return Promise.resolve({ content: `There is no tool '${name}' here. ${toolNames(tools)}`, toolCalls: [] });
        toolCalls.push({ id: `cmd_${++callCount}`, name, arguments: args.trim() || "{}" });
      }
      return Promise.resolve({ content: null, toolCalls });
    },
  };
}

function lastUserText(messages: ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role === "user" && typeof m.content === "string") return i;
  }
  return -1;
}

/** "name → result" for every tool call answered since the command. */
function summary(after: ChatMessage[]): string {
  const names = new Map<string, string>();
  const lines: string[] = [];
  for (const m of after) {
    if (m.role === "assistant") for (const call of m.tool_calls ?? []) if (call.type === "function") names.set(call.id, call.function.name);
    if (m.role === "tool") lines.push(`${names.get(m.tool_call_id) ?? "tool"} → ${typeof m.content === "string" ? m.content : JSON.stringify(m.content)}`);
  }
  return lines.join("\n");
}

/** Every tool with its arguments (from its JSON Schema) and description, one per line. */
function help(tools: OpenAITool[]): string {
  const lines = [...tools]
    .sort((a, b) => a.function.name.localeCompare(b.function.name))
    .map((t) => `/${t.function.name} ${argsLine(t.function.parameters)}${t.function.description ? ` — ${t.function.description}` : ""}`);
  return `Run a tool with /name {json args}, several separated by ';'. Tools:\n${lines.join("\n")}`;
}

function toolNames(tools: OpenAITool[]): string {
  return `Tools: ${tools
    .map((t) => t.function.name)
    .sort()
    .join(", ")}. /help lists their arguments.`;
}

type Schema = Record<string, unknown>;
const isSchema = (v: unknown): v is Schema => typeof v === "object" && v !== null && !Array.isArray(v);

/** `{a: number, op: "add"|"subtract", b?: integer 1..100 = 1}`: each argument, `?` when optional, its type, range and default. */
function argsLine(parameters: unknown): string {
  if (!isSchema(parameters) || !isSchema(parameters.properties)) return "{json}";
  const required = new Set(Array.isArray(parameters.required) ? parameters.required : []);
  const args = Object.entries(parameters.properties).map(([name, schema]) => `${name}${required.has(name) ? "" : "?"}: ${typeOf(schema)}`);
  return `{${args.join(", ")}}`;
}

function typeOf(schema: unknown, depth = 0): string {
  if (!isSchema(schema) || depth > 3) return "any";
  let type: string;
  if (Array.isArray(schema.enum)) type = schema.enum.length > 8 ? `${schema.enum.slice(0, 8).map(show).join("|")}|…` : schema.enum.map(show).join("|");
  else if ("const" in schema) type = show(schema.const);
  else if (Array.isArray(schema.anyOf) || Array.isArray(schema.oneOf))
    type = ((schema.anyOf ?? schema.oneOf) as unknown[]).map((s) => typeOf(s, depth + 1)).join("|");
  else if (schema.type === "array") type = `${typeOf(schema.items, depth + 1)}[]`;
  else if (Array.isArray(schema.type)) type = schema.type.join("|");
  else type = typeof schema.type === "string" ? schema.type : "any";
  const min = typeof schema.minimum === "number" ? schema.minimum : undefined;
  const max = typeof schema.maximum === "number" ? schema.maximum : undefined;
  if (min !== undefined && max !== undefined) type += ` ${min}..${max}`;
  else if (min !== undefined) type += ` ≥${min}`;
  else if (max !== undefined) type += ` ≤${max}`;
  if ("default" in schema) type += ` = ${show(schema.default)}`;
  return type;
}

function show(value: unknown): string {
  return JSON.stringify(value) ?? "null";
}

function noModel(tools: OpenAITool[], commands: boolean): string {
  if (!commands)
    return "No LLM is configured, and slash commands are off (TOOLFLEET_CHAT_COMMANDS), so I cannot answer. An operator needs to set TOOLFLEET_LLM_API_KEY.";
  return `No LLM is configured, so I only run slash commands. For live chat, set TOOLFLEET_LLM_API_KEY (an OpenRouter key by default; TOOLFLEET_LLM_BASE_URL and TOOLFLEET_LLM_MODEL pick another OpenAI-compatible API).\n\n${help(tools)}`;
}
