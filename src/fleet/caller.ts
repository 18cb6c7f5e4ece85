import type { PlatformAdapter } from "../core/context.js";
import { ToolRegistry } from "../core/registry.js";
import { ProxyPlatformAdapter } from "../inference/proxy-adapter.js";
import { RemoteToolRegistry } from "../inference/remote-registry.js";
import type { RedisClient } from "../redis/client.js";
import { Lifecycle, resolveMember, startInOrder, startOnRedis, type FleetMember, type MemberOptions } from "./common.js";

export interface CallerOptions extends MemberOptions {
  /** The registry for what runs here: inference-pinned tools, fallbacks, `in_process` mode. @defaultValue an empty one */
  local?: ToolRegistry;
}

export interface Caller extends FleetMember {
  /** Routes calls to their tier; exists once started. */
  readonly registry: RemoteToolRegistry;
  /** The platform as seen from here, for a call's context: its gateway-pinned calls go to the gateway. */
  gatewayAdapter(platform: string): PlatformAdapter;
}

/**
 * Makes calls into the fleet without serving anything (a script, the CLI, a
 * walk-through): the inference tier's routing, with no chat consumer. In
 * `in_process` mode it opens no Redis connection; otherwise, with Redis away,
 * start() fails at once (`REDIS_UNAVAILABLE`) unless `waitForRedis` says to wait.
 */
export function createCaller(options: CallerOptions): Caller {
  // A caller makes calls now, for someone waiting on them: with Redis away it fails at once rather than hang.
  const member = resolveMember("call", options, { waitForRedis: false });
  const life = new Lifecycle("caller");
  const local = options.local ?? new ToolRegistry({ config: member.config, logger: member.logger });
  let registry: RemoteToolRegistry | undefined;
  const make = (redis?: RedisClient): RemoteToolRegistry =>
    (registry = new RemoteToolRegistry({
      ...(redis ? { redis, redisUrl: member.redisUrl } : {}),
      keys: member.keys,
      config: member.config,
      local,
      workerId: member.workerId,
      logger: member.logger,
    }));
  // Closed last: a fallback's background tasks may still be reported on.
  const localPart = { start: () => Promise.resolve(), stop: () => local.close() };
  const inProcess = (): boolean => member.config.get().toolsServiceMode === "in_process";
  return {
    workerId: member.workerId,
    redisUrl: member.redisUrl,
    get description() {
      return `${registry?.size ?? 0} tools`;
    },
    url: undefined,
    get registry() {
      return life.need(registry, "registry");
    },
    gatewayAdapter(platform) {
      const remote = life.need(registry, "registry");
      return new ProxyPlatformAdapter(platform, () => remote.toolsClient, member.keys, member.config);
    },
    start: () =>
      life.start((signal) =>
        inProcess()
          ? startInOrder(
              () => Promise.resolve(),
              () => Promise.resolve(),
              () => [localPart, make()],
              member.logger,
            )
          : startOnRedis(member, "call", (redis) => [localPart, make(redis)], signal),
      ),
    stop: () => life.stop(),
  };
}
