// `toolfleet/protocol`: the pieces below the fleet API, for a worker written
// by hand, a test, a benchmark or a tool: the wire (docs/protocol.md), the
// Redis keys, the stream engines and the RPC clients and servers.
export { WIRE_ERROR_CODES, isToolfleetError, wireError, type LocalErrorCode, type WireError } from "./core/errors.js";
export {
  OUTCOME_KINDS,
  gatewayUnavailable,
  isFailure,
  lostInRestart,
  noLiveWorker,
  permissionDenied,
  staleTwice,
  unavailable,
  unknownTool,
} from "./core/outcome.js";
export { MAX_CALL_TIMEOUT_MS } from "./core/timeout.js";
export { CallSignal, type ExecuteToolParams, type GatewayOperation } from "./core/context.js";
export { isAllowedBy, openAITool } from "./core/registry.js";
export { formatArgIssues, type ArgIssue, type ArgsValidator, type JsonSchema } from "./core/validate.js";
export { assertToolName } from "./core/tool.js";
export { TOOLS_SERVICE_MODES, assertDisjointPins, redactRedisUrl } from "./config/schema.js";
export { CONFIG_FILE_VAR, ENV_VARS, type LoadOptions } from "./config/load.js";
export { DEFAULT_POOL, POOL_PATTERN, keys, type Keys } from "./redis/keys.js";
export { closeRedis, connectRedis, type ConnectOptions, type RedisClient } from "./redis/client.js";
export { LiveWorkers, type LiveWorkersOptions } from "./redis/live-workers.js";
export { BODY_FIELD, PROTOCOL_VERSION, type EntryFields } from "./redis/entry-codec.js";
export {
  StreamWorker,
  type DeliveredEntry,
  type Disposition,
  type EntryHandler,
  type Heartbeat,
  type Outbound,
  type StreamWorkerOptions,
} from "./redis/stream-worker.js";
export { RpcClient, type RpcClientOptions } from "./redis/rpc-client.js";
export {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  type ReplyStatus,
  type ToolReply,
  type ToolRequest,
  type WireContext,
  type WriteBack,
} from "./tool-exec/codec.js";
export { SIG_FIELD, signEntry, signatureProblem, type SignedKind } from "./tool-exec/signing.js";
export { buildCatalog, toolSchemaHash, type Catalog, type CatalogTool } from "./tool-exec/catalog.js";
export {
  PRESENCE_REFRESH_MS,
  PRESENCE_TTL_MS,
  loadCatalog,
  publishCatalog,
  readLiveParts,
  refreshPresence,
  watchCatalog,
  type CatalogWatch,
  type LivePart,
  type Publisher,
} from "./tool-exec/catalog-parts.js";
export { mergeCatalog, type CatalogConflict, type CatalogPart, type CatalogPublisher, type MergedCatalog, type ToolOffer } from "./tool-exec/catalog-merge.js";
export { CatalogView, type CallRoute, type CatalogViewOptions } from "./tool-exec/catalog-view.js";
export { readSession, writeSession, type SessionIdentity, type SessionLookup } from "./tool-exec/session.js";
export { cancelRequest, cancelUnstarted, type CancelVerdict, type PublishedRequest } from "./tool-exec/idempotency.js";
export { cancelRunning } from "./tool-exec/cancel.js";
export { PROGRESS_FIELD, decodeProgress, encodeProgress } from "./redis/progress-entry.js";
export { RedisTaskStore } from "./tool-exec/task-store.js";
export { ToolExecServer, type ToolExecServerOptions } from "./tool-exec/server.js";
export { ToolsClient, publishedRequestOf, type ToolCall, type ToolsClientOptions } from "./tool-exec/client.js";
export {
  decodeAnswer,
  decodeInbound,
  encodeAnswer,
  encodeInbound,
  type ChatAnswer,
  type ChatEnd,
  type ChatReply,
  type HistoryTurn,
  type InboundChat,
  type ToolCallDetail,
} from "./chat/codec.js";
export { ChatClient, InProcessChat, type ChatTransport } from "./chat/client.js";
export { ChatBridge, type ChatBridgeOptions } from "./gateway/bridge.js";
export { MemoryChatHistory, RedisChatHistory, type ChatHistoryStore, type HistoryEntry, type RedisChatHistoryOptions } from "./gateway/chat-history.js";
export { createGatewayToolServer, type GatewayToolServerOptions } from "./gateway/tool-server.js";
export { ProxyPlatformAdapter } from "./inference/proxy-adapter.js";
export { ChatConsumer, type ChatConsumerOptions } from "./inference/chat-consumer.js";
export { ChatResponder, type ChatResponderOptions, type ChatTurn } from "./inference/chat-responder.js";
export { LOOP_TOOLS, runToolLoop, type ChatMessage, type LoopOptions, type LoopResult, type LoopToolCall, type ModelTurn } from "./inference/llm-loop.js";
