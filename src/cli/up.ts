import { spawn, type ChildProcess } from "node:child_process";
import { hostname } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { LiveConfig, type ConfigSource } from "../config/live.js";
import { describeRedis, redactRedisUrl } from "../config/schema.js";
import { ToolfleetError } from "../core/errors.js";
import { createLogger, errorFields, logFormat, type Logger } from "../core/log.js";
import { startTelemetry } from "./telemetry.js";
import { HttpChatAdapter } from "../gateway/http-adapter.js";
import { describeModel } from "../inference/chat-responder.js";
import { probeFleetRedis } from "../redis/client.js";
import { loadToolModule } from "../fleet/load-tools.js";
import { createCaller } from "../fleet/caller.js";
import { createInProcessFleet } from "../fleet/in-process.js";
import { withDiscordTools } from "../gateway/discord/tools.js";
import { DEFAULT_PORT, discordAdapter, port, type ReadyMessage, type ServiceKind } from "./serve.js";
import type { CommandSpec, Parsed, Values } from "./args.js";
import { untilStopSignal } from "./signals.js";
import { runWalkthrough } from "./walkthrough.js";

export const UP_COMMAND = {
  name: "up",
  summary: "start a whole fleet (gateway, inference, N tools workers), optionally with a walk-through",
  about:
    "Starts a whole fleet: a gateway (web chat, or a Discord bot with --adapter discord), an inference worker and N tools workers as child processes against one Redis; in one process when Redis does not answer. Their log lines come out prefixed with the member's name ([tools-1] ...).",
  options: [
    { name: "tools-workers", type: "string", value: "N", default: "2", description: "tools workers to start (1-64)" },
    {
      name: "adapter",
      type: "string",
      choices: ["http", "discord"],
      default: "http",
      description: "the chat platform: http (a web chat page) or discord (a Discord bot: TOOLFLEET_DISCORD_TOKEN)",
    },
    { name: "host", type: "string", value: "HOST", default: "127.0.0.1", description: "the web chat's address" },
    { name: "port", type: "string", value: "N", defaultText: String(DEFAULT_PORT), description: "the web chat's port; 0 picks a free one" },
    {
      name: "tools",
      type: "string",
      value: "MODULE",
      defaultText: "the example tools",
      description: "a module exporting 'tools' (and optionally 'permissions')",
    },
    { name: "in-process", type: "boolean", description: "one process, no Redis, even when Redis answers" },
    { name: "walkthrough", type: "boolean", description: "once ready, route example calls through every tier and print each" },
    { name: "exit-after-walkthrough", type: "boolean", description: "stop the fleet after the walk-through (for scripts)" },
  ],
  notes: "Ctrl-C stops every process of the fleet.",
} as const satisfies CommandSpec;

const DISCORD_CHAT = "on Discord: DM the bot, mention it, or write in a channel of TOOLFLEET_DISCORD_CHANNELS";
const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
const READY_TIMEOUT_MS = 30_000;
// Longer than a worker's own graceful stop (30 s of draining, then 2 s), so a busy one is not cut short.
const STOP_TIMEOUT_MS = 40_000;

interface Options {
  toolsWorkers: number;
  adapter: "http" | "discord";
  host: string;
  port: number;
  tools: string | undefined;
  walkthrough: boolean;
  exitAfter: boolean;
}

function parse(values: Values<(typeof UP_COMMAND)["options"]>): { options: Options; inProcess: boolean } {
  const workers = Number(values["tools-workers"]);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64)
    throw new ToolfleetError("USAGE", `--tools-workers: expected 1-64, got '${values["tools-workers"]}'`);
  const exitAfter = values["exit-after-walkthrough"] ?? false;
  const adapter = values.adapter === "discord" ? "discord" : "http";
  if (adapter === "discord" && (values.walkthrough || exitAfter))
    throw new ToolfleetError("USAGE", "the walk-through runs on the web chat: leave out --adapter discord");
  // Its calls are the example tools' (echo, send_image, discord_react …): against other tools every one would fail.
  if (values.tools !== undefined && (values.walkthrough || exitAfter))
    throw new ToolfleetError("USAGE", "the walk-through calls the example tools: leave out --tools (or --walkthrough)");
  return {
    options: {
      toolsWorkers: workers,
      adapter,
      host: values.host,
      port: port("port", values.port),
      tools: values.tools,
      walkthrough: (values.walkthrough ?? false) || exitAfter,
      exitAfter,
    },
    inProcess: values["in-process"] ?? false,
  };
}

/** `toolfleet up`: the fleet, distributed when Redis answers, else in this one process (saying so). */
export async function runUp({ values }: Parsed<(typeof UP_COMMAND)["options"]>, out: (line: string) => void = console.log): Promise<number> {
  const { options, inProcess } = parse(values);
  const logger = createLogger("toolfleet.up", process.env.TOOLFLEET_LOG_LEVEL ?? "warn");
  const config = new LiveConfig(logger);
  try {
    // Checked here, before any process starts: a Discord fleet without its token cannot work.
    if (options.adapter === "discord") discordAdapter(config.get(), logger);
    const url = config.get().redisUrl;
    if (inProcess) return await runInProcess(options, config, logger, out, "--in-process was given");
    // On a cluster, any of its listed nodes answering is what tells a fleet can start there.
    const nodes = config.get().redisClusterNodes;
    const down = await probeFleetRedis(url, nodes);
    if (down !== null)
      return await runInProcess(
        options,
        config,
        logger,
        out,
        `${nodes.length > 0 ? describeRedis(url, nodes) : `Redis at ${redactRedisUrl(url)}`} does not answer (${down})`,
      );
    return await runDistributed(options, config, logger, out);
  } finally {
    config.close();
  }
}

// ── distributed ───────────────────────────────────────────────────────────

interface Member {
  name: string;
  kind: ServiceKind;
  proc: ChildProcess;
  ready: Promise<ReadyMessage>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function runDistributed(options: Options, config: ConfigSource, logger: Logger, out: (line: string) => void): Promise<number> {
  const c = config.get();
  const fleetId = `up-${hostname()
    .replace(/[^A-Za-z0-9_.-]/g, "_")
    .slice(0, 40)}-${process.pid}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // A fleet sends tools to its tools workers, and its task results must be readable from any worker.
    TOOLFLEET_TOOLS_SERVICE_MODE: c.toolsServiceMode === "in_process" ? "remote" : c.toolsServiceMode,
    TOOLFLEET_TASK_STORE: process.env.TOOLFLEET_TASK_STORE || "redis",
    TOOLFLEET_LOG_LEVEL: process.env.TOOLFLEET_LOG_LEVEL ?? "warn",
    // The members' log lines end up on this process's stdout, prefixed: they take the format that suits where that goes.
    TOOLFLEET_LOG_FORMAT: logFormat(process.env.TOOLFLEET_LOG_FORMAT, process.stdout.isTTY === true),
    // Tells each worker that this process decides when it stops (see untilSupervisorStops).
    TOOLFLEET_SUPERVISED: "1",
  };
  // From the first child on, Ctrl-C or SIGTERM stops the whole fleet, whatever stage it is at.
  let signalled = false;
  const stopSignal = untilStopSignal(logger, "fleet").then((signal) => {
    signalled = true;
    return signal;
  });
  const toolsArg = options.tools ? ["--tools", options.tools] : [];
  out(
    `toolfleet up: a distributed fleet on ${describeRedis(c.redisUrl, c.redisClusterNodes)} (namespace ${c.namespace}): 1 gateway, 1 inference worker, ${options.toolsWorkers} tools worker${options.toolsWorkers === 1 ? "" : "s"}`,
  );
  const members: Member[] = [];
  // Only the gateway holds the platform client: the other members never get the Discord token.
  const envWithoutToken = { ...env };
  delete envWithoutToken.TOOLFLEET_DISCORD_TOKEN;
  const start = (name: string, kind: ServiceKind, args: string[]): void => {
    members.push(spawnMember(name, kind, ["--worker-id", `${fleetId}-${name}`, ...args], kind === "gateway" ? env : envWithoutToken, out));
  };
  let stopping = false;
  // The reverse of the start: the gateway and the inference worker finish their chats while the tools workers
  // still serve their calls, and nobody sees the tools workers leave (and warns of it) on the way out.
  const stopAll = async (): Promise<void> => {
    stopping = true;
    const isTools = (m: Member): boolean => m.kind === "tools";
    await Promise.all(members.filter((m) => !isTools(m)).map((m) => stopMember(m, out)));
    await Promise.all(members.filter(isTools).map((m) => stopMember(m, out)));
  };
  // Tools workers first: they publish the catalog the inference worker loads, and serve what the gateway needs.
  const startup = async (): Promise<ReadyMessage[]> => {
    for (let i = 1; i <= options.toolsWorkers; i++) start(`tools-${i}`, "tools", toolsArg);
    await Promise.all(members.map((m) => m.ready));
    if (stopping) throw new Error("stopped while starting"); // a signal or the timeout came first: start nothing more
    const platformArgs =
      options.adapter === "discord" ? ["--adapter", "discord"] : ["--adapter", "http", "--host", options.host, "--port", String(options.port)];
    start("gateway", "gateway", [...platformArgs, ...toolsArg]);
    start("inference", "inference", []);
    return Promise.all(members.map((m) => m.ready));
  };
  let readies: ReadyMessage[];
  try {
    readies = await Promise.race([
      startup(),
      stopSignal.then((signal) => Promise.reject(new Error(`${signal} while starting`))),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`the fleet was not ready within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS).unref(),
      ),
    ]);
  } catch (err) {
    out(`[up] could not start the fleet: ${(err as Error).message}; stopping it`);
    await stopAll();
    return 1;
  }
  // From here a member that dies: tools workers are a pool (the rest carry on); without a gateway or an inference worker there is no fleet.
  const failed = new Promise<string>((resolve) => {
    for (const m of members) {
      void m.exit.then(({ code, signal }) => {
        if (stopping) return;
        const left = members.filter((x) => x.kind === "tools" && !hasExited(x.proc)).length;
        const how = signal ? `signal ${signal}` : `code ${code}`;
        if (m.kind === "tools" && left > 0) {
          out(`[up] ${m.name} exited (${how}); ${left} of ${options.toolsWorkers} tools workers left, the fleet carries on`);
          return;
        }
        resolve(`${m.name} exited (${how})`);
      });
    }
  });
  const chatUrl = readies.find((r) => r.kind === "gateway")?.url ?? "";
  out(`\nfleet ready: ${members.length} processes (pids ${readies.map((r) => r.pid).join(", ")})`);
  out(`  chat: ${options.adapter === "discord" ? DISCORD_CHAT : chatUrl}`);
  out(`  model: ${describeModel(config)}`);
  out("  see it: npx toolfleet status · stop it: Ctrl-C");

  if (options.walkthrough) {
    const ok = await Promise.race([walkDistributed(config, logger, fleetId, chatUrl, out), stopSignal.then(() => false)]);
    if (options.exitAfter || signalled) {
      await stopAll();
      out("[up] fleet stopped");
      return ok || signalled ? 0 : 1;
    }
    out(`\nThe fleet keeps running: chat at ${chatUrl} · Ctrl-C stops it.`);
  }

  const outcome = await Promise.race([stopSignal.then(() => null), failed]);
  if (outcome !== null) out(`[up] ${outcome}: the fleet cannot work without it; stopping every process`);
  await stopAll();
  out("[up] fleet stopped");
  return outcome === null ? 0 : 1;
}

function spawnMember(name: string, kind: ServiceKind, args: string[], env: NodeJS.ProcessEnv, out: (line: string) => void): Member {
  const proc = spawn(process.execPath, [MAIN, kind, ...args], { stdio: ["ignore", "pipe", "pipe", "ipc"], env });
  for (const stream of [proc.stdout, proc.stderr]) {
    if (stream) createInterface({ input: stream }).on("line", (line) => out(`[${name}] ${line}`));
  }
  const member: Member = {
    name,
    kind,
    proc,
    ready: new Promise<ReadyMessage>((resolve, reject) => {
      proc.on("message", (msg: Partial<ReadyMessage>) => {
        if (msg.type === "ready") resolve(msg as ReadyMessage);
      });
      proc.once("exit", () => reject(new Error(`${name} exited before it was ready`)));
    }),
    exit: new Promise((resolve) => {
      proc.once("exit", (code, signal) => resolve({ code, signal }));
    }),
  };
  member.ready.catch(() => undefined); // reported through the race in runDistributed
  proc.once("error", (err) => out(`[up] ${name} could not be started: ${err.message}`));
  return member;
}

const hasExited = (proc: ChildProcess): boolean => proc.exitCode !== null || proc.signalCode !== null;

async function stopMember(m: Member, out: (line: string) => void): Promise<void> {
  if (hasExited(m.proc)) return;
  m.proc.kill("SIGTERM");
  const timer = setTimeout(() => {
    out(`[up] ${m.name} did not stop within ${STOP_TIMEOUT_MS / 1000} s; killing it`);
    m.proc.kill("SIGKILL");
  }, STOP_TIMEOUT_MS);
  await m.exit;
  clearTimeout(timer);
}

async function walkDistributed(config: ConfigSource, logger: Logger, fleetId: string, chatUrl: string, out: (line: string) => void): Promise<boolean> {
  const remoteConfig: ConfigSource = { get: () => ({ ...config.get(), toolsServiceMode: "remote" }) };
  const caller = createCaller({ config: remoteConfig, logger, workerId: `${fleetId}-walkthrough` });
  try {
    await caller.start();
    const { registry } = caller;
    await runWalkthrough({
      execute: (name, args, options) => registry.execute(name, args, options),
      adapter: caller.gatewayAdapter("web"),
      chatUrl,
      out,
      chatPath: "web chat → gateway → chat stream → inference (tool loop → tools service, gateway, in process) → gateway → web chat",
    });
    return true;
  } catch (err) {
    out(`[up] the walk-through failed: ${err instanceof Error ? err.message : String(err)}`);
    logger.error({ ...errorFields(err) }, "walk-through failed");
    return false;
  } finally {
    await caller.stop();
  }
}

// ── one process ───────────────────────────────────────────────────────────

async function runInProcess(options: Options, config: ConfigSource, logger: Logger, out: (line: string) => void, why: string): Promise<number> {
  out(`toolfleet up: ${why}, so the whole fleet runs in this one process (in_process mode, no Redis): web chat, tool loop and every tool here.`);
  // Traced as the distributed fleet's processes are, when the OTel variables ask for it (src/cli/telemetry.ts).
  const stopTelemetry = await startTelemetry("fleet", logger);
  try {
    const module = await loadToolModule(options.tools);
    const http =
      options.adapter === "http"
        ? new HttpChatAdapter({ logger, host: options.host, port: options.port, ...(config.get().webSecret ? { secret: config.get().webSecret } : {}) })
        : undefined;
    const platform = http ?? discordAdapter(config.get(), logger);
    const tools = http ? module.tools : withDiscordTools(module.tools);
    const fleet = createInProcessFleet({ config, logger, platform, tools, permissions: module.permissions });
    const { registry } = fleet;
    await fleet.start();
    out(`\nfleet ready: 1 process (pid ${process.pid})`);
    out(`  chat: ${http ? http.url : DISCORD_CHAT}`);
    out(`  model: ${describeModel(config)}`);
    out("  stop it: Ctrl-C");
    let ok = true;
    if (options.walkthrough && http) {
      try {
        await runWalkthrough({
          execute: (name, args, options) => registry.execute(name, args, options),
          adapter: http,
          chatUrl: http.url,
          out,
          chatPath: "web chat → tool loop → every tool in this process → web chat",
        });
      } catch (err) {
        ok = false;
        out(`[up] the walk-through failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (!options.exitAfter) out(`\nThe fleet keeps running: chat at ${http.url} · Ctrl-C stops it.`);
    }
    if (!options.exitAfter) await untilStopSignal(logger, "fleet");
    await fleet.stop();
    out("[up] fleet stopped");
    return ok ? 0 : 1;
  } finally {
    await stopTelemetry?.();
  }
}
