import type { PlatformAdapter } from "../core/context.js";
import { ToolsService, type ToolsServiceOptions } from "../tool-exec/server.js";

export interface GatewayServiceOptions extends Omit<ToolsServiceOptions, "stream" | "service" | "publishesCatalog" | "adapter"> {
  /** The live platform adapter; it owns the platform client, so gateway-pinned tools run right here. */
  adapter: PlatformAdapter;
  /** Serve one shard's stream (`sg:stream:gateway:<shard>`) instead of the shared one. */
  shard?: string;
}

/**
 * The gateway's side of the `execute_tool` RPC: the same engine and request
 * handling as the tools service (session identity, idempotency, deadlines,
 * dead letters), on the gateway stream, with the live adapter on every call's
 * context. It publishes no catalog: the tools service does.
 */
export function createGatewayService(options: GatewayServiceOptions): ToolsService {
  if (!options.adapter.ownsPlatformClient) {
    throw new Error("a gateway's adapter must own the platform client (ownsPlatformClient: true)");
  }
  const { shard, ...rest } = options;
  return new ToolsService({
    ...rest,
    stream: options.keys.gatewayStream(shard),
    service: "gateway",
    publishesCatalog: false,
    adapter: options.adapter,
  });
}
