import type { PlatformAdapter } from "../core/context.js";
import { ToolExecServer, type ToolExecServerOptions } from "../tool-exec/server.js";
import { ToolfleetError } from "../core/errors.js";

export interface GatewayToolServerOptions extends Omit<ToolExecServerOptions, "stream" | "service" | "publishesCatalog" | "adapter"> {
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
export function createGatewayToolServer(options: GatewayToolServerOptions): ToolExecServer {
  if (!options.adapter.ownsPlatformClient) {
    throw new ToolfleetError("CONFIG_INVALID", "a gateway's adapter must own the platform client (ownsPlatformClient: true)");
  }
  const { shard, ...rest } = options;
  return new ToolExecServer({
    ...rest,
    stream: options.keys.gatewayStream(shard),
    service: "gateway",
    publishesCatalog: false,
    adapter: options.adapter,
  });
}
