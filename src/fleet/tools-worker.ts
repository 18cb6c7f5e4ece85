import type { ToolRegistry } from "../core/registry.js";
import { ToolExecServer } from "../tool-exec/server.js";
import { DEFAULT_POOL, checkedPool, checkedShards } from "../redis/keys.js";
import { observabilityFor, observed, type Observability, type ObservabilityOptions } from "./observability.js";
import { McpSources } from "../mcp/sources.js";
import { checkedSpec, type McpSourceSpec } from "../mcp/source-spec.js";
import type { McpSourceTiming } from "../mcp/source.js";
import { Lifecycle, memberRegistry, resolveMember, serverBase, startOnRedis, type FleetMember, type MemberOptions, type ToolSet } from "./common.js";

export interface ToolsWorkerOptions extends MemberOptions, ToolSet, ObservabilityOptions {
  /** Calls run at once. @defaultValue 16 */
  concurrency?: number;
  /** Idle time after which a dead worker's calls are taken over, in ms. @defaultValue 30000 */
  leaseMs?: number;
  /** The pool this worker serves (docs/architecture.md, "Pools"): its request stream and consumer group. @defaultValue "default" */
  pool?: string;
  /** Request-stream shards of its pool it reads (docs/protocol.md §1.3). @defaultValue config `toolsShards` (1) */
  shards?: number;
  /** MCP servers whose tools this worker runs too (docs/mcp.md): each started (`command`) or connected to (`url`). @defaultValue none */
  mcp?: readonly McpSourceSpec[];
  /** Backoff and timeouts of the MCP sources. */
  mcpTiming?: McpSourceTiming;
}

export interface ToolsWorker extends FleetMember {
  /** The registry that runs the calls (the tools, the task tools); exists once started. */
  readonly registry: ToolRegistry;
  /** Its MCP sources (server pids, their tools now); exists once started. */
  readonly mcp: McpSources;
}

/**
 * A tools worker: publishes the catalog of its tools and runs the calls the
 * inference tier sends to the tools stream. Start as many as the load needs.
 */
export function createToolsWorker(options: ToolsWorkerOptions): ToolsWorker {
  const member = resolveMember("tools", options);
  // Checked now: a bad pool name is a usage error, not a failure after connecting.
  const pool = checkedPool(options.pool ?? DEFAULT_POOL);
  const shards = checkedShards(options.shards ?? member.config.get().toolsShards, "shard count");
  const specs = (options.mcp ?? []).map((spec) => checkedSpec({ ...spec }));
  const life = new Lifecycle("tools worker");
  let registry: ToolRegistry | undefined;
  let obs: Observability | undefined;
  let mcp: McpSources | undefined;
  return {
    workerId: member.workerId,
    redisUrl: member.redisUrl,
    get description() {
      return `${registry?.size ?? options.tools?.length ?? 0} tools in pool ${pool}`;
    },
    url: undefined,
    get metricsUrl() {
      return obs?.url;
    },
    get registry() {
      return life.need(registry, "registry");
    },
    get mcp() {
      return life.need(mcp, "mcp");
    },
    start: () =>
      life.start((signal) =>
        startOnRedis(
          member,
          "tools",
          (redis) => {
            registry = memberRegistry(member, options, redis);
            obs = observabilityFor(options, { service: "tools", workerId: member.workerId, logger: member.logger }, redis, member.keys);
            const server = new ToolExecServer({ ...serverBase(member, redis, registry, options), pool, shards, ...(obs ? { metrics: obs.metrics } : {}) });
            obs?.watchEngines(() => [...server.shardWorkers, ...(server.ownWorker ? [server.ownWorker] : [])]);
            const sources = (mcp = new McpSources({
              specs,
              registry,
              publish: () => server.publishCatalog(),
              logger: member.logger,
              ...(options.mcpTiming ? { timing: options.mcpTiming } : {}),
            }));
            // The sources after the server (they republish its part), and stopped after it: calls in flight still reach their servers.
            const served = { start: async () => (await server.start(), await sources.start()), stop: async () => (await server.stop(), await sources.stop()) };
            return observed(obs, [served]);
          },
          signal,
        ),
      ),
    stop: () => life.stop(),
  };
}
