// `toolfleet mcp` as real processes over the real Redis: two replicas behind a "load balancer" that
// alternates every request between them (no sticky sessions), a real tools worker running the tools,
// the MCP SDK's own client; then who may call what (tokens file, signed tokens, permissions, 401),
// the Host/Origin checks and --no-auth's refusal on a reachable host.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import { LoggingMessageNotificationSchema, ToolListChangedNotificationSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { eventually } from "../support/helpers.js";
import {
  CLI,
  REDIS_URL,
  connect,
  dropNamespace,
  exited,
  freePort,
  startMcpProcess,
  startToolsProcess,
  testKeys,
  type CliChild,
} from "../support/redis-helpers.js";

const TOOLS = fileURLToPath(new URL("../support/fixtures/mcp-conformance-tools.js", import.meta.url));
const MORE_TOOLS = fileURLToPath(new URL("../support/fixtures/counting-tools.js", import.meta.url));
const SECRET = "mcp-test-fleet-secret-0123456789abcdef";
const ALICE = "alice-token-0123456789";
const BOB = "bob-token-0123456789ab";
const run = promisify(execFile);

/** A client whose requests a "load balancer" sends to the replicas in turn, each request to the next (a cancel to another than its call's). */
function balancedClient(urls: string[], token: string): { client: Client; transport: StreamableHTTPClientTransport; hits: number[] } {
  const hits = urls.map(() => 0);
  let turn = 0;
  let lastCall = 0;
  const fetchInTurn: FetchLike = (url, init) => {
    const body = typeof init?.body === "string" ? init.body : "";
    // A cancel always goes to another replica than the one running the call: the worst case, made certain.
    const i = body.includes('"notifications/cancelled"') ? (lastCall + 1) % urls.length : turn++ % urls.length;
    if (body.includes('"tools/call"')) lastCall = i;
    hits[i] = (hits[i] ?? 0) + 1;
    return fetch(urls[i] ?? String(url), init);
  };
  const transport = new StreamableHTTPClientTransport(new URL(urls[0] ?? ""), {
    fetch: fetchInTurn,
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  return { client: new Client({ name: "toolfleet-test", version: "1.0.0" }), transport, hits };
}

const text = (r: CallToolResult): string => r.content.map((c) => (c.type === "text" ? c.text : `[${c.type}]`)).join("\n");

describe("toolfleet mcp: two replicas, one client, no sticky sessions", () => {
  let k: Keys;
  let redis: RedisNode;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const children: CliChild[] = [];
  let urls: string[];

  before(async () => {
    k = testKeys();
    redis = await connect();
    dir = mkdtempSync(join(tmpdir(), "toolfleet-mcp-server-"));
    const tokens = join(dir, "tokens.json");
    writeFileSync(
      tokens,
      JSON.stringify({
        tokens: [
          { user: "alice", token: ALICE },
          { user: "bob", token: BOB },
        ],
      }),
    );
    env = { TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_TOOLS_SERVICE_MODE: "remote", TOOLFLEET_FLEET_SECRET: SECRET };
    children.push(await startToolsProcess(["--worker-id", "mcp-tools", "--tools", TOOLS], env));
    // Given the tools too, so the inference-pinned one runs in the replica that takes the call.
    const replicas = await Promise.all(
      ["a", "b"].map((r) => startMcpProcess(["--worker-id", `mcp-${r}`, "--port", "0", "--tokens", tokens, "--tools", TOOLS], env)),
    );
    children.push(...replicas);
    urls = replicas.map((r) => r.url);
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
    rmSync(dir, { recursive: true, force: true });
    await dropNamespace(redis, k);
    await closeRedis(redis);
  });

  test("every call succeeds whichever replica takes it; list_changed reaches the client when a worker's tools change", async () => {
    const { client, transport, hits } = balancedClient(urls, ALICE);
    const changes: number[] = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changes.push(Date.now()));
    await client.connect(transport);
    try {
      assert.ok(transport.sessionId, "the server gave a session id");
      const listed = await client.listTools();
      const names = listed.tools.map((t) => t.name);
      for (const name of ["test_simple_text", "json_schema_2020_12_tool", "mcp_wait", "mcp_who"]) assert.ok(names.includes(name), `${name} listed`);
      for (let i = 0; i < 10; i++) {
        const r = (await client.callTool({ name: "test_simple_text", arguments: {} })) as CallToolResult;
        assert.equal(text(r), "This is a simple text response for testing.");
        assert.notEqual(r.isError, true);
      }
      assert.equal((await client.callTool({ name: "mcp_who", arguments: {} })).isError, undefined);
      // Routed as an inference worker routes it: an inference-pinned tool runs in the replica, not on the worker.
      const replicaPids = children.slice(1).map((c) => String(c.pid));
      for (let i = 0; i < 2; i++) assert.ok(replicaPids.includes(text((await client.callTool({ name: "mcp_where", arguments: {} })) as CallToolResult)));
      assert.ok(
        hits.every((n) => n >= 5),
        `both replicas answered: ${hits.join(", ")}`,
      );
      // Another worker (in the same pool) with other tools: the catalog changes, each replica sees it itself.
      const more = await startToolsProcess(["--worker-id", "mcp-more", "--tools", MORE_TOOLS], env);
      children.push(more);
      await eventually(() => assert.ok(changes.length >= 1, "list_changed arrived"), 10_000);
      const relisted = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(relisted.length > names.length, "the new worker's tools are listed");
      const before = changes.length;
      more.kill("SIGTERM");
      await exited(more);
      await eventually(() => assert.ok(changes.length > before, "list_changed again when they left"), 10_000);
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), [...names].sort());
    } finally {
      await client.close();
    }
  });

  test("progress and log messages reach the client; a call cancelled from the client stops on its worker", async () => {
    const { client, transport } = balancedClient(urls, ALICE);
    await client.connect(transport);
    try {
      const updates: number[] = [];
      const done = (await client.callTool({ name: "mcp_wait", arguments: { ms: 500, key: `${k.namespace}:p` } }, undefined, {
        onprogress: (p) => updates.push(p.progress),
      })) as CallToolResult;
      assert.equal(text(done), "waited 500 ms");
      assert.ok(updates.length >= 3, `progress arrived: ${updates.join(", ")}`);
      assert.deepEqual(
        updates,
        [...updates].sort((a, b) => a - b),
      );

      // Log messages from the worker, filtered by the level the session set (kept in Redis: the call may reach the other replica).
      const logs: string[] = [];
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(`${n.params.level} ${String(n.params.data)}`));
      // A session that set no level gets none (its calls are answered in JSON).
      await client.callTool({ name: "test_tool_with_logging", arguments: {} });
      assert.deepEqual(logs, []);
      await client.setLoggingLevel("info");
      await client.callTool({ name: "test_tool_with_logging", arguments: {} });
      assert.deepEqual(logs, ["info Tool execution started", "info Tool processing data", "info Tool execution completed"]);
      await client.setLoggingLevel("debug");
      await client.callTool({ name: "test_tool_with_logging", arguments: {} });
      assert.equal(logs.length, 7, logs.join("\n"));
      assert.match(logs[6] ?? "", /^debug a debug line/);

      const key = `${k.namespace}:c`;
      const abort = new AbortController();
      let first: () => void = () => undefined;
      const started = new Promise<void>((resolve) => (first = resolve));
      const call = client.callTool({ name: "mcp_wait", arguments: { ms: 30_000, key } }, undefined, { signal: abort.signal, onprogress: () => first() });
      await started;
      // The SDK client sends notifications/cancelled (a POST, to the other replica in turn) and rejects the call.
      abort.abort(new Error("the user gave up"));
      await assert.rejects(call, /abort|gave up/i);
      await eventually(async () => assert.ok(await redis.get(`${key}:aborted`), "the tool saw the abort on its worker"), 5000);
      assert.equal(await redis.get(`${key}:finished`), null);
    } finally {
      await client.close();
    }
  });

  test("tokens: none → 401 with WWW-Authenticate; a file token and a signed token name their users; permissions apply", async () => {
    const url = urls[0] ?? "";
    const init = {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
    };
    const post = (headers: Record<string, string>): Promise<Response> =>
      fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
        body: JSON.stringify(init),
      });
    const none = await post({});
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer realm="toolfleet"/);
    const wrong = await post({ authorization: "Bearer not-a-token-at-all" });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get("www-authenticate") ?? "", /invalid_token/);

    const { stdout } = await run(process.execPath, [CLI, "mcp", "token", "--user", "carol", "--days", "1"], { env: { ...process.env, ...env } });
    const signed = stdout.trim();
    assert.match(signed, /^tfm1\.carol\.\d+\./);
    const tampered = signed.replace(".carol.", ".alice.");
    assert.equal((await post({ authorization: `Bearer ${tampered}` })).status, 401, "a signed token names only its own user");

    const who = async (token: string): Promise<CallToolResult> => {
      const { client, transport } = balancedClient(urls, token);
      await client.connect(transport);
      try {
        return (await client.callTool({ name: "mcp_who", arguments: {} })) as CallToolResult;
      } finally {
        await client.close();
      }
    };
    assert.equal(text(await who(ALICE)), "alice");
    assert.equal(text(await who(signed)), "carol");
    const denied = await who(BOB);
    assert.equal(denied.isError, true);
    assert.match(text(denied), /Permission denied: user 'bob' is not allowed to run tool 'mcp_who'/);
    const { client, transport } = balancedClient(urls, BOB);
    await client.connect(transport);
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(!names.includes("mcp_who") && names.includes("test_simple_text"), "bob is not shown a tool he may not run");
    } finally {
      await client.close();
    }
  });

  test("a session id is the user's own; bad Host and Origin headers are refused", async () => {
    const url = urls[0] ?? "";
    const { client, transport } = balancedClient(urls, ALICE);
    await client.connect(transport);
    const session = transport.sessionId ?? "";
    await client.close();
    const ping = (headers: Record<string, string>): Promise<Response> =>
      fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
        body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }),
      });
    assert.equal((await ping({ authorization: `Bearer ${ALICE}`, "mcp-session-id": session })).status, 200);
    assert.equal((await ping({ authorization: `Bearer ${BOB}`, "mcp-session-id": session })).status, 404, "bob cannot use alice's session");
    assert.equal((await ping({ authorization: `Bearer ${ALICE}`, "mcp-session-id": `${session.slice(0, -1)}x` })).status, 404);
    assert.equal((await ping({ authorization: `Bearer ${ALICE}`, origin: "http://evil.example.com" })).status, 403);
    // fetch sets Host from the URL; a request naming another host is sent raw.
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        url,
        { method: "POST", headers: { host: "evil.example.com", authorization: `Bearer ${ALICE}`, "content-type": "application/json" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ jsonrpc: "2.0", id: 3, method: "ping" }));
    });
    assert.equal(status, 403);
  });

  test("over stdio: the client's process is --user; calls, logs, cancel and list_changed as over HTTP; it ends when stdin closes", async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "mcp", "--stdio", "--user", "alice", "--worker-id", "mcp-stdio"],
      env: { ...(process.env as Record<string, string>), ...(env as Record<string, string>), TOOLFLEET_LOG_LEVEL: "warn" },
      stderr: "pipe",
    });
    const client = new Client({ name: "toolfleet-test", version: "1.0.0" });
    const changes: number[] = [];
    const logs: string[] = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changes.push(Date.now()));
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(String(n.params.data)));
    await client.connect(transport);
    const pid = transport.pid;
    try {
      assert.equal(text((await client.callTool({ name: "mcp_who", arguments: {} })) as CallToolResult), "alice");
      await client.setLoggingLevel("info");
      await client.callTool({ name: "test_tool_with_logging", arguments: {} });
      assert.deepEqual(logs, ["Tool execution started", "Tool processing data", "Tool execution completed"]);
      const key = `${k.namespace}:stdio`;
      const abort = new AbortController();
      let first: () => void = () => undefined;
      const started = new Promise<void>((resolve) => (first = resolve));
      const call = client.callTool({ name: "mcp_wait", arguments: { ms: 30_000, key } }, undefined, { signal: abort.signal, onprogress: () => first() });
      await started;
      abort.abort(new Error("stop"));
      await assert.rejects(call);
      await eventually(async () => assert.ok(await redis.get(`${key}:aborted`), "the tool saw the abort on its worker"), 5000);
      const more = await startToolsProcess(["--worker-id", "mcp-more-stdio", "--tools", MORE_TOOLS], env);
      children.push(more);
      await eventually(() => assert.ok(changes.length >= 1, "list_changed arrived"), 10_000);
      more.kill("SIGTERM");
      await exited(more);
    } finally {
      await client.close();
    }
    assert.ok(pid);
    await eventually(() => assert.throws(() => process.kill(pid, 0), /ESRCH/, "the server ended with its stdin"), 10_000, 50);
  });

  test("--no-auth is refused on a host other machines can reach", async () => {
    const port = await freePort();
    const result = await run(process.execPath, [CLI, "mcp", "--no-auth", "--host", "0.0.0.0", "--port", String(port)], {
      env: { ...process.env, ...env },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, stderr: err.stderr ?? "" }),
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--no-auth is refused on a host other machines can reach \(0\.0\.0\.0\)/);
  });

  test("refused at start: a tokens file without a token and no fleet secret; a wildcard --host without --allowed-host", async () => {
    const empty = join(dir, "no-tokens.json");
    writeFileSync(empty, JSON.stringify({ tokens: [] }));
    const refused = async (args: string[], fleetSecret: string): Promise<{ code: number; stderr: string }> =>
      run(process.execPath, [CLI, "mcp", "--port", String(await freePort()), ...args], {
        env: { ...process.env, ...env, TOOLFLEET_FLEET_SECRET: fleetSecret },
      }).then(
        () => ({ code: 0, stderr: "" }),
        (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, stderr: err.stderr ?? "" }),
      );
    const noTokens = await refused(["--tokens", empty], "");
    assert.equal(noTokens.code, 2, noTokens.stderr);
    assert.match(noTokens.stderr, /no way to authenticate MCP clients: give --tokens FILE \(with at least one token\)/);
    const wildcard = await refused(["--host", "0.0.0.0"], SECRET);
    assert.equal(wildcard.code, 2, wildcard.stderr);
    assert.match(wildcard.stderr, /--host 0\.0\.0\.0 listens on every address .*--allowed-host NAME/);
  });
});
