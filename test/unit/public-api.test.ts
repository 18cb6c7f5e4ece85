import assert from "node:assert/strict";
import { test } from "node:test";

// The package's public surface, pinned: a change here is a change to what users may import.
// The root holds what an application uses; `toolfleet/protocol` the pieces below the fleet API.
const ROOT = [
  "ConsoleAdapter",
  "DEFAULTS",
  "DiscordAdapter",
  "GATEWAY_PINNED_TOOLS",
  "HttpChatAdapter",
  "INFERENCE_PINNED_TOOLS",
  "LiveConfig",
  "MemoryTaskStore",
  "RemoteToolRegistry",
  "TOOL_NAME_PATTERN",
  "TaskManager",
  "ToolContext",
  "ToolRegistry",
  "ToolfleetError",
  "createCaller",
  "createGateway",
  "createInProcessFleet",
  "createInferenceWorker",
  "createLogger",
  "createMcpServer",
  "createToolsWorker",
  "defineConfig",
  "defineTool",
  "discordTools",
  "isChatPlatform",
  "isToolResult",
  "loadConfig",
  "openAIModel",
  "progressLine",
  "resultText",
  "silentLogger",
  "staticConfig",
  "taskTools",
  "toolResult",
  "withCommands",
];

const PROTOCOL = [
  "BODY_FIELD",
  "CONFIG_FILE_VAR",
  "CallSignal",
  "ChatBridge",
  "ChatClient",
  "ChatConsumer",
  "ChatResponder",
  "ENV_VARS",
  "InProcessChat",
  "LOOP_TOOLS",
  "LiveWorkers",
  "MAX_CALL_TIMEOUT_MS",
  "MemoryChatHistory",
  "OUTCOME_KINDS",
  "PROTOCOL_VERSION",
  "ProxyPlatformAdapter",
  "RedisChatHistory",
  "RedisTaskStore",
  "RpcClient",
  "StreamWorker",
  "TOOLS_SERVICE_MODES",
  "ToolExecServer",
  "ToolsClient",
  "WIRE_ERROR_CODES",
  "assertDisjointPins",
  "assertToolName",
  "buildCatalog",
  "PROGRESS_FIELD",
  "cancelRequest",
  "cancelRunning",
  "cancelUnstarted",
  "decodeProgress",
  "encodeProgress",
  "closeRedis",
  "connectRedis",
  "createGatewayToolServer",
  "decodeAnswer",
  "decodeInbound",
  "decodeReply",
  "SIG_FIELD",
  "signEntry",
  "signatureProblem",
  "decodeRequest",
  "encodeAnswer",
  "encodeInbound",
  "encodeReply",
  "encodeRequest",
  "formatArgIssues",
  "gatewayUnavailable",
  "isAllowedBy",
  "isFailure",
  "isToolfleetError",
  "keys",
  "loadCatalog",
  "lostInRestart",
  "noLiveWorker",
  "openAITool",
  "permissionDenied",
  "publishCatalog",
  "publishedRequestOf",
  "readSession",
  "redactRedisUrl",
  "runToolLoop",
  "staleTwice",
  "toolSchemaHash",
  "unavailable",
  "unknownTool",
  "watchCatalog",
  "wireError",
  "CatalogView",
  "DEFAULT_POOL",
  "POOL_PATTERN",
  "PRESENCE_REFRESH_MS",
  "PRESENCE_TTL_MS",
  "mergeCatalog",
  "readLiveParts",
  "refreshPresence",
  "writeSession",
];

test("the root export is exactly the application's surface", async () => {
  const api = await import("../../src/index.js");
  assert.deepEqual(Object.keys(api).sort(), [...ROOT].sort());
});

test("toolfleet/protocol is exactly the protocol surface, and shares nothing with the root", async () => {
  const api = await import("../../src/protocol.js");
  assert.deepEqual(Object.keys(api).sort(), [...PROTOCOL].sort());
  assert.deepEqual(
    PROTOCOL.filter((name) => ROOT.includes(name)),
    [],
  );
});

test("package.json exports the root and the protocol subpath, and nothing else", async () => {
  const { readFileSync } = await import("node:fs");
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    exports: Record<string, { types: string; default: string }>;
  };
  assert.deepEqual(Object.keys(pkg.exports).sort(), [".", "./protocol"]);
  assert.equal(pkg.exports["."]?.default, "./dist/src/index.js");
  assert.equal(pkg.exports["./protocol"]?.default, "./dist/src/protocol.js");
});
