import { z } from "zod";
import { ToolfleetError } from "../core/errors.js";
import { TOOL_NAME_PATTERN } from "../core/tool.js";
import { GATEWAY_PINNED_TOOLS, INFERENCE_PINNED_TOOLS } from "../core/pins.js";
import { CORE_DEFAULTS, type CoreSettings } from "../core/settings.js";

export const TOOLS_SERVICE_MODES = ["in_process", "remote", "shadow"] as const;
export type ToolsServiceMode = (typeof TOOLS_SERVICE_MODES)[number];

/** The resolved, validated configuration every tier reads. */
export interface Config extends CoreSettings {
  /** Where non-pinned tools run. @defaultValue "in_process" */
  readonly toolsServiceMode: ToolsServiceMode;
  /** Tools always run on the local registry, whatever the mode. @defaultValue empty */
  readonly toolsForceInProcess: ReadonlySet<string>;
  /** Seconds a tool call may take before it is abandoned. @defaultValue 120 */
  readonly toolsExecTimeout: number;
  /** After a remote failure, run the tool locally when that is safe. @defaultValue true */
  readonly toolsLocalFallback: boolean;
  /** Request-stream shards of a tools worker's pool (`toolfleet tools --shards`, docs/protocol.md §1.3): 1-64. @defaultValue 1 */
  readonly toolsShards: number;
  /** `redis://` or `rediss://` (TLS), credentials allowed. @defaultValue "redis://127.0.0.1:6379" */
  readonly redisUrl: string;
  /**
   * Nodes of a Redis Cluster (`host:port`, a few are enough to find the rest); non-empty selects the
   * cluster client for every tier, with the credentials and TLS of `redisUrl` (README, "Running on a
   * Redis Cluster"). @defaultValue empty (one Redis at `redisUrl`)
   */
  readonly redisClusterNodes: readonly string[];
  /** Prefix of every Redis key. @defaultValue "sg" */
  readonly namespace: string;
  /** @defaultValue the 28 names of `GATEWAY_PINNED_TOOLS` */
  readonly gatewayPinned: ReadonlySet<string>;
  /** @defaultValue the 7 names of `INFERENCE_PINNED_TOOLS` */
  readonly inferencePinned: ReadonlySet<string>;
  /** Seconds after which a still-running call becomes a background task; 0 turns offload off. @defaultValue 30 */
  readonly backgroundThreshold: number;
  /** Where background task results are kept: this process, or Redis for every tier to read. @defaultValue "memory" */
  readonly taskStore: "memory" | "redis";
  /** Background tasks running at once; past it, calls wait in the foreground. @defaultValue 32 */
  readonly taskMaxRunning: number;
  /** Seconds a finished task's result is kept. @defaultValue 3600 */
  readonly taskResultTtl: number;
  /** Seconds a background task may run in all before it is aborted. @defaultValue 900 */
  readonly taskTimeout: number;
  /** The OpenAI-compatible chat API the inference tier talks to. @defaultValue "https://openrouter.ai/api/v1" */
  readonly llmBaseUrl: string;
  /** The model asked for each turn. @defaultValue "openai/gpt-4o-mini" */
  readonly llmModel: string;
  /** The API key; empty means no LLM: chat answers only `/tool {json}` commands. Never logged. @defaultValue "" */
  readonly llmApiKey: string;
  /** Seconds one LLM request may take. @defaultValue 60 */
  readonly llmTimeout: number;
  /** Model turns per chat message before the loop stops (extend_tool_loop can raise it). @defaultValue 8 */
  readonly llmMaxIterations: number;
  /** Seconds a chat message may wait for its answer before the gateway tells the user it failed. @defaultValue 300 */
  readonly chatTimeout: number;
  /** Chat messages starting with `/` run tools directly (`/echo {"text":"hi"}`); off for a public bot with an LLM. @defaultValue true */
  readonly chatCommands: boolean;
  /** Signs the web chat's user cookies; gateways behind one load balancer share it. Empty: random per process. Never logged. @defaultValue "" */
  readonly webSecret: string;
  /**
   * Signs every tool request and reply between tiers (docs/security.md); all callers and workers of a fleet
   * share it. Empty: nothing is signed (trust rests on Redis access alone). Never logged. @defaultValue ""
   */
  readonly fleetSecret: string;
  /** The token `toolfleet dashboard` asks for (16+ characters). Never logged. @defaultValue "" (the dashboard refuses to start without one) */
  readonly adminToken: string;
  /** The Discord bot token, for `--adapter discord`. Never logged. @defaultValue "" (the discord adapter refuses to start without it) */
  readonly discordToken: string;
  /** Channel ids where the Discord bot answers every message (elsewhere: DMs and mentions only). @defaultValue empty */
  readonly discordChannels: readonly string[];
  /** Discord's REST API base: another one only for a proxy or a test stand-in. @defaultValue "https://discord.com/api" */
  readonly discordApiUrl: string;
}

const toolName = z.string().regex(TOOL_NAME_PATTERN, "a tool name (1-64 of letters, digits, _ and -)");
const toolNames = z.array(toolName, "a list of tool names");
// Capped where setTimeout stops working (2^31 ms), so no setting silently turns into "at once".
const seconds = (what: string) => z.number(`a number of seconds ${what}`).finite().max(2_000_000, `a number of seconds ${what}, at most 2000000`);

const redisUrl = z.string("a redis:// or rediss:// URL").refine((value) => {
  try {
    const { protocol } = new URL(value);
    return protocol === "redis:" || protocol === "rediss:";
  } catch {
    // Not parseable as a URL: the refinement's message says what is expected.
    return false;
  }
}, "a redis:// or rediss:// URL");

/**
 * A key namespace: letters, digits and `_ . -`, with at most one non-empty
 * `{tag}` (no other brace). A stray or empty brace would give keys written
 * together different Redis Cluster slots (src/redis/slots.ts); a whole tag
 * puts every key of the namespace in one slot (docs/protocol.md §1.1).
 */
export const NAMESPACE_PATTERN = /^(?=.{1,64}$)[A-Za-z0-9_.-]*(?:\{[A-Za-z0-9_.-]+\}[A-Za-z0-9_.-]*)?$/;

/** One node of a Redis Cluster: `host:port` (an IPv6 host in brackets). */
export const CLUSTER_NODE = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}$/;

/** The shape of a config file and of the merged environment, before resolution. */
export const rawConfigSchema = z
  .object({
    toolsServiceMode: z.enum(TOOLS_SERVICE_MODES, `one of ${TOOLS_SERVICE_MODES.join(", ")}`),
    toolsForceInProcess: toolNames,
    toolsExecTimeout: seconds("> 0").positive("a number of seconds > 0"),
    toolsLocalFallback: z.boolean("true or false"),
    toolsShards: z.number("an integer from 1 to 64").int("an integer from 1 to 64").min(1, "an integer from 1 to 64").max(64, "an integer from 1 to 64"),
    redisUrl,
    redisClusterNodes: z
      .array(
        z
          .string()
          .regex(CLUSTER_NODE, "a list of cluster nodes (host:port)")
          .refine((node) => Number(node.slice(node.lastIndexOf(":") + 1)) >= 1 && Number(node.slice(node.lastIndexOf(":") + 1)) <= 65535, "a port 1-65535"),
        "a list of cluster nodes (host:port)",
      )
      .max(64, "at most 64 cluster nodes")
      .refine((nodes) => new Set(nodes).size === nodes.length, "a list of cluster nodes, each once"),
    namespace: z.string().regex(NAMESPACE_PATTERN, "1-64 of letters, digits and _ . -, with at most one {tag} (no other brace)"),
    gatewayPinned: toolNames,
    inferencePinned: toolNames,
    backgroundThreshold: seconds(">= 0 (0 = never offload)").nonnegative("a number of seconds >= 0 (0 = never offload)"),
    taskStore: z.enum(["memory", "redis"], "memory or redis"),
    taskMaxRunning: z.number("an integer >= 1").int("an integer >= 1").min(1, "an integer >= 1"),
    taskResultTtl: seconds("> 0").positive("a number of seconds > 0"),
    taskTimeout: seconds("> 0").positive("a number of seconds > 0"),
    llmBaseUrl: z.url({ protocol: /^https?$/, error: "an http:// or https:// URL" }),
    llmModel: z.string("a model name").min(1, "a model name").max(200, "a model name of at most 200 characters"),
    llmApiKey: z.string("an API key").max(1000, "an API key of at most 1000 characters"),
    llmTimeout: seconds("> 0").positive("a number of seconds > 0"),
    llmMaxIterations: z.number("an integer from 1 to 32").int("an integer from 1 to 32").min(1, "an integer from 1 to 32").max(32, "an integer from 1 to 32"),
    chatTimeout: seconds("> 0").positive("a number of seconds > 0"),
    chatCommands: z.boolean("true or false"),
    webSecret: z.string("a secret of at least 16 characters").refine((v) => v === "" || v.length >= 16, "a secret of at least 16 characters"),
    fleetSecret: z.string("a secret of at least 32 characters").refine((v) => v === "" || v.length >= 32, "a secret of at least 32 characters"),
    adminToken: z.string("a token of at least 16 characters").refine((v) => v === "" || v.length >= 16, "a token of at least 16 characters"),
    discordToken: z.string("a Discord bot token").max(200, "a Discord bot token of at most 200 characters"),
    discordChannels: z.array(z.string().regex(/^\d{1,20}$/, "a list of Discord channel ids (digits)"), "a list of Discord channel ids (digits)"),
    discordApiUrl: z.url({ protocol: /^https?$/, error: "an http:// or https:// URL" }),
  })
  .partial()
  .strict();

export type RawConfig = z.infer<typeof rawConfigSchema>;

export const DEFAULTS: Required<RawConfig> = {
  toolsServiceMode: "in_process",
  toolsForceInProcess: [],
  toolsExecTimeout: CORE_DEFAULTS.toolsExecTimeout,
  toolsLocalFallback: true,
  toolsShards: 1,
  redisUrl: "redis://127.0.0.1:6379",
  redisClusterNodes: [],
  namespace: "sg",
  gatewayPinned: [...GATEWAY_PINNED_TOOLS],
  inferencePinned: [...INFERENCE_PINNED_TOOLS],
  backgroundThreshold: CORE_DEFAULTS.backgroundThreshold,
  taskStore: "memory",
  taskMaxRunning: CORE_DEFAULTS.taskMaxRunning,
  taskResultTtl: CORE_DEFAULTS.taskResultTtl,
  taskTimeout: CORE_DEFAULTS.taskTimeout,
  llmBaseUrl: "https://openrouter.ai/api/v1",
  llmModel: "openai/gpt-4o-mini",
  llmApiKey: "",
  llmTimeout: 60,
  llmMaxIterations: 8,
  chatTimeout: 300,
  chatCommands: true,
  webSecret: "",
  fleetSecret: "",
  adminToken: "",
  discordToken: "",
  discordChannels: [],
  discordApiUrl: "https://discord.com/api",
};

/** Fills defaults, freezes, and checks what no single field can: the pin sets must be disjoint. */
export function resolveConfig(raw: RawConfig): Config {
  const merged = { ...DEFAULTS, ...raw };
  const gatewayPinned = new Set(merged.gatewayPinned);
  const inferencePinned = new Set(merged.inferencePinned);
  assertDisjointPins(gatewayPinned, inferencePinned);
  return Object.freeze({
    ...merged,
    toolsForceInProcess: new Set(merged.toolsForceInProcess),
    gatewayPinned,
    inferencePinned,
  });
}

export function assertDisjointPins(gateway: ReadonlySet<string>, inference: ReadonlySet<string>): void {
  const overlap = [...gateway].filter((name) => inference.has(name)).sort();
  if (overlap.length > 0) {
    throw new ToolfleetError("PIN_SETS_OVERLAP", `Invalid config: a tool cannot be both gateway-pinned and inference-pinned: ${overlap.join(", ")}`);
  }
}

/** A config from code, for tests and embedders: defaults plus what is given, validated the same way. */
export function defineConfig(raw: RawConfig = {}): Config {
  const parsed = rawConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ToolfleetError(
      "CONFIG_INVALID",
      describeIssues(parsed.error, () => "code", raw),
    );
  }
  return resolveConfig(parsed.data);
}

/** Settings whose values are never echoed in an error or a log line. */
export const SECRET_SETTINGS: ReadonlySet<string> = new Set(["llmApiKey", "webSecret", "fleetSecret", "discordToken", "adminToken"]);

/** "Invalid config: toolsExecTimeout (from TOOLFLEET_TOOLS_EXEC_TIMEOUT): expected a number of seconds > 0, got "abc"" */
export function describeIssues(error: z.ZodError, sourceOf: (key: string) => string, input: unknown): string {
  const lines = error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      return `unknown setting(s) ${issue.keys.map((k) => `'${k}'`).join(", ")} (in ${sourceOf("")})`;
    }
    const key = String(issue.path[0] ?? "");
    const raw = valueAt(input, issue.path);
    // A Redis URL may carry a password and an API key is one: never echo them.
    const got = SECRET_SETTINGS.has(key) ? "***" : key === "redisUrl" && typeof raw === "string" ? redactRedisUrl(raw) : raw;
    const where = issue.path.map(String).join(".");
    return `${where} (from ${sourceOf(key)}): expected ${issue.message}, got ${JSON.stringify(got) ?? "nothing"}`;
  });
  return `Invalid config: ${lines.join("; ")}`;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const step of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[step];
  }
  return value;
}

/** Where the fleet's Redis is, for a log line: the cluster's nodes when there are any, else the URL (password hidden). */
export function describeRedis(url: string, clusterNodes: readonly string[]): string {
  return clusterNodes.length > 0 ? `the Redis Cluster at ${clusterNodes.join(",")}` : redactRedisUrl(url);
}

/** The Redis URL with any password replaced, for log lines. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = "***";
    return parsed.toString();
  } catch {
    // Not a URL, so there is no structure to redact safely: hide it whole.
    return "(unparseable redis url)";
  }
}
