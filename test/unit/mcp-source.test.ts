// The MCP-source mapping (docs/mcp.md, "MCP servers as tool sources"): names, schemas (2020-12 too),
// hints and results; the command-line grammar of --mcp, --mcp-url and --mcp-prefix.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { isToolfleetError } from "../../src/core/errors.js";
import { ToolRegistry } from "../../src/core/registry.js";
import { resultText } from "../../src/core/result.js";
import { defineTool } from "../../src/core/tool.js";
import { parseCommand } from "../../src/cli/args.js";
import { TOOLS_COMMAND } from "../../src/cli/serve.js";
import { resultFromMcp } from "../../src/mcp/content.js";
import { callError, fleetToolName, toolFromMcp } from "../../src/mcp/source-tools.js";
import { serverEnvironment } from "../../src/mcp/source.js";
import { checkedSpec, sourcesFromOptions, splitCommand } from "../../src/mcp/source-spec.js";

const never = () => Promise.reject(new Error("not called in this test"));

test("fleet names: the prefix, MCP's '.' and '/' as '_', and null past 64 characters", () => {
  assert.equal(fleetToolName("fs_", "read_file"), "fs_read_file");
  assert.equal(fleetToolName("", "github.search/issues"), "github_search_issues");
  assert.equal(fleetToolName("p_", "x".repeat(63)), null);
});

test("an MCP tool becomes a fleet tool: description, schema, MCP hints (and toolfleet's names beside them), outputSchema", () => {
  const tool: Tool = {
    name: "weather",
    description: "Weather in a city",
    inputSchema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    outputSchema: { type: "object", properties: { celsius: { type: "number" } }, required: ["celsius"] },
    annotations: { title: "Weather", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  };
  const def = toolFromMcp(tool, "w_weather", never);
  assert.equal(def.name, "w_weather");
  assert.equal(def.description, "Weather in a city");
  assert.deepEqual(def.parameters, tool.inputSchema);
  assert.deepEqual(def.outputSchema, tool.outputSchema);
  assert.deepEqual({ ...def.annotations }, { readOnlyHint: true, idempotentHint: true, openWorldHint: false, readOnly: true, idempotent: true });
  assert.deepEqual(def.validate({}), { ok: false, issues: [{ field: "city", message: "is required" }] });
  assert.equal(def.validate({ city: "Oslo" }).ok, true);
});

test("a 2020-12 input schema is validated by its own dialect: prefixItems and $defs work, and bad arguments are named", () => {
  const tool: Tool = {
    name: "point",
    inputSchema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: { coord: { type: "number", minimum: -180, maximum: 180 } },
      properties: { at: { type: "array", prefixItems: [{ $ref: "#/$defs/coord" }, { $ref: "#/$defs/coord" }], items: false } },
      required: ["at"],
    },
  };
  const def = toolFromMcp(tool, "point", never);
  assert.equal(def.description, "");
  assert.equal(def.validate({ at: [10, 20] }).ok, true);
  const bad = def.validate({ at: [10, 500] });
  assert.equal(bad.ok, false);
  assert.deepEqual(!bad.ok && bad.issues.map((i) => i.field), ["at.1"]);
  assert.equal(def.validate({ at: [1, 2, 3] }).ok, false, "items: false refuses a third element");
});

test("an MCP tool whose schema is no object schema is refused with the tool's name", () => {
  assert.throws(
    () => toolFromMcp({ name: "odd", inputSchema: { type: "string" } as unknown as Tool["inputSchema"] }, "odd", never),
    (err: unknown) => isToolfleetError(err) && err.code === "TOOL_DEFINITION_INVALID" && /Tool 'odd'/.test(err.message),
  );
});

test("results: text, image, embedded resources, audio, resource links, structured content and isError map to toolfleet's result", () => {
  const png = "iVBORw0KGgo=";
  const r = resultFromMcp({
    content: [
      { type: "text", text: "hello" },
      { type: "image", data: png, mimeType: "image/png" },
      { type: "resource", resource: { uri: "file:///a.txt", mimeType: "text/plain", text: "file text" } },
      { type: "resource", resource: { uri: "file:///b.bin", blob: "AAEC" } },
      { type: "audio", data: "AAEC", mimeType: "audio/wav" },
      { type: "resource_link", uri: "file:///c.md", name: "c.md", description: "a note" },
    ],
    structuredContent: { n: 1 },
    isError: true,
  });
  assert.deepEqual(r.content, [
    { type: "text", text: "hello" },
    { type: "image", data: png, mimeType: "image/png" },
    { type: "resource", resource: { uri: "file:///a.txt", mimeType: "text/plain", text: "file text" } },
    { type: "resource", resource: { uri: "file:///b.bin", blob: "AAEC" } },
    { type: "resource", resource: { uri: "data:audio/wav;base64", mimeType: "audio/wav", blob: "AAEC" } },
    { type: "text", text: "Resource link: c.md file:///c.md (a note)" },
  ]);
  assert.deepEqual(r.structuredContent, { n: 1 });
  assert.equal(r.isError, true);
  assert.equal(resultText(r), "hello\nfile text\nResource link: c.md file:///c.md (a note)");
  // A legacy { toolResult } answer, and a result with nothing.
  assert.deepEqual(resultFromMcp({ toolResult: { ok: 1 } } as never).content, [{ type: "text", text: '{"ok":1}' }]);
  assert.deepEqual(resultFromMcp({ content: [] }).content, []);
});

test("a bad part from a server fails the call clearly; more parts than the wire carries are cut with a note", () => {
  assert.throws(() => resultFromMcp({ content: [{ type: "image", data: "not base64!", mimeType: "image/png" }] }), /RESULT_INVALID|base64/);
  const many = resultFromMcp({ content: Array.from({ length: 1500 }, (_, i) => ({ type: "text" as const, text: String(i) })) });
  assert.equal(many.content.length, 1000);
  assert.deepEqual(many.content.at(-1), { type: "text", text: "(501 more content parts were dropped)" });
});

test("call errors name the server and the tool: a closed connection is MCP_SERVER_DOWN, an abort CANCELLED, else MCP_CALL_FAILED", () => {
  assert.equal(callError("'srv'", "t", new Error("MCP error -32000: Connection closed"), false).code, "MCP_SERVER_DOWN");
  assert.equal(callError("'srv'", "t", new Error("AbortError"), true).code, "CANCELLED");
  const other = callError("'srv'", "t", new Error("MCP error -32602: bad params"), false);
  assert.equal(other.code, "MCP_CALL_FAILED");
  assert.match(other.message, /MCP server 'srv' failed the call to 't': MCP error -32602: bad params/);
});

test("splitCommand: words, quotes and escapes as a shell splits them, no more", () => {
  assert.deepEqual(splitCommand("npx -y @modelcontextprotocol/server-everything stdio"), ["npx", "-y", "@modelcontextprotocol/server-everything", "stdio"]);
  assert.deepEqual(splitCommand(`node "my server.js" --name 'a b' c\\ d ""`), ["node", "my server.js", "--name", "a b", "c d", ""]);
  assert.throws(() => splitCommand("node 'open"), /unclosed '/);
});

test("--mcp-prefix pairs with the source given just before it; bad specs are usage errors", () => {
  const parsed = parseCommand(TOOLS_COMMAND, [
    "--mcp",
    "node a.js",
    "--mcp-prefix",
    "a_",
    "--mcp-url",
    "http://127.0.0.1:3001/mcp",
    "--mcp",
    "node b.js",
    "--mcp-prefix",
    "b_",
  ]);
  assert.equal(parsed.action, "run");
  const specs = sourcesFromOptions(parsed.action === "run" ? (parsed.order ?? []) : []);
  assert.deepEqual(specs, [{ command: "node a.js", prefix: "a_" }, { url: "http://127.0.0.1:3001/mcp" }, { command: "node b.js", prefix: "b_" }]);
  const usage = (f: () => unknown, re: RegExp) => assert.throws(f, (err: unknown) => isToolfleetError(err) && err.code === "USAGE" && re.test(err.message));
  usage(() => sourcesFromOptions([{ name: "mcp-prefix", value: "x_" }]), /give that first/);
  usage(
    () =>
      sourcesFromOptions([
        { name: "mcp", value: "a" },
        { name: "mcp-prefix", value: "x_" },
        { name: "mcp-prefix", value: "y_" },
      ]),
    /two prefixes/,
  );
  usage(() => checkedSpec({ url: "ftp://x" }), /http\(s\) URL/);
  usage(() => checkedSpec({ url: "not a url" }), /not a URL/);
  usage(() => checkedSpec({ command: "  " }), /empty/);
  usage(() => checkedSpec({ command: "a", prefix: "bad prefix" }), /--mcp-prefix/);
  usage(() => checkedSpec({}), /a command or a url/);
});

test("ToolRegistry.unregister removes tools from every listing, and skips names it does not have", () => {
  const registry = new ToolRegistry({ taskManager: null });
  const t = (name: string) => defineTool({ name, description: name, parameters: { type: "object" }, handler: () => name });
  registry.register(t("a"), t("b"));
  assert.equal(registry.unregister("a", "nope"), 1);
  assert.deepEqual([...registry.toolNames()], ["b"]);
  assert.deepEqual(
    registry.getOpenAITools().map((o) => o.function.name),
    ["b"],
  );
  registry.register(t("a")); // the name is free again
  assert.equal(registry.size, 2);
});

test("a stdio MCP server starts with the worker's environment less the fleet's TOOLFLEET_* secrets", () => {
  const env = serverEnvironment({
    PATH: "/usr/bin",
    HOME: "/home/a",
    GITHUB_TOKEN: "the server's own",
    TOOLFLEET_FLEET_SECRET: "s".repeat(32),
    TOOLFLEET_REDIS_URL: "redis://:pw@db:6379",
    toolfleet_llm_api_key: "k",
    UNSET: undefined,
  });
  assert.deepEqual(env, { PATH: "/usr/bin", HOME: "/home/a", GITHUB_TOKEN: "the server's own" });
});
