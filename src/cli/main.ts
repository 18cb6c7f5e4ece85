#!/usr/bin/env node
import { ToolfleetError } from "../core/errors.js";
import { createLogger } from "../core/log.js";
import { helpText, packageVersion, parseCommand, type CommandSpec, type OptionSpec, type Parsed } from "./args.js";
import { CALL_COMMAND, runCall } from "./call.js";
import { runDemo } from "./demo.js";
import { GATEWAY_COMMAND, INFERENCE_COMMAND, TOOLS_COMMAND, runService } from "./serve.js";
import { runInspect } from "./status.js";
import { DASHBOARD_COMMAND, runDashboard } from "./dashboard.js";
import { MCP_COMMAND, runMcp } from "./mcp.js";
import { didYouMean } from "./suggest.js";
import { UP_COMMAND, runUp } from "./up.js";

const DEMO_COMMAND = {
  name: "demo",
  summary: "run every example tool in this process, once, and print each call",
  about: "Runs every example tool in this process (in_process mode, no Redis) and prints each call with the route it took, its duration and its result.",
  options: [],
} as const satisfies CommandSpec;

const INSPECT_OPTIONS = [
  {
    name: "redis",
    type: "string",
    value: "URL",
    defaultText: "the config's redisUrl",
    description: "the Redis the fleet runs on (with TOOLFLEET_REDIS_CLUSTER_NODES set, only its user, password and TLS count: the nodes are the cluster's)",
  },
  { name: "json", type: "boolean", default: false, description: "print JSON, for scripts" },
] as const satisfies readonly OptionSpec[];

const STATUS_COMMAND = {
  name: "status",
  summary: "live workers (from heartbeats), stream lengths, pending and dead-lettered counts",
  about:
    "Shows a running fleet: its live workers (from their heartbeats; a dead one is gone within ~6 s), what each has in flight, processed and dead-lettered, and each stream's length, pending and dead-lettered counts.",
  options: INSPECT_OPTIONS,
} as const satisfies CommandSpec;

const CATALOG_COMMAND = {
  name: "catalog",
  summary: "the published tool catalog",
  about: "Shows the tool catalog the tools workers published: each tool, its flags and schema hash, and who may run it.",
  options: INSPECT_OPTIONS,
} as const satisfies CommandSpec;

interface Command {
  spec: CommandSpec;
  /** A long-running command exits once done, whatever handles a tool module or a library left open. */
  exitWhenDone: boolean;
  run(argv: string[]): Promise<number>;
}

/** Ties a command's option table to its code: the arguments it gets are parsed by that table, and --help prints it. */
function command<O extends readonly OptionSpec[]>(spec: CommandSpec<O>, run: (parsed: Parsed<O>) => Promise<number>, exitWhenDone = false): Command {
  return {
    spec,
    exitWhenDone,
    run: async (argv) => {
      const parsed = parseCommand(spec, argv);
      if (parsed.action === "help") return print(helpText(spec));
      if (parsed.action === "version") return print(packageVersion());
      // Set for every logger this process makes, and for the processes `up` starts.
      if (parsed.logFormat !== undefined) process.env.TOOLFLEET_LOG_FORMAT = parsed.logFormat;
      return run(parsed);
    },
  };
}

const COMMANDS: Command[] = [
  command(DEMO_COMMAND, async () => {
    await runDemo(createLogger("toolfleet.demo", process.env.TOOLFLEET_LOG_LEVEL ?? "warn"));
    return 0;
  }),
  command(CALL_COMMAND, runCall),
  command(TOOLS_COMMAND, (parsed) => runService("tools", parsed), true),
  command(GATEWAY_COMMAND, (parsed) => runService("gateway", parsed), true),
  command(INFERENCE_COMMAND, (parsed) => runService("inference", parsed), true),
  command(UP_COMMAND, (parsed) => runUp(parsed), true),
  command(STATUS_COMMAND, (parsed) => runInspect("status", parsed)),
  command(CATALOG_COMMAND, (parsed) => runInspect("catalog", parsed)),
  command(DASHBOARD_COMMAND, (parsed) => runDashboard(parsed), true),
  command(MCP_COMMAND, (parsed) => runMcp(parsed), true),
];

function usage(): string {
  const rows = COMMANDS.map(({ spec }) => ({ left: `${spec.name}${spec.args ? ` ${spec.args}` : ""}`, summary: spec.summary }));
  const column = Math.max(...rows.map((r) => r.left.length)) + 2;
  return [
    "toolfleet — runs an LLM chat bot's tool calls across gateway, inference and tools tiers",
    "",
    "Usage: toolfleet <command> [arguments] [options]",
    "",
    "Commands:",
    ...rows.map((r) => `  ${r.left.padEnd(column)}${r.summary}`),
    "",
    "Every command takes --help (its own options), --version and --log-format json|pretty;",
    "`toolfleet help <command>` is `toolfleet <command> --help`.",
    "",
    "Config comes from TOOLFLEET_* environment variables and the JSON file named by",
    "TOOLFLEET_CONFIG; see the README's config reference.",
  ].join("\n");
}

function print(text: string): number {
  console.log(text);
  return 0;
}

function unknownCommand(name: string): number {
  const what = name.startsWith("-") ? "option" : "command";
  const hint = didYouMean(name, name.startsWith("-") ? ["--help", "--version"] : COMMANDS.map((c) => c.spec.name));
  console.error(`toolfleet: unknown ${what} '${name}'${hint}\nRun 'toolfleet --help' for the commands.`);
  return 2;
}

let exitWhenDone = false;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") return print(usage());
  if (name === "--version") return print(packageVersion());
  if (name === "help") {
    if (rest[0] === undefined) return print(usage());
    const spec = COMMANDS.find((c) => c.spec.name === rest[0])?.spec;
    return spec ? print(helpText(spec)) : unknownCommand(rest[0]);
  }
  const cmd = COMMANDS.find((c) => c.spec.name === name);
  if (!cmd) return unknownCommand(name);
  exitWhenDone = cmd.exitWhenDone;
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (!(err instanceof ToolfleetError && err.code === "USAGE")) throw err;
    console.error(`toolfleet ${name}: ${err.message}\nRun 'toolfleet ${name} --help' for its usage.`);
    return 2;
  }
}

function done(code: number): void {
  if (exitWhenDone) process.exit(code);
  process.exitCode = code;
}

main(process.argv.slice(2)).then(done, (err: unknown) => {
  // The operator needs what went wrong, not our stack; TOOLFLEET_LOG_LEVEL=debug shows it too.
  console.error(`toolfleet: ${err instanceof Error ? err.message : String(err)}`);
  if (process.env.TOOLFLEET_LOG_LEVEL === "debug") console.error(err);
  done(1);
});
