// The root export: what an application uses to define tools, run them and
// assemble a fleet. Protocol pieces (codecs, keys, stream engines, the RPC
// clients) are under `toolfleet/protocol`. A test pins this list, and another
// checks that importing it loads no LLM client.
export {
  defineTool,
  TOOL_NAME_PATTERN,
  type JsonSchemaToolSpec,
  type ToolAnnotations,
  type ToolDefinition,
  type ToolHandler,
  type ToolPin,
  type ToolResult,
  type ZodToolSpec,
} from "./core/tool.js";
export { toolResult, isToolResult, resultText, type ContentPart, type StructuredResult } from "./core/result.js";
export { progressLine, type ProgressUpdate } from "./core/progress.js";
export {
  ToolContext,
  type DelegateOptions,
  type GatewayAnswer,
  type JsonValue,
  type PlatformAdapter,
  type RichMessage,
  type SentFile,
  type ToolCallIdentity,
  type ToolContextInit,
} from "./core/context.js";
export { ToolRegistry, type CallOptions, type OpenAITool, type Permissions, type ToolRegistryLike, type ToolRegistryOptions } from "./core/registry.js";
export { type CallOutcome, type OutcomeKind, type Route } from "./core/outcome.js";
export { MemoryTaskStore, TaskManager, type TaskRecord, type TaskStatus, type TaskStore } from "./core/tasks.js";
export { taskTools } from "./core/task-tools.js";
export { GATEWAY_PINNED_TOOLS, INFERENCE_PINNED_TOOLS } from "./core/pins.js";
export { ToolfleetError, type ToolfleetErrorCode, type WireErrorCode } from "./core/errors.js";
export { createLogger, silentLogger, type Logger } from "./core/log.js";
export { DEFAULTS, defineConfig, type Config, type RawConfig, type ToolsServiceMode } from "./config/schema.js";
export { loadConfig } from "./config/load.js";
export { LiveConfig, staticConfig, type ConfigSource } from "./config/live.js";
export { RemoteToolRegistry, type RemoteRegistryStats, type RemoteToolRegistryOptions } from "./inference/remote-registry.js";
export { openAIModel, type ChatModel, type OpenAIModelOptions } from "./inference/llm-loop.js";
export { withCommands } from "./inference/command-model.js";
export { ConsoleAdapter } from "./gateway/console-adapter.js";
export { HttpChatAdapter, type HttpAdapterOptions } from "./gateway/http-adapter.js";
export { isChatPlatform, type ChatPlatform, type IncomingMessage, type OutgoingMessage, type PlatformHooks } from "./gateway/platform.js";
export { DiscordAdapter, type DiscordAdapterOptions } from "./gateway/discord/adapter.js";
export { discordTools } from "./gateway/discord/tools.js";
export { type ToolCallDetail } from "./chat/codec.js";
export { type FleetMember, type MemberOptions, type ToolSet } from "./fleet/common.js";
export { type WaitForRedis } from "./redis/client.js";
export { createToolsWorker, type ToolsWorker, type ToolsWorkerOptions } from "./fleet/tools-worker.js";
export type { McpSourceSpec } from "./mcp/source-spec.js";
export type { McpSource, McpSourceTiming } from "./mcp/source.js";
export type { McpSources } from "./mcp/sources.js";
export { createInferenceWorker, type InferenceWorker, type InferenceWorkerOptions } from "./fleet/inference-worker.js";
export { createGateway, type Gateway, type GatewayOptions } from "./fleet/gateway.js";
export { createMcpServer, type McpFleetServer, type McpServerOptions } from "./fleet/mcp-server.js";
export { createInProcessFleet, type InProcessFleet, type InProcessFleetOptions } from "./fleet/in-process.js";
export { createCaller, type Caller, type CallerOptions } from "./fleet/caller.js";
