import { userInfo } from "node:os";
import { LiveConfig } from "../config/live.js";
import { TOOLS_SERVICE_MODES, type ToolsServiceMode } from "../config/schema.js";
import { ToolContext } from "../core/context.js";
import { createLogger } from "../core/log.js";
import { isFailure } from "../core/outcome.js";
import { createCaller } from "../fleet/caller.js";
import { loadToolModule } from "../fleet/load-tools.js";
import { registryFor } from "../fleet/local.js";
import { usageError, type CommandSpec, type Parsed } from "./args.js";
import { progressLine, type ProgressUpdate } from "../core/progress.js";
import { didYouMean } from "./suggest.js";

/** Who a call runs as without --user: the OS user, so permissions and task lists mean someone; "cli" where there is none. */
export function defaultUser(): string {
  try {
    const name = userInfo().username.trim();
    if (name) return name;
  } catch {
    // No passwd entry for this uid (a container's arbitrary uid): fall through to the fixed name.
  }
  return "cli";
}

export const CALL_COMMAND = {
  name: "call",
  summary: "run one tool call through the inference tier's registry and print its result",
  args: "<tool> ['<json args>']",
  positionals: { min: 1, max: 2 },
  about:
    "Runs one tool call through the inference tier's registry: in this process by default, through the tools service and the gateway with --mode remote. Prints the result on stdout, the mode, route and duration on stderr; exits 0 when the call succeeded, 1 when it did not. A long call run in this process is waited for to its end (backgroundThreshold does not apply here: a background task would die with the command; a tools worker applies its own). The arguments are a JSON object ({} when left out).",
  options: [
    {
      name: "user",
      type: "string",
      value: "ID",
      default: defaultUser(),
      description: "the user the call runs as, for permissions and background tasks; your OS user name, or 'cli' when there is none",
    },
    { name: "mode", type: "string", choices: TOOLS_SERVICE_MODES, defaultText: "the config's toolsServiceMode", description: "where the call runs" },
    {
      name: "tools",
      type: "string",
      value: "MODULE",
      defaultText: "the example tools",
      description: "a module exporting 'tools' (and optionally 'permissions') to load into this process: in_process mode runs its tools here",
    },
  ],
  notes: `Example: toolfleet call calculator '{"a":2,"op":"power","b":10}' --user alice`,
} as const satisfies CommandSpec;

type CallOptions = (typeof CALL_COMMAND)["options"];

/**
 * One call through the inference tier's registry: in process by default,
 * through the tools service and gateway with --mode remote. Prints the
 * result on stdout, and the route and duration on stderr.
 */
export async function runCall({ values, positionals }: Parsed<CallOptions>): Promise<number> {
  const [tool = "", json = "{}"] = positionals;
  // An empty id would match no permission list and own no tasks; say so rather than run as nobody.
  if (!values.user.trim()) throw usageError("--user: expected a user id, got an empty one");
  let args: unknown;
  try {
    args = JSON.parse(json);
  } catch (err) {
    throw usageError(`the arguments are not valid JSON: ${(err as Error).message}`);
  }
  const logger = createLogger("toolfleet.call", process.env.TOOLFLEET_LOG_LEVEL ?? "warn");
  const mode = values.mode as ToolsServiceMode | undefined;
  // A call run here is waited for to its end: a task left to run in the background would die with this process
  // before anyone could fetch its result. (A tools worker applies its own threshold, and keeps its tasks.)
  const env = { ...process.env, TOOLFLEET_BACKGROUND_THRESHOLD: "0", ...(mode ? { TOOLFLEET_TOOLS_SERVICE_MODE: mode } : {}) };
  const config = new LiveConfig(logger, { env });
  try {
    const local = registryFor(await loadToolModule(values.tools), config, logger);
    const caller = createCaller({ config, logger, local });
    try {
      await caller.start();
      const { registry } = caller;
      const user = values.user;
      const ctx = new ToolContext({ platform: "cli", userId: user, userName: user, adapter: caller.gatewayAdapter("cli") });
      // Ctrl-C cancels the call (the worker running it is told); a second one exits as usual.
      const cancel = new AbortController();
      const onInterrupt = (): void => cancel.abort(new Error("interrupted (Ctrl-C)"));
      process.once("SIGINT", onInterrupt);
      const live = progressPrinter(process.stderr);
      const { shadowMatches, shadowMismatches } = registry.stats;
      let outcome;
      try {
        outcome = await registry.execute(tool, args, { userId: user, ctx, signal: cancel.signal, ...(live ? { onProgress: live.show } : {}) });
      } finally {
        live?.clear();
        process.off("SIGINT", onInterrupt);
      }
      console.log(outcome.text);
      if (outcome.result?.structuredContent !== undefined) console.log(`[structured] ${JSON.stringify(outcome.result.structuredContent)}`);
      for (const part of outcome.result?.content ?? []) {
        if (part.type === "image") console.log(`[image] ${part.mimeType}, ${Buffer.from(part.data, "base64").byteLength} bytes`);
        else if (part.type === "resource" && part.resource.blob !== undefined)
          console.log(`[resource] ${part.resource.uri}, ${Buffer.from(part.resource.blob, "base64").byteLength} bytes`);
      }
      for (const file of ctx.sentFiles) console.log(`[sent file] ${file.name} (${file.contentType}, ${file.data.length} bytes)`);
      if (ctx.injectedTools) console.log(`[injected tools] ${ctx.injectedTools.join(", ")}`);
      for (const message of ctx.sentRichMessages) console.log(`[rich message] ${JSON.stringify(message)}`);
      if (outcome.kind === "unknown_tool") {
        // The names this call could have reached: the catalog's (or the local registry's) and the ones run here.
        const hint = didYouMean(tool, [...registry.toolNames(), ...local.toolNames()]);
        if (hint) console.error(`toolfleet call: unknown tool '${tool}'${hint}`);
      }
      // In shadow mode the tools service's answer is compared with this one's: wait for it, and say how it went.
      await registry.mirrorsSettled();
      const shadow =
        registry.stats.shadowMatches > shadowMatches ? " shadow=match" : registry.stats.shadowMismatches > shadowMismatches ? " shadow=MISMATCH" : "";
      console.error(`mode=${config.get().toolsServiceMode} route=${outcome.route} ${outcome.durationMs.toFixed(2)} ms${shadow}`);
      // The exit code tells a script how the call ended; the text is written for the model.
      return isFailure(outcome.kind) ? 1 : 0;
    } finally {
      await caller.stop();
    }
  } finally {
    config.close();
  }
}

/** On a terminal, one line of stderr that shows the call's latest progress, rewritten in place; none elsewhere (a pipe gets only the result). */
export function progressPrinter(out: NodeJS.WriteStream): { show: (update: ProgressUpdate) => void; clear: () => void } | undefined {
  if (!out.isTTY) return undefined;
  let shown = false;
  return {
    show: (update) => {
      const line = `⏳ ${progressLine(update)}`.slice(0, Math.max(10, (out.columns || 80) - 1));
      out.write(`\r\x1b[2K${line}`);
      shown = true;
    },
    clear: () => {
      if (shown) out.write("\r\x1b[2K");
    },
  };
}
