import { setTimeout as sleep } from "node:timers/promises";
import { staticConfig } from "../config/live.js";
import { defineConfig } from "../config/schema.js";
import { ToolContext, type PlatformAdapter } from "../core/context.js";
import type { Logger } from "../core/log.js";
import { exampleRegistry } from "../fleet/local.js";
import { type CallOutcome } from "../core/outcome.js";

interface Step {
  title: string;
  tool: string;
  args: unknown;
  user: string;
  ctx?: ToolContext;
}

/**
 * The embedded default: every example tool in this process, no Redis. Prints
 * each call with the route it took, its duration and its result.
 */
export async function runDemo(logger: Logger, out: (line: string) => void = console.log): Promise<void> {
  // A short background threshold so the slow tool shows offload within the demo.
  const config = staticConfig(defineConfig({ backgroundThreshold: 0.5 }));
  const registry = await exampleRegistry(config, logger);
  const gateway = await exampleRegistry(config, logger);
  // Stands in for the gateway process: it owns the platform client, so the
  // gateway-pinned tool runs there, and the inference side reaches it by delegation.
  const gatewayAdapter: PlatformAdapter = { platform: "console", ownsPlatformClient: true };
  const viaGateway: PlatformAdapter = {
    platform: "console",
    delegateToGateway: (_op, params, ctx) => {
      const remoteCtx = new ToolContext({ ...params.toolCtx, adapter: gatewayAdapter });
      return gateway.execute(params.toolName, params.toolArgs, { userId: params.toolCtx.userId, ctx: remoteCtx }).then(({ text, kind }) => {
        ctx.mergeWriteBack(remoteCtx);
        return { text, kind };
      });
    },
  };
  const chat = (user: string, adapter: PlatformAdapter | null = null): ToolContext =>
    new ToolContext({ platform: "console", channelId: "demo", userId: user, userName: user, messageId: "m1", adapter });
  const imageCtx = chat("alice");
  const injectCtx = chat("alice");

  out("toolfleet demo: in_process mode, every tool in this process, no Redis.\n");
  const steps: Step[] = [
    { title: "plain call", tool: "echo", args: { text: "hello, fleet" }, user: "alice" },
    { title: "typed args, object result", tool: "calculator", args: { a: 6, op: "multiply", b: 7 }, user: "alice" },
    { title: "JSON Schema tool", tool: "current_time", args: { timezone: "Europe/Paris" }, user: "alice" },
    { title: "sends a file", tool: "send_image", args: { width: 32, height: 32 }, user: "alice", ctx: imageCtx },
    { title: "injects a tool", tool: "inject_tool", args: { tool: "calculator" }, user: "alice", ctx: injectCtx },
    { title: "restricted, denied", tool: "admin_stats", args: {}, user: "alice" },
    { title: "restricted, allowed", tool: "admin_stats", args: {}, user: "admin" },
    { title: "bad arguments", tool: "echo", args: { text: 5, repeat: 0 }, user: "alice" },
    { title: "unknown tool", tool: "no_such_tool", args: {}, user: "alice" },
    { title: "gateway-pinned, no gateway", tool: "discord_react", args: { emoji: "👍" }, user: "alice" },
    { title: "gateway-pinned, delegated", tool: "discord_react", args: { emoji: "👍" }, user: "alice", ctx: chat("alice", viaGateway) },
    { title: "slow, offloaded", tool: "slow_task", args: { seconds: 1, label: "report" }, user: "alice" },
  ];
  let taskId: string | undefined;
  for (const step of steps) {
    const outcome = await registry.execute(step.tool, step.args, { userId: step.user, ctx: step.ctx ?? chat(step.user) });
    taskId ??= outcome.taskId;
    out(line(step, outcome));
  }
  out(`    sent files on the context: ${imageCtx.sentFiles.map((f) => `${f.name} ${f.contentType} ${f.data.length} bytes`).join(", ")}`);
  out(`    injected tools on the context: ${JSON.stringify(injectCtx.injectedTools)}`);
  if (taskId) {
    await sleep(1200);
    const fetched = await registry.execute("get_task_result", { task_id: taskId }, { userId: "alice", ctx: chat("alice") });
    out(line({ title: "background result", tool: "get_task_result", args: { task_id: taskId }, user: "alice" }, fetched));
  }
  await Promise.all([registry.close(), gateway.close()]);
  out('\nTry one call yourself:  npx toolfleet call calculator \'{"a":2,"op":"power","b":10}\' --user alice');
}

function line(step: Step, outcome: CallOutcome): string {
  const route = outcome.kind === "background" ? "local→background" : outcome.route;
  return formatCall(step.title, step.tool, route, outcome.durationMs, `[${outcome.kind}] ${outcome.text}`);
}

/** One call as the demo and the walk-through print it: what, where it ran, how long, what came back. */
export function formatCall(title: string, tool: string, route: string, durationMs: number, result: string): string {
  const shown = result.length > 120 ? `${result.slice(0, 117)}...` : result;
  return `• ${title.padEnd(28)} ${tool.padEnd(16)} route=${route.padEnd(16)} ${durationMs.toFixed(2).padStart(8)} ms  ${shown}`;
}
