#!/usr/bin/env node
import { CALL_USAGE, runCall } from "./call.js";
import { runDemo } from "./demo.js";
import { SERVE_USAGE, runService } from "./serve.js";
import { runInspect } from "./status.js";
import { UP_USAGE, runUp } from "./up.js";
import { createLogger } from "../core/log.js";

const USAGE = `toolfleet — runs an LLM chat bot's tool calls across gateway, inference and tools tiers

Usage:
  toolfleet demo             run every example tool in process and print each call
  toolfleet call <tool> '<json args>' [--user ID] [--mode in_process|remote|shadow]
                             run one call through the inference tier's registry
  toolfleet tools [options]  start a tools-service worker
  toolfleet gateway [opts]   start a gateway: chat platform adapter (console or http) + execute_tool
  toolfleet inference [opts] start an inference worker: chat messages -> LLM tool loop -> answers
  toolfleet up [options]     start a whole fleet (gateway, inference, N tools workers) and a walk-through
  toolfleet status [--json]  live workers (from heartbeats), stream lengths, pending and dead-lettered counts
  toolfleet catalog [--json] the published tool catalog

Config comes from TOOLFLEET_* environment variables and the JSON file named by
TOOLFLEET_CONFIG; see the README's config reference.

${SERVE_USAGE}

${UP_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "demo":
      await runDemo(createLogger("toolfleet.demo", process.env.TOOLFLEET_LOG_LEVEL ?? "warn"));
      return 0;
    case "call":
      if (rest.includes("--help")) return usage(CALL_USAGE);
      return runCall(rest);
    case "tools":
    case "gateway":
    case "inference":
      if (rest.includes("--help")) return usage(SERVE_USAGE);
      // Once the worker has stopped, exit even if a tool module left its own connections open.
      return runService(command, rest).then(
        (code) => process.exit(code),
        (err: unknown) => {
          console.error(`toolfleet: ${err instanceof Error ? err.message : String(err)}`);
          process.exit(1);
        },
      );
    case "up":
      if (rest.includes("--help")) return usage(UP_USAGE);
      // Exit once the fleet is down, whatever handles the walk-through's libraries left behind.
      return runUp(rest).then(
        (code) => process.exit(code),
        (err: unknown) => {
          console.error(`toolfleet: ${err instanceof Error ? err.message : String(err)}`);
          process.exit(1);
        },
      );
    case "status":
    case "catalog":
      return runInspect(command, rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      return usage(USAGE);
    default:
      console.error(`toolfleet: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

function usage(text: string): number {
  console.log(text);
  return 0;
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
