import type { ConfigSource } from "../config/live.js";
import type { DelegateOptions, ExecuteToolParams, GatewayAnswer, GatewayOperation, JsonValue, PlatformAdapter, ToolContext } from "../core/context.js";
import type { Keys } from "../redis/keys.js";
import { wireContextOf, type ToolsClient } from "../tool-exec/client.js";
import { ToolfleetError } from "../core/errors.js";

/**
 * The platform as an inference worker sees it: it owns no client, so each
 * gateway-pinned call is sent to the gateway's stream (`execute_tool`) and
 * its write-back appended to the caller's context when the answer comes.
 */
export class ProxyPlatformAdapter implements PlatformAdapter {
  readonly ownsPlatformClient = false;

  constructor(
    readonly platform: string,
    private readonly client: () => ToolsClient | undefined,
    private readonly keys: Keys,
    private readonly config: ConfigSource,
    /** Send to one shard's gateway stream. */
    private readonly shard?: string,
  ) {}

  async delegateToGateway(operation: GatewayOperation, params: ExecuteToolParams, ctx: ToolContext, options: DelegateOptions = {}): Promise<GatewayAnswer> {
    if (operation !== "execute_tool") throw new ToolfleetError("GATEWAY_UNAVAILABLE", `gateway operation '${operation}' is not supported`);
    const client = this.client();
    if (!client) throw new ToolfleetError("GATEWAY_UNAVAILABLE", "the gateway is unreachable: this worker's Redis path is not started");
    const stream = this.keys.gatewayStream(this.shard);
    // Nobody serves that stream (no gateway, or none of this shard): say so now, not at the call's timeout.
    if ((await client.liveWorkers.has(stream, "gateway")) === false)
      throw new ToolfleetError("NO_LIVE_WORKER", `no gateway reads ${stream} (none of its consumers has a live heartbeat)`);
    const reply = await client.call({
      stream,
      toolName: params.toolName,
      toolArgs: params.toolArgs as JsonValue,
      userId: params.toolCtx.userId,
      // Gateway tools are pinned by name and not in the tools catalog: no staleness check.
      schemaHash: "",
      ctx: wireContextOf(ctx),
      traceId: ctx.observabilityRequestId,
      identity: ctx.identity(),
      timeoutMs: options.timeoutMs ?? this.config.get().toolsExecTimeout * 1000,
      // Cancelled, and kept up to date, the same way as a call to the tools service.
      signal: options.signal,
      onProgress: options.onProgress,
      maxTotalMs: options.maxTotalTimeoutMs,
    });
    if (reply.status !== "ok")
      throw reply.error ? ToolfleetError.fromWire(reply.error) : new ToolfleetError("INTERNAL", `the gateway answered ${reply.status}`);
    ctx.mergeWriteBack(reply.writeBack);
    const answer: GatewayAnswer = { text: reply.result, kind: reply.outcome ?? "ok" };
    if (reply.structured) answer.result = reply.structured;
    return answer;
  }
}
