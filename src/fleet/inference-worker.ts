import type { PlatformAdapter } from "../core/context.js";
import { ToolfleetError } from "../core/errors.js";
import { ToolRegistry } from "../core/registry.js";
import { ChatResponder, describeModel } from "../inference/chat-responder.js";
import { CHAT_CONCURRENCY, ChatConsumer } from "../inference/chat-consumer.js";
import type { ChatModel } from "../inference/llm-loop.js";
import { ProxyPlatformAdapter } from "../inference/proxy-adapter.js";
import { RemoteToolRegistry } from "../inference/remote-registry.js";
import { DEFAULT_LEASE_MS, Lifecycle, resolveMember, startOnRedis, taskStoreFor, type FleetMember, type MemberOptions, type ToolSet } from "./common.js";
import { taskManagerFor } from "./local.js";
import { callerMetrics, observabilityFor, observed, type Observability, type ObservabilityOptions } from "./observability.js";

export interface InferenceWorkerOptions extends MemberOptions, ToolSet, ObservabilityOptions {
  /** Chats answered at once. @defaultValue 8 */
  concurrency?: number;
  /** @defaultValue 30000 */
  leaseMs?: number;
  /** @defaultValue the configured LLM (none without an API key), behind slash commands */
  model?: ChatModel;
}

export interface InferenceWorker extends FleetMember {
  /** Routes calls to their tier; exists once started. Use it to make calls from code. */
  readonly registry: RemoteToolRegistry;
}

/**
 * An inference worker: shows the model the published catalog, answers the
 * gateways' chat messages with the LLM tool loop, and routes each tool call
 * to its tier. `tools` are the ones it runs itself (inference-pinned tools);
 * it imports no other handler. Needs `toolsServiceMode` remote or shadow.
 */
export function createInferenceWorker(options: InferenceWorkerOptions): InferenceWorker {
  const member = resolveMember("inference", options);
  if (member.config.get().toolsServiceMode === "in_process") {
    throw new ToolfleetError(
      "CONFIG_INVALID",
      "an inference worker sends tool calls to the tools service: set TOOLFLEET_TOOLS_SERVICE_MODE=remote (or shadow); for one process with no Redis, use `toolfleet up` without Redis or `toolfleet demo`",
    );
  }
  const life = new Lifecycle("inference worker");
  let registry: RemoteToolRegistry | undefined;
  let obs: Observability | undefined;
  return {
    workerId: member.workerId,
    redisUrl: member.redisUrl,
    get description() {
      return `${registry?.size ?? 0} tools in the catalog, ${options.model ? "the given model" : describeModel(member.config)}`;
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
          "inference",
          (redis) => {
            // Its background tasks (long inference-pinned tools) go to the same store as the tools service's,
            // where get_task_result, which runs there, looks for them.
            obs = observabilityFor(options, { service: "inference", workerId: member.workerId, logger: member.logger }, redis, member.keys);
            const local = new ToolRegistry({
              config: member.config,
              logger: member.logger,
              taskManager: taskManagerFor(member.config, member.logger, taskStoreFor(member, redis)),
            });
            local.register(...(options.tools ?? []));
            local.setPermissions(options.permissions ?? {});
            const remote = new RemoteToolRegistry({
              redis,
              redisUrl: member.redisUrl,
              keys: member.keys,
              config: member.config,
              local,
              workerId: member.workerId,
              logger: member.logger,
              ...(obs ? { metrics: obs.metrics } : {}),
            });
            registry = remote;
            // A proxy is a few fields: one per chat, aimed at the gateway (shard) that holds it.
            const adapterFor = (platform: string, shard: string | undefined): PlatformAdapter =>
              new ProxyPlatformAdapter(platform, () => remote.toolsClient, member.keys, member.config, shard);
            const responder = new ChatResponder({
              registry: remote,
              config: member.config,
              logger: member.logger,
              ...(options.model ? { model: options.model } : {}),
            });
            const consumer = new ChatConsumer({
              redis,
              redisUrl: member.redisUrl,
              keys: member.keys,
              logger: member.logger,
              workerId: member.workerId,
              responder,
              adapterFor,
              worker: { concurrency: options.concurrency ?? CHAT_CONCURRENCY, leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS },
            });
            // The local registry closes last: its background tasks may still be reported on.
            const localPart = { start: () => Promise.resolve(), stop: () => local.close() };
            if (obs) callerMetrics(obs, remote, consumer);
            return observed(obs, [localPart, remote, consumer]);
          },
          signal,
        ),
      ),
    stop: () => life.stop(),
  };
}
