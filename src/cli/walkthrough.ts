import { ToolContext, type PlatformAdapter } from "../core/context.js";
import type { CallOptions } from "../core/registry.js";
import { formatCall } from "./demo.js";
import { WebChatClient } from "./web-client.js";

/** Runs one call and says where it ran: the inference registry's `execute` (remote or local). */
export type Execute = (name: string, args: unknown, options: CallOptions) => Promise<{ text: string; route: string; durationMs: number }>;

export interface WalkthroughOptions {
  execute: Execute;
  /** The platform as the inference tier sees it: a proxy to the gateway, or the live one in one process. */
  adapter: PlatformAdapter;
  chatUrl: string;
  /** How a chat message travels, for the summary line. */
  chatPath: string;
  out: (line: string) => void;
}

/** The message the walk-through sends through the chat: one tool of each tier in one turn. */
const WALKTHROUGH_CHAT =
  '/echo {"text":"through every tier"}; /discord_react {"emoji":"🚀"}; /extend_tool_loop {"turns":2}; /send_image {"width":16,"height":16}';

/**
 * Shows the fleet working with no LLM key: example calls routed by the
 * inference tier's registry (each printed with its route, latency and
 * result), then one chat message through the web chat, as a browser sends
 * it, that needs a tools-service tool, a gateway-pinned tool and an
 * inference-pinned tool.
 */
export async function runWalkthrough(options: WalkthroughOptions): Promise<void> {
  const ctx = (): ToolContext =>
    new ToolContext({
      platform: options.adapter.platform,
      channelId: "walkthrough",
      userId: "alice",
      userName: "alice",
      messageId: "walk-1",
      adapter: options.adapter,
    });
  const fileCtx = ctx();
  const steps: { title: string; tool: string; args: unknown; user?: string; ctx?: ToolContext }[] = [
    { title: "tools service", tool: "echo", args: { text: "hello, fleet" } },
    { title: "typed args, object result", tool: "calculator", args: { a: 6, op: "multiply", b: 7 } },
    { title: "a file comes back", tool: "send_image", args: { width: 32, height: 32 }, ctx: fileCtx },
    { title: "gateway-pinned", tool: "discord_react", args: { emoji: "👍" } },
    { title: "permission denied", tool: "admin_stats", args: {} },
    { title: "permission granted", tool: "admin_stats", args: {}, user: "admin" },
  ];
  options.out("\nWalk-through: calls routed by the inference tier's registry");
  for (const step of steps) {
    const user = step.user ?? "alice";
    const c = step.ctx ?? ctx();
    c.userId = user;
    try {
      const outcome = await options.execute(step.tool, step.args, { userId: user, ctx: c });
      options.out(formatCall(step.title, step.tool, outcome.route, outcome.durationMs, outcome.text));
    } catch (err) {
      options.out(formatCall(step.title, step.tool, "failed", 0, err instanceof Error ? err.message : String(err)));
    }
  }
  options.out(`    the file on the caller's context: ${fileCtx.sentFiles.map((f) => `${f.name} (${f.contentType}, ${f.data.byteLength} bytes)`).join(", ")}`);

  options.out(`\nWalk-through: a chat message through the web chat at ${options.chatUrl}`);
  options.out(`  you> ${WALKTHROUGH_CHAT}`);
  const client = await WebChatClient.open(options.chatUrl);
  try {
    const started = performance.now();
    const { messageId, answer } = await client.ask(WALKTHROUGH_CHAT);
    const ms = performance.now() - started;
    for (const [i, text] of answer.text.split("\n").entries()) options.out(`  ${i === 0 ? "bot>" : "    "} ${text}`);
    // (Its URL is this walk-through's own: files are served only to the user they were sent to.)
    for (const f of answer.files) options.out(`       [file] ${f.name} ${f.contentType} ${f.size} bytes`);
    const reactions = client.reactions.filter((r) => r.messageId === messageId).map((r) => r.emoji);
    if (reactions.length > 0) options.out(`       [reaction on your message] ${reactions.join(" ")}`);
    options.out(`  answered in ${ms.toFixed(1)} ms: ${options.chatPath}`);
  } finally {
    client.close();
  }
}
