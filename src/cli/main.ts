#!/usr/bin/env node
import { parseArgs } from "node:util";
import { LiveConfig } from "../config/live.js";
import { ToolContext } from "../core/context.js";
import { createLogger } from "../core/log.js";
import { runDemo } from "./demo.js";
import { exampleRegistry } from "./local.js";
import { TOOLS_USAGE, runToolsWorker } from "./tools.js";

const USAGE = `toolfleet — runs an LLM chat bot's tool calls across gateway, inference and tools tiers

Usage:
  toolfleet demo                                  run every example tool in process and print each call
  toolfleet call <tool> '<json args>' [--user ID] run one call in process and print its result
  toolfleet tools [options]                       start a tools-service worker (see toolfleet tools --help)

Config comes from TOOLFLEET_* environment variables and the JSON file named by
TOOLFLEET_CONFIG; see the README's config reference.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "demo":
      await runDemo(createLogger("toolfleet.demo", process.env.TOOLFLEET_LOG_LEVEL ?? "warn"));
      return 0;
    case "call":
      return call(rest);
    case "tools":
      if (rest.includes("--help")) {
        console.log(TOOLS_USAGE);
        return 0;
      }
      // Once the worker has stopped, exit even if a tool module left its own connections open.
      return runToolsWorker(rest).then((code) => process.exit(code));
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return 0;
    default:
      console.error(`toolfleet: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

async function call(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { user: { type: "string", default: "" } },
  });
  const [tool, json = "{}"] = positionals;
  if (!tool || positionals.length > 2) {
    console.error("usage: toolfleet call <tool> '<json args>' [--user ID]");
    return 2;
  }
  let args: unknown;
  try {
    args = JSON.parse(json);
  } catch (err) {
    console.error(`toolfleet call: the arguments are not valid JSON: ${(err as Error).message}`);
    return 2;
  }
  const logger = createLogger("toolfleet.call", process.env.TOOLFLEET_LOG_LEVEL ?? "warn");
  const config = new LiveConfig(logger);
  const registry = await exampleRegistry(config, logger);
  const ctx = new ToolContext({ platform: "cli", userId: values.user, userName: values.user });
  const outcome = await registry.execute(tool, args, { userId: values.user, ctx });
  console.log(outcome.text);
  for (const file of ctx.sentFiles) console.log(`[sent file] ${file.name} (${file.contentType}, ${file.data.length} bytes)`);
  if (ctx.injectedTools) console.log(`[injected tools] ${ctx.injectedTools.join(", ")}`);
  for (const message of ctx.sentRichMessages) console.log(`[rich message] ${JSON.stringify(message)}`);
  console.error(`route=${outcome.route} kind=${outcome.kind} ${outcome.durationMs.toFixed(2)} ms`);
  await registry.close();
  return outcome.kind === "ok" || outcome.kind === "background" ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // The operator needs what went wrong, not our stack; TOOLFLEET_LOG_LEVEL=debug shows it too.
    console.error(`toolfleet: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env.TOOLFLEET_LOG_LEVEL === "debug") console.error(err);
    process.exitCode = 1;
  },
);
