import { parseArgs } from "node:util";
import { LiveConfig } from "../config/live.js";
import { TOOLS_SERVICE_MODES, type ToolsServiceMode } from "../config/schema.js";
import { ToolContext } from "../core/context.js";
import { createLogger } from "../core/log.js";
import { isFailure } from "../core/outcome.js";
import { createCaller } from "../fleet/caller.js";
import { exampleRegistry } from "../fleet/local.js";

export const CALL_USAGE = "usage: toolfleet call <tool> '<json args>' [--user ID] [--mode in_process|remote|shadow]";

/**
 * One call through the inference tier's registry: in process by default,
 * through the tools service and gateway with --mode remote. Prints the
 * result on stdout, and the route and duration on stderr.
 */
export async function runCall(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { user: { type: "string", default: "" }, mode: { type: "string" } },
  });
  const [tool, json = "{}"] = positionals;
  if (!tool || positionals.length > 2) {
    console.error(CALL_USAGE);
    return 2;
  }
  if (values.mode !== undefined && !(TOOLS_SERVICE_MODES as readonly string[]).includes(values.mode)) {
    console.error(`toolfleet call: --mode must be one of ${TOOLS_SERVICE_MODES.join(", ")}, got '${values.mode}'`);
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
  const mode = values.mode as ToolsServiceMode | undefined;
  const config = new LiveConfig(logger, { env: mode ? { ...process.env, TOOLFLEET_TOOLS_SERVICE_MODE: mode } : process.env });
  const caller = createCaller({ config, logger, local: await exampleRegistry(config, logger) });
  try {
    await caller.start();
    const { registry } = caller;
    const ctx = new ToolContext({ platform: "cli", userId: values.user, userName: values.user, adapter: caller.gatewayAdapter("cli") });
    const outcome = await registry.execute(tool, args, { userId: values.user, ctx });
    console.log(outcome.text);
    for (const file of ctx.sentFiles) console.log(`[sent file] ${file.name} (${file.contentType}, ${file.data.length} bytes)`);
    if (ctx.injectedTools) console.log(`[injected tools] ${ctx.injectedTools.join(", ")}`);
    for (const message of ctx.sentRichMessages) console.log(`[rich message] ${JSON.stringify(message)}`);
    console.error(`mode=${config.get().toolsServiceMode} route=${outcome.route} ${outcome.durationMs.toFixed(2)} ms`);
    // The exit code tells a script how the call ended; the text is written for the model.
    return isFailure(outcome.kind) ? 1 : 0;
  } finally {
    await caller.stop();
    config.close();
  }
}
