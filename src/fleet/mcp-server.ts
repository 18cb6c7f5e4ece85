import { ToolfleetError } from "../core/errors.js";
import { pinOf, ToolRegistry } from "../core/registry.js";
import type { ToolPin } from "../core/tool.js";
import type { ConfigSource } from "../config/live.js";
import type { Config } from "../config/schema.js";
import { RemoteToolRegistry } from "../inference/remote-registry.js";
import { newSessionKey, tokenCheck } from "../mcp/auth.js";
import { McpHttpServer } from "../mcp/http.js";
import { allowedHostNames, isLoopback } from "../mcp/origin.js";
import { McpStdioServer } from "../mcp/stdio.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { Lifecycle, resolveMember, startOnRedis, taskStoreFor, type FleetMember, type MemberOptions, type ToolSet } from "./common.js";
import { taskManagerFor } from "./local.js";
import { observabilityFor, observed, type Observability, type ObservabilityOptions } from "./observability.js";

/** `toolfleet mcp`'s port when none is given. */
export const DEFAULT_MCP_PORT = 8791;

export interface McpServerOptions extends MemberOptions, ToolSet, ObservabilityOptions {
  /** Serve MCP on stdin/stdout (one client, the process that started this one) instead of HTTP. @defaultValue false */
  stdio?: boolean;
  /** @defaultValue "127.0.0.1" */
  host?: string;
  /** 0 picks a free one. @defaultValue 8791 */
  port?: number;
  /** Host names besides the listening address's that requests may name in Host and Origin (behind a load balancer: its name). */
  allowedHosts?: readonly string[];
  /** Bearer token → user id (a tokens file, src/mcp/auth.ts); signed tokens work too when the fleet secret is set. */
  tokens?: ReadonlyMap<string, string>;
  /**
   * No tokens: every caller is this user (`--no-auth`; refused unless the host is a loopback address).
   * Over stdio, the user the client is. @defaultValue over stdio: "local"
   */
  localUser?: string;
}

export interface McpFleetServer extends FleetMember {
  /** Routes calls to their tier; exists once started. */
  readonly registry: RemoteToolRegistry;
  /** Resolves when a stdio client has closed stdin (never, over HTTP). */
  readonly closed: Promise<void>;
}

/**
 * `toolfleet mcp` (docs/mcp.md): the fleet's catalog served to MCP clients, each call routed as the
 * inference tier routes a chat's (durable, exactly-once). Over HTTP any number of replicas serve
 * one client without sticky sessions.
 */
export function createMcpServer(options: McpServerOptions): McpFleetServer {
  const member = resolveMember("mcp", options);
  const host = options.host ?? "127.0.0.1";
  if (!options.stdio) {
    if (options.localUser !== undefined && !isLoopback(host))
      throw new ToolfleetError("USAGE", `--no-auth is refused on a host other machines can reach (${host}): use tokens, or --host 127.0.0.1`);
    // A tokens file with no token and no fleet secret would refuse every client: refused here instead.
    if (options.localUser === undefined && (options.tokens?.size ?? 0) === 0 && !member.config.get().fleetSecret)
      throw new ToolfleetError(
        "USAGE",
        "no way to authenticate MCP clients: give --tokens FILE (with at least one token), set TOOLFLEET_FLEET_SECRET (for `toolfleet mcp token` tokens), or --no-auth on a loopback host",
      );
  }
  const allowedHosts = options.stdio ? new Set<string>() : allowedHostNames(host, options.allowedHosts);
  // The MCP server serves the fleet's catalog: its calls go to the tools service whatever the config's default mode.
  const config = remoteMode(member.config);
  const life = new Lifecycle("MCP server");
  let registry: RemoteToolRegistry | undefined;
  let obs: Observability | undefined;
  let front: McpHttpServer | McpStdioServer | undefined;
  let closed: () => void = () => undefined;
  const closedPromise = new Promise<void>((resolve) => (closed = resolve));
  return {
    workerId: member.workerId,
    redisUrl: member.redisUrl,
    get description() {
      return `${registry?.size ?? 0} tools in the catalog, served over ${options.stdio ? "stdio" : "Streamable HTTP"}`;
    },
    get url() {
      return front instanceof McpHttpServer ? front.url : undefined;
    },
    get metricsUrl() {
      return obs?.url;
    },
    get registry() {
      return life.need(registry, "registry");
    },
    closed: closedPromise,
    start: () =>
      life.start((signal) =>
        startOnRedis(
          { ...member, config },
          "mcp",
          (redis) => {
            obs = observabilityFor(options, { service: "mcp", workerId: member.workerId, logger: member.logger }, redis, member.keys);
            const local = new ToolRegistry({
              config,
              logger: member.logger,
              taskManager: taskManagerFor(config, member.logger, taskStoreFor({ ...member, config }, redis)),
            });
            local.register(...(options.tools ?? []));
            local.setPermissions(options.permissions ?? {});
            let shown: string | undefined;
            const remote = new RemoteToolRegistry({
              redis,
              redisUrl: member.redisUrl,
              keys: member.keys,
              config,
              local,
              workerId: member.workerId,
              logger: member.logger,
              ...(obs ? { metrics: obs.metrics } : {}),
              // The hash covers every tool's schema and the permissions: it changes exactly when a listing would.
              onCatalogChange: (merged) => {
                const now = merged?.schemaHash ?? "";
                if (shown !== undefined && now !== shown) front?.toolsChanged();
                shown = now;
              },
            });
            registry = remote;
            // As the registry routes a call (remote-registry.ts, dispatch): the config's pin, else the local definition's, else the catalog's.
            const gatewayPinned = (name: string, pin: ToolPin | undefined): boolean =>
              pinOf(name, config.get(), { pin: local.get(name)?.pin ?? pin }) === "gateway";
            const tools = { registry: remote, logger: member.logger, gatewayPinned };
            const served = options.stdio
              ? new McpStdioServer(tools, options.localUser ?? "local")
              : new McpHttpServer({
                  tools,
                  redis,
                  redisUrl: member.redisUrl,
                  keys: member.keys,
                  host,
                  port: options.port ?? DEFAULT_MCP_PORT,
                  allowedHosts,
                  auth:
                    options.localUser !== undefined
                      ? { localUser: options.localUser }
                      : { check: tokenCheck({ ...(options.tokens ? { tokens: options.tokens } : {}), fleetSecret: config.get().fleetSecret }) },
                  sessionKey: () => sessionKey(redis, member.keys, config.get().fleetSecret),
                });
            front = served;
            if (served instanceof McpStdioServer) void served.closed.then(() => closed());
            const localPart = { start: () => Promise.resolve(), stop: () => local.close() };
            return observed(obs, [localPart, remote, served]);
          },
          signal,
        ),
      ),
    stop: () => life.stop(),
  };
}

/** The key that signs session ids: the fleet secret, else one kept in Redis that the first replica made (shared by all). */
async function sessionKey(redis: RedisClient, keys: Keys, fleetSecret: string): Promise<string> {
  if (fleetSecret) return fleetSecret;
  await redis.set(keys.mcpSessionKey, newSessionKey(), { condition: "NX" });
  const key = (await redis.get(keys.mcpSessionKey)) ?? "";
  if (key.length < 32) throw new ToolfleetError("RECORD_INVALID", `${keys.mcpSessionKey}: not a session key (under 32 characters)`);
  return key;
}

/** The config with `in_process` read as `remote` (one copy per config read, not per call). */
function remoteMode(base: ConfigSource): ConfigSource {
  let seen: Config | undefined;
  let shown: Config | undefined;
  return {
    get: () => {
      const now = base.get();
      if (now !== seen) {
        seen = now;
        shown = now.toolsServiceMode === "in_process" ? { ...now, toolsServiceMode: "remote" } : now;
      }
      return shown ?? now;
    },
  };
}
