import { LiveConfig } from "../config/live.js";
import { startTelemetry } from "./telemetry.js";
import { redactRedisUrl } from "../config/schema.js";
import { ToolfleetError } from "../core/errors.js";
import { createLogger, errorFields } from "../core/log.js";
import { DEFAULT_MCP_PORT, createMcpServer } from "../fleet/mcp-server.js";
import { loadPermissionsFile, loadToolModule } from "../fleet/load-tools.js";
import { loadTokensFile, mintToken } from "../mcp/auth.js";
import type { CommandSpec, Parsed } from "./args.js";
import { port } from "./serve.js";
import { untilStopSignal } from "./signals.js";

const MCP_OPTIONS = [
  { name: "redis", type: "string", value: "URL", defaultText: "the config's redisUrl", description: "the Redis the fleet runs on" },
  { name: "worker-id", type: "string", value: "ID", defaultText: "mcp-<host>-<pid>", description: "this server's id (its reply stream)" },
  { name: "host", type: "string", value: "HOST", defaultText: "127.0.0.1", description: "the address to serve HTTP on" },
  { name: "port", type: "string", value: "N", defaultText: String(DEFAULT_MCP_PORT), description: "the HTTP port (the endpoint is /mcp); 0 picks a free one" },
  {
    name: "stdio",
    type: "boolean",
    default: false,
    description: "serve one client on stdin/stdout instead of HTTP (a desktop MCP client starts this command)",
  },
  { name: "tokens", type: "string", value: "FILE", description: 'bearer tokens: JSON { "tokens": [{ "user": "alice", "token": "…" }] } (docs/mcp.md)' },
  {
    name: "no-auth",
    type: "boolean",
    default: false,
    description: "no tokens: every caller is --user (refused unless --host is a loopback address)",
  },
  {
    name: "user",
    type: "string",
    value: "ID",
    defaultText: "local",
    description: "the user of --no-auth and --stdio callers; with `mcp token`, whom the token names",
  },
  {
    name: "allowed-host",
    type: "string",
    multiple: true,
    value: "NAME",
    description: "a host name requests may name in Host/Origin besides --host (a load balancer's name); repeatable",
  },
  {
    name: "tools",
    type: "string",
    value: "MODULE",
    defaultText: "none: the published catalog is enough",
    description: "a module of tools to run here (inference-pinned tools)",
  },
  { name: "permissions", type: "string", value: "FILE", description: 'JSON: tool name -> user ids ("*" for everyone), for the tools of --tools' },
  { name: "metrics-port", type: "string", value: "N", defaultText: "none", description: "serve Prometheus /metrics, /healthz and /readyz on this port" },
  { name: "metrics-host", type: "string", value: "HOST", defaultText: "127.0.0.1", description: "the address of --metrics-port" },
  { name: "days", type: "string", value: "N", defaultText: "30", description: "with `mcp token`: how long the token is valid" },
] as const;

export const MCP_COMMAND = {
  name: "mcp",
  summary: "serve the fleet's tools to MCP clients (Streamable HTTP or stdio); `mcp token --user ID` mints a token",
  args: "[token]",
  positionals: { min: 0, max: 1 },
  about:
    "Serves the fleet's tool catalog as an MCP server: tools/list from the catalog (list_changed when it changes), tools/call routed as the inference tier routes a chat's (durable, exactly-once), with progress and cancellation. Over HTTP (the endpoint is /mcp) any number of replicas behind a load balancer serve one client without sticky sessions. Callers send a bearer token (--tokens, or one signed with the fleet secret); permissions apply to its user as to a chat user.\n`toolfleet mcp token --user ID [--days N]` prints a token for ID signed with TOOLFLEET_FLEET_SECRET.",
  options: MCP_OPTIONS,
  notes:
    "Runs until SIGINT or SIGTERM (or, with --stdio, until the client closes stdin). docs/mcp.md has the tokens file format and a desktop client's config.",
} as const satisfies CommandSpec;

type McpParsed = Parsed<typeof MCP_OPTIONS>;

export async function runMcp({ values, positionals }: McpParsed): Promise<number> {
  if (positionals[0] === "token") return printToken(values);
  if (positionals[0] !== undefined) throw new ToolfleetError("USAGE", `unknown argument '${positionals[0]}' (the one subcommand is 'token')`);
  if (values.days !== undefined) throw new ToolfleetError("USAGE", "--days is for `toolfleet mcp token`");
  if (values.stdio && (values.host !== undefined || values.port !== undefined || values["no-auth"] || values.tokens !== undefined || values["allowed-host"]))
    throw new ToolfleetError("USAGE", "--stdio serves the one process that started it: --host, --port, --allowed-host, --tokens and --no-auth are for HTTP");
  if (values["no-auth"] && values.tokens !== undefined) throw new ToolfleetError("USAGE", "--no-auth and --tokens exclude each other");
  if (values.user !== undefined && !values["no-auth"] && !values.stdio)
    throw new ToolfleetError("USAGE", "--user names the caller of --no-auth or --stdio (a token names its own user), or whom `mcp token` is for");
  const logger = createLogger("toolfleet.mcp");
  const stopTelemetry = await startTelemetry("mcp", logger);
  const config = new LiveConfig(logger).watch();
  let server;
  try {
    const module = values.tools ? await loadToolModule(values.tools) : { tools: [], permissions: {} };
    if (values.permissions) module.permissions = loadPermissionsFile(values.permissions);
    const user = values.user ?? "local";
    server = createMcpServer({
      config,
      logger,
      tools: module.tools,
      permissions: module.permissions,
      stdio: values.stdio,
      ...(values.redis !== undefined ? { redisUrl: values.redis } : {}),
      ...(values["worker-id"] !== undefined ? { workerId: values["worker-id"] } : {}),
      ...(values.host !== undefined ? { host: values.host } : {}),
      ...(values.port !== undefined ? { port: port("port", values.port) } : {}),
      ...(values["allowed-host"] ? { allowedHosts: values["allowed-host"] } : {}),
      ...(values.tokens !== undefined ? { tokens: loadTokensFile(values.tokens) } : {}),
      ...(values["no-auth"] || values.stdio ? { localUser: user } : {}),
      ...(values["metrics-port"] !== undefined ? { metricsPort: port("metrics-port", values["metrics-port"]) } : {}),
      ...(values["metrics-host"] !== undefined ? { metricsHost: values["metrics-host"] } : {}),
    });
    await server.start();
  } catch (err) {
    config.close();
    await stopTelemetry?.();
    throw err;
  }
  // stdout is the protocol's channel over stdio: the ready line goes to stderr there.
  const say = values.stdio ? (line: string) => console.error(line) : (line: string) => console.log(line);
  say(
    `mcp server ${server.workerId} ready: ${server.description}${server.url ? ` at ${server.url}` : ""} on ${redactRedisUrl(server.redisUrl)} (namespace ${config.get().namespace})${server.metricsUrl ? `; metrics at ${server.metricsUrl}` : ""}`,
  );
  await Promise.race([untilStopSignal(logger, `mcp server ${server.workerId}`), server.closed]);
  try {
    await server.stop();
  } catch (err) {
    logger.error({ ...errorFields(err) }, "graceful stop failed");
    return 1;
  } finally {
    config.close();
    await stopTelemetry?.();
  }
  say(`mcp server ${server.workerId} stopped`);
  return 0;
}

function printToken(values: McpParsed["values"]): number {
  if (values.user === undefined) throw new ToolfleetError("USAGE", "`mcp token` needs --user ID: the user the token names");
  const days = values.days === undefined ? 30 : Number(values.days);
  if (!Number.isFinite(days) || days <= 0 || days > 3650)
    throw new ToolfleetError("USAGE", `--days: expected a number of days from 1 to 3650, got '${values.days}'`);
  const config = new LiveConfig(createLogger("toolfleet.mcp", "warn"));
  try {
    const secret = config.get().fleetSecret;
    if (!secret)
      throw new ToolfleetError("USAGE", "`mcp token` signs with the fleet secret: set TOOLFLEET_FLEET_SECRET (32+ characters), the same as the MCP servers'");
    console.log(mintToken(secret, values.user, Date.now() / 1000 + days * 86400));
  } finally {
    config.close();
  }
  return 0;
}
