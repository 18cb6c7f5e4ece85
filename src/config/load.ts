import { readFileSync } from "node:fs";
import { ToolfleetError } from "../core/errors.js";
import { describeIssues, rawConfigSchema, resolveConfig, type Config, type RawConfig } from "./schema.js";

type Kind = "string" | "number" | "boolean" | "list";

/** Each setting's environment variable and how its text is read. */
export const ENV_VARS: Readonly<Record<keyof RawConfig, readonly [name: string, kind: Kind]>> = {
  toolsServiceMode: ["TOOLFLEET_TOOLS_SERVICE_MODE", "string"],
  toolsForceInProcess: ["TOOLFLEET_TOOLS_FORCE_IN_PROCESS", "list"],
  toolsExecTimeout: ["TOOLFLEET_TOOLS_EXEC_TIMEOUT", "number"],
  toolsLocalFallback: ["TOOLFLEET_TOOLS_LOCAL_FALLBACK", "boolean"],
  toolsShards: ["TOOLFLEET_TOOLS_SHARDS", "number"],
  redisUrl: ["TOOLFLEET_REDIS_URL", "string"],
  redisClusterNodes: ["TOOLFLEET_REDIS_CLUSTER_NODES", "list"],
  namespace: ["TOOLFLEET_NAMESPACE", "string"],
  gatewayPinned: ["TOOLFLEET_GATEWAY_PINNED", "list"],
  inferencePinned: ["TOOLFLEET_INFERENCE_PINNED", "list"],
  backgroundThreshold: ["TOOLFLEET_BACKGROUND_THRESHOLD", "number"],
  taskStore: ["TOOLFLEET_TASK_STORE", "string"],
  taskMaxRunning: ["TOOLFLEET_TASK_MAX_RUNNING", "number"],
  taskResultTtl: ["TOOLFLEET_TASK_RESULT_TTL", "number"],
  taskTimeout: ["TOOLFLEET_TASK_TIMEOUT", "number"],
  llmBaseUrl: ["TOOLFLEET_LLM_BASE_URL", "string"],
  llmModel: ["TOOLFLEET_LLM_MODEL", "string"],
  llmApiKey: ["TOOLFLEET_LLM_API_KEY", "string"],
  llmTimeout: ["TOOLFLEET_LLM_TIMEOUT", "number"],
  llmMaxIterations: ["TOOLFLEET_LLM_MAX_ITERATIONS", "number"],
  chatTimeout: ["TOOLFLEET_CHAT_TIMEOUT", "number"],
  chatCommands: ["TOOLFLEET_CHAT_COMMANDS", "boolean"],
  webSecret: ["TOOLFLEET_WEB_SECRET", "string"],
  fleetSecret: ["TOOLFLEET_FLEET_SECRET", "string"],
  adminToken: ["TOOLFLEET_ADMIN_TOKEN", "string"],
  discordToken: ["TOOLFLEET_DISCORD_TOKEN", "string"],
  discordChannels: ["TOOLFLEET_DISCORD_CHANNELS", "list"],
  discordApiUrl: ["TOOLFLEET_DISCORD_API_URL", "string"],
};

/** The variable that names the JSON config file. */
export const CONFIG_FILE_VAR = "TOOLFLEET_CONFIG";

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** A JSON config file; defaults to $TOOLFLEET_CONFIG. */
  file?: string | undefined;
}

/**
 * Reads the config: defaults, then the file, then the environment (a variable
 * wins over the file). Throws a CONFIG_INVALID error naming each bad setting,
 * where it came from, what was expected and what was found.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const file = options.file ?? (env[CONFIG_FILE_VAR] || undefined);
  const fromFile = file === undefined ? {} : readConfigFile(file);
  const fromEnv = readEnv(env);
  const input = { ...fromFile, ...fromEnv };
  const parsed = rawConfigSchema.safeParse(input);
  if (!parsed.success) {
    const sourceOf = (key: string): string => {
      if (key in fromEnv) return ENV_VARS[key as keyof RawConfig][0];
      return file ?? "code";
    };
    throw new ToolfleetError("CONFIG_INVALID", describeIssues(parsed.error, sourceOf, input));
  }
  return resolveConfig(parsed.data);
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ToolfleetError("CONFIG_INVALID", `Invalid config: cannot read config file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ToolfleetError("CONFIG_INVALID", `Invalid config: ${file} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new ToolfleetError("CONFIG_INVALID", `Invalid config: ${file} must hold a JSON object of settings`);
  }
  return data as Record<string, unknown>;
}

function readEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, [name, kind]] of Object.entries(ENV_VARS)) {
    // Blank counts as unset, as empty does: Number(" ") is 0, and " " would read as an empty list.
    const text = env[name]?.trim();
    if (text === undefined || text === "") continue;
    out[key] = parseEnvText(text, kind);
  }
  return out;
}

// Text that does not parse is passed on as the string itself, so the schema's
// error names the variable and shows exactly what was there.
function parseEnvText(text: string, kind: Kind): unknown {
  switch (kind) {
    case "string":
      return text;
    case "number": {
      const n = Number(text);
      return Number.isNaN(n) ? text : n;
    }
    case "boolean":
      if (/^(true|1|yes|on)$/i.test(text)) return true;
      if (/^(false|0|no|off)$/i.test(text)) return false;
      return text;
    case "list":
      return text
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
  }
}
