import type { ToolRegistry } from "../core/registry.js";
import { ChatBridge } from "../gateway/bridge.js";
import { HttpChatAdapter } from "../gateway/http-adapter.js";
import type { ChatPlatform } from "../gateway/platform.js";
import { createGatewayToolServer } from "../gateway/tool-server.js";
import { observabilityFor, observed, type Observability, type ObservabilityOptions } from "./observability.js";
import { Lifecycle, memberRegistry, resolveMember, serverBase, startOnRedis, type FleetMember, type MemberOptions, type ToolSet } from "./common.js";

export interface GatewayOptions extends MemberOptions, ToolSet, ObservabilityOptions {
  /** The live chat platform: its users' messages go to the inference tier, and it runs the gateway-pinned tools. */
  platform: ChatPlatform;
  /**
   * Serve one shard's stream (`<ns>:stream:gateway:<shard>`) instead of the shared one; with several
   * gateways, give each its own, so a chat's gateway-pinned calls come back to it. @defaultValue the shared stream
   */
  shard?: string;
  /** Gateway-pinned calls run at once. @defaultValue 16 */
  concurrency?: number;
  /** @defaultValue 30000 */
  leaseMs?: number;
}

export interface Gateway extends FleetMember {
  readonly registry: ToolRegistry;
}

/**
 * A gateway: holds the chat platform, forwards each message to the inference
 * tier and delivers the answers, and serves `execute_tool` for the
 * gateway-pinned tools (`tools`) on the gateway stream, with the live
 * platform on every call's context.
 */
export function createGateway(options: GatewayOptions): Gateway {
  const member = resolveMember("gateway", options);
  // Refuses a shard that cannot name a key, before anything is opened.
  member.keys.gatewayStream(options.shard);
  const { platform, shard } = options;
  const life = new Lifecycle("gateway");
  let registry: ToolRegistry | undefined;
  let obs: Observability | undefined;
  const url = (): string | undefined => (platform instanceof HttpChatAdapter && life.started ? platform.url : undefined);
  return {
    workerId: member.workerId,
    redisUrl: member.redisUrl,
    get description() {
      const at = url();
      return `${platform.platform} chat${at ? ` at ${at}` : ""}, ${registry?.size ?? 0} tools for execute_tool`;
    },
    get url() {
      return url();
    },
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
          "gateway",
          (redis) => {
            registry = memberRegistry(member, options, redis);
            obs = observabilityFor(options, { service: "gateway", workerId: member.workerId, logger: member.logger }, redis, member.keys);
            const server = createGatewayToolServer({
              ...serverBase(member, redis, registry, options),
              ...(obs ? { metrics: obs.metrics } : {}),
              adapter: platform,
              ...(shard !== undefined ? { shard } : {}),
            });
            const bridge = new ChatBridge({
              redis,
              redisUrl: member.redisUrl,
              keys: member.keys,
              config: member.config,
              logger: member.logger,
              gatewayId: member.workerId,
              platform,
              ...(shard !== undefined ? { shard } : {}),
            });
            // Stopped in reverse: no new chats first, then the gateway-pinned calls in flight finish.
            obs?.watchEngines(() => [server.worker]);
            return observed(obs, [server, bridge]);
          },
          signal,
        ),
      ),
    stop: () => life.stop(),
  };
}
