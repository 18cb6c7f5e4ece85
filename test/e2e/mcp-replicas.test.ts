// `toolfleet mcp` replicas where things go wrong (issue 21; first written by its review): a Redis of the
// test's own (it is paused with SIGSTOP and has keys deleted), `toolfleet mcp --no-auth` replicas on it,
// a real tools worker with the conformance fixture tools.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import { keys, type Keys } from "../../src/redis/keys.js";
import { eventually } from "../support/helpers.js";
import { OwnRedis, connect, exited, startMcpProcess, startToolsProcess, type CliChild } from "../support/redis-helpers.js";

const TOOLS = fileURLToPath(new URL("../support/fixtures/mcp-conformance-tools.js", import.meta.url));
const V11_TOOLS = fileURLToPath(new URL("../support/fixtures/v11-tools.js", import.meta.url));
const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "replicas", version: "1" } },
};
const HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" };

async function initialize(url: string): Promise<string> {
  const res = await fetch(url, { method: "POST", headers: HEADERS, body: JSON.stringify(INIT) });
  assert.equal(res.status, 200);
  await res.text();
  const session = res.headers.get("mcp-session-id");
  assert.ok(session, "a session id");
  return session;
}

describe("toolfleet mcp on a Redis of its own, no fleet secret", () => {
  let own: OwnRedis;
  let redis: RedisNode;
  let k: Keys;
  let env: NodeJS.ProcessEnv;
  const children: CliChild[] = [];
  let url: string;

  before(async () => {
    own = await OwnRedis.start();
    k = keys("tfrev");
    redis = await connect(own.url);
    env = { TOOLFLEET_REDIS_URL: own.url, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_TOOLS_SERVICE_MODE: "remote", TOOLFLEET_FLEET_SECRET: "" };
    children.push(await startToolsProcess(["--worker-id", "rev-tools", "--tools", TOOLS], env));
    const a = await startMcpProcess(["--worker-id", "rev-a", "--port", "0", "--no-auth"], env);
    children.push(a);
    url = a.url;
  });

  after(async () => {
    own.resume();
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await Promise.all(children.map((c) => exited(c)));
    await closeRedis(redis);
    await own.stop();
  });

  test("notifications/cancelled are held to the SDK's checks (Content-Type, batch size) before any is published", async () => {
    const sub = redis.duplicate();
    await sub.connect();
    const heard: string[] = [];
    await sub.subscribe(k.mcpNotices, (message) => void heard.push(message));
    const cancels = (n: number, extra: unknown[] = []): string =>
      JSON.stringify([
        ...Array.from({ length: n }, (_, i) => ({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: i % 60 } })),
        ...extra,
      ]);
    const status = async (headers: Record<string, string>, body: string): Promise<number> => {
      const res = await fetch(url, { method: "POST", headers, body });
      await res.text();
      return res.status;
    };
    try {
      // text/plain: a body the SDK's transport answers 415; 1000 messages: over its batch limit of 100.
      assert.equal(await status({ ...HEADERS, "content-type": "text/plain" }, cancels(1000)), 415);
      assert.equal(await status({ "content-type": "text/plain" }, cancels(1000)), 406, "no Accept: refused first, as the SDK does");
      assert.equal(await status({ ...HEADERS, accept: "application/json" }, cancels(10)), 406);
      assert.equal(await status(HEADERS, cancels(101)), 400);
      assert.equal(await status(HEADERS, cancels(10, [{ jsonrpc: "2.0", method: 7 }])), 400, "a message that is no JSON-RPC message");
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(heard, [], "no cancel notice published for a refused request");
      // Accepted: one notice for the request, each request id once.
      assert.equal(await status(HEADERS, cancels(100)), 202);
      await eventually(() => assert.equal(heard.length, 1), 5000, 20);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(heard.length, 1, "one notice per request");
      const notice = JSON.parse(heard[0] ?? "{}") as { kind: string; calls: { key: string }[] };
      assert.equal(notice.kind, "cancel");
      assert.equal(notice.calls.length, 60);
    } finally {
      await sub.unsubscribe(k.mcpNotices);
      await closeRedis(sub);
    }
  });

  test("a DELETEd session is over: the next request with it is answered 404", async () => {
    const session = await initialize(url);
    const del = await fetch(url, { method: "DELETE", headers: { "mcp-session-id": session } });
    assert.equal(del.status, 200);
    const res = await fetch(url, {
      method: "POST",
      headers: { ...HEADERS, "mcp-session-id": session },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    await res.text();
    assert.equal(res.status, 404);
  });

  test("stopping a replica (SIGTERM, a rolling restart) does not cancel the calls it relays", async () => {
    const b = await startMcpProcess(["--worker-id", "rev-drain", "--port", "0", "--no-auth"], env);
    children.push(b);
    const key = `tfrev-drain-${process.pid}-${Date.now()}`;
    const marks = await connect();
    try {
      const call = fetch(b.url, {
        method: "POST",
        headers: HEADERS,
        body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "mcp_wait", arguments: { ms: 1500, key } } }),
      }).then((r) => r.text().catch((err: unknown) => `stream cut: ${String(err)}`));
      await eventually(async () => assert.ok(await marks.get(`${key}:started`)), 10_000, 50);
      b.kill("SIGTERM");
      const answer = await call.catch((err: unknown) => `request failed: ${String(err)}`);
      await exited(b);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.equal(await marks.get(`${key}:aborted`), null, "the tool was not aborted on its worker");
      assert.match(answer, /waited 1500 ms/, "the client got its result");
    } finally {
      // The fixture tool's marks are in the shared Redis, outside this test's own one.
      await marks.del([`${key}:started`, `${key}:finished`, `${key}:aborted`]);
      await closeRedis(marks);
    }
  });

  test("replicas agree on the session key after it is lost from Redis (a restart without persistence, an eviction)", async () => {
    // Sessions signed with the lost key are lost with it (no replica can know it any more: the client's
    // next request is answered 404 and it initializes again, docs/mcp.md); from then on, every replica
    // signs with the one new key, so a session any of them gives is valid on all.
    const before = await initialize(url);
    await redis.del(k.mcpSessionKey);
    const b = await startMcpProcess(["--worker-id", "rev-b", "--port", "0", "--no-auth"], env);
    children.push(b);
    const list = async (at: string, session: string): Promise<number> => {
      const res = await fetch(at, {
        method: "POST",
        headers: { ...HEADERS, "mcp-session-id": session },
        body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
      });
      await res.text();
      return res.status;
    };
    assert.equal(await list(b.url, before), 404, "a session signed with the lost key: the client is told to initialize again");
    assert.equal(await list(url, await initialize(b.url)), 200, "a session replica B gave after the loss is valid on replica A");
    assert.equal(await list(b.url, await initialize(url)), 200, "a session replica A gives after the loss is valid on replica B");
    assert.equal(await list(url, before), 404, "replica A now signs with the new key too");
  });

  test("a gateway-pinned tool is neither listed to MCP clients nor run for them (it acts on a chat, which an MCP call has not)", async () => {
    children.push(await startToolsProcess(["--worker-id", "rev-v11", "--tools", V11_TOOLS], env));
    const post = async (body: unknown): Promise<string> => {
      const res = await fetch(url, { method: "POST", headers: HEADERS, body: JSON.stringify(body) });
      return res.text();
    };
    const listed = await eventually(
      async () => {
        const text = await post({ jsonrpc: "2.0", id: 1, method: "tools/list" });
        assert.match(text, /"long_side_effect"/, "the v11 worker's tools are in the catalog");
        return text;
      },
      10_000,
      100,
    );
    assert.doesNotMatch(listed, /"gateway_wait"/, "a gateway-pinned tool is not listed");
    const answer = JSON.parse(
      await post({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "gateway_wait", arguments: { ms: 10, key: `tfrev-gw-${process.pid}` } } }),
    ) as { error?: { code: number; message: string } };
    assert.equal(answer.error?.code, -32602, JSON.stringify(answer));
    assert.match(answer.error.message, /runs only on a gateway: MCP clients cannot call it/);
  });

  test("with Redis not answering, a cancel, a DELETE and logging/setLevel are answered within a deadline", async () => {
    const session = await initialize(url);
    const h = { ...HEADERS, "mcp-session-id": session };
    const requests: [string, RequestInit][] = [
      ["cancel", { method: "POST", headers: h, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 9 } }) }],
      ["DELETE", { method: "DELETE", headers: h }],
      ["setLevel", { method: "POST", headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: 4, method: "logging/setLevel", params: { level: "info" } }) }],
    ];
    own.pause();
    try {
      const outcomes = await Promise.all(
        requests.map(async ([what, init]) => {
          try {
            const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
            const text = await res.text();
            return `${what}: answered ${res.status}${/Redis did not answer/.test(text) ? ", Redis did not answer" : ""}`;
          } catch (err) {
            return `${what}: no answer in 20 s (${(err as Error).name})`;
          }
        }),
      );
      // Each within REDIS_WAIT_MS (5 s), saying why: 503 for HTTP's own answers, a JSON-RPC error for a request's.
      assert.deepEqual(outcomes, [
        "cancel: answered 503, Redis did not answer",
        "DELETE: answered 503, Redis did not answer",
        "setLevel: answered 200, Redis did not answer",
      ]);
    } finally {
      own.resume();
    }
  });
});
