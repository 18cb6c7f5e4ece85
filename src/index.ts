// The public surface, named one by one (a test pins it): nothing internal leaks.
export { GATEWAY_PINNED_TOOLS, INFERENCE_PINNED_TOOLS } from "./core/pins.js";
export {
  DEFAULTS,
  TOOLS_SERVICE_MODES,
  assertDisjointPins,
  defineConfig,
  redactRedisUrl,
  type Config,
  type RawConfig,
  type ToolsServiceMode,
} from "./config/schema.js";
export { CONFIG_FILE_VAR, ENV_VARS, loadConfig, type LoadOptions } from "./config/load.js";
export { LiveConfig, staticConfig, type ConfigSource } from "./config/live.js";
export { ToolfleetError, type ToolfleetErrorCode } from "./core/errors.js";
export { createLogger, silentLogger, type Logger } from "./core/log.js";
export {
  CallSignal,
  ToolContext,
  type ExecuteToolParams,
  type GatewayOperation,
  type JsonValue,
  type PlatformAdapter,
  type RichMessage,
  type SentFile,
  type ToolCallIdentity,
  type ToolContextInit,
} from "./core/context.js";
export {
  TOOL_NAME_PATTERN,
  assertToolName,
  defineTool,
  type JsonSchemaToolSpec,
  type ToolAnnotations,
  type ToolDefinition,
  type ToolHandler,
  type ToolResult,
  type ZodToolSpec,
} from "./core/tool.js";
export { formatArgIssues, type ArgIssue, type ArgsValidator, type JsonSchema } from "./core/validate.js";
export {
  MAX_CALL_TIMEOUT_MS,
  ToolRegistry,
  gatewayUnavailable,
  isAllowedBy,
  openAITool,
  permissionDenied,
  type CallOptions,
  type CallOutcome,
  type OpenAITool,
  type OutcomeKind,
  type Permissions,
  type ToolRegistryLike,
  type ToolRegistryOptions,
} from "./core/registry.js";
export {
  MemoryTaskStore,
  TaskManager,
  type TaskManagerOptions,
  type TaskRecord,
  type TaskStatus,
  type TaskStore,
} from "./core/tasks.js";
export { taskTools } from "./core/task-tools.js";
export { keys, type Keys } from "./redis/keys.js";
export { connectRedis, closeRedis, type RedisClient, type ConnectOptions } from "./redis/client.js";
export {
  PROTOCOL_VERSION,
  WIRE_ERROR_CODES,
  WireFormatError,
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  type ReplyStatus,
  type ToolReply,
  type ToolRequest,
  type WireContext,
  type WireError,
  type WireErrorCode,
  type WriteBack,
} from "./tool-exec/codec.js";
export { buildCatalog, loadCatalog, publishCatalog, toolSchemaHash, watchCatalog, CatalogError, type Catalog, type CatalogTool, type CatalogWatch } from "./tool-exec/catalog.js";
export { readSession, writeSession, type SessionIdentity, type SessionLookup } from "./tool-exec/session.js";
export { cancelRequest } from "./tool-exec/idempotency.js";
export { RedisTaskStore } from "./tool-exec/task-store.js";
export { StreamWorker, type DeliveredEntry, type Disposition, type EntryHandler, type Heartbeat, type Outbound, type StreamWorkerOptions } from "./redis/stream-worker.js";
export { ToolsService, type ToolsServiceOptions } from "./tool-exec/server.js";
export { ToolsClient, ToolCallError, type ToolCall, type ToolsClientOptions } from "./tool-exec/client.js";
export { RemoteToolRegistry, staleTwice, unavailable, type RemoteOutcome, type RemoteRegistryStats, type RemoteToolRegistryOptions, type Route } from "./inference/remote-registry.js";
export { ProxyPlatformAdapter } from "./inference/proxy-adapter.js";
export { LOOP_TOOLS, openAIModel, runToolLoop, type ChatMessage, type ChatModel, type LoopOptions, type LoopResult, type ModelTurn, type OpenAIModelOptions } from "./inference/llm-loop.js";
export { createGatewayService, type GatewayServiceOptions } from "./gateway/tool-server.js";
export { ConsoleAdapter } from "./gateway/console-adapter.js";
export { isChatPlatform, type ChatPlatform, type IncomingMessage, type OutgoingMessage } from "./gateway/platform.js";
export { HttpChatAdapter, type HttpAdapterOptions } from "./gateway/http-adapter.js";
export { ChatBridge, type ChatBridgeOptions } from "./gateway/bridge.js";
export { ChatService, type ChatServiceOptions } from "./inference/chat-consumer.js";
export { ChatResponder, type ChatResponderOptions, type ChatReply, type ChatTurn } from "./inference/chat-responder.js";
export { withCommands } from "./inference/command-model.js";
export type { ChatAnswer, HistoryTurn, InboundChat } from "./chat/codec.js";
