import type { ToolRegistry } from "../core/registry.js";
import { ToolExecServer } from "../tool-exec/server.js";
import { DEFAULT_POOL, checkedPool } from "../redis/keys.js";
import { observabilityFor, observed, type Observability, type ObservabilityOptions } from "./observability.js";
import { Lifecycle, memberRegistry, resolveMember, serverBase, startOnRedis, type FleetMember, type MemberOptions, type ToolSet } from "./common.js";

export interface ToolsWorkerOptions extends MemberOptions, ToolSet, ObservabilityOptions {
  /** Calls run at once. @defaultValue 16 */
  concurrency?: number;
  /** Idle time after which a dead worker's calls are taken over, in ms. @defaultValue 30000 */
  leaseMs?: number;
  /** The pool this worker serves (docs/architecture.md, "Pools"): its request stream and consumer group. @defaultValue "default" */
  pool?: string;
}

export interface ToolsWorker extends FleetMember {
  /** The registry that runs the calls (the tools, the task tools); exists once started. */
  readonly registry: ToolRegistry;
}

/**
 * A tools worker: publishes the catalog of its tools and runs the calls the
 * inference tier sends to the tools stream. Start as many as the load needs.
 */
export function createToolsWorker(options: ToolsWorkerOptions): ToolsWorker {
  const member = resolveMember("tools", options);
  // Checked now: a bad pool name is a usage error, not a failure after connecting.
  const pool = checkedPool(options.pool ?? DEFAULT_POOL);
  const life = new Lifecycle("tools worker");
  let registry: ToolRegistry | undefined;
  let obs: Observability | undefined;
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
    start: () =>
      life.start((signal) =>
        startOnRedis(
          member,
          "tools",
          (redis) => {
            registry = memberRegistry(member, options, redis);
            obs = observabilityFor(options, { service: "tools", workerId: member.workerId, logger: member.logger }, redis, member.keys);
            const server = new ToolExecServer({ ...serverBase(member, redis, registry, options), pool, ...(obs ? { metrics: obs.metrics } : {}) });
            obs?.watchEngines(() => [server.worker, ...(server.ownWorker ? [server.ownWorker] : [])]);
            return observed(obs, [server]);
          },
          signal,
        ),
      ),
    stop: () => life.stop(),
  };
}
