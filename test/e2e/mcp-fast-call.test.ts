// `toolfleet mcp` answers one tools/call in JSON without an SDK server (src/mcp/fast-call.ts); every
// other request goes through the SDK's server and transport. The two must answer alike: each call here
// is sent both as one message (the fast path) and as a batch of one, which the SDK path takes and, in
// JSON, answers with the one response alone — so status, content type and body must be byte for byte
// the same. A real `toolfleet mcp` and a real tools worker on the real Redis.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { isPlainCall } from "../../src/mcp/fast-call.js";
import { eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, exited, startMcpProcess, startToolsProcess, testKeys, type CliChild } from "../support/redis-helpers.js";

const TOOLS = fileURLToPath(new URL("../support/fixtures/mcp-conformance-tools.js", import.meta.url));

type Answer = { status: number; type: string | null; body: string };

describe("toolfleet mcp: a tools/call answered without an SDK server answers as the SDK's server does", () => {
  let k: Keys;
  let redis: RedisNode;
  const children: CliChild[] = [];
  let url: string;
  let nextId = 1;

  const post = async (body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Answer> => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
    return { status: r.status, type: r.headers.get("content-type"), body: await r.text() };
  };
  const call = (params: unknown): Record<string, unknown> => ({ jsonrpc: "2.0", id: nextId++, method: "tools/call", params });
  /** The call alone (the fast path) and in a batch of one (the SDK's path), with the same id. */
  const bothWays = async (params: unknown, headers: Record<string, string> = {}): Promise<{ fast: Answer; sdk: Answer }> => {
    const message = call(params);
    return { fast: await post(message, headers), sdk: await post([message], headers) };
  };

  before(async () => {
    k = testKeys();
    redis = await connect();
    const env = { TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_TOOLS_SERVICE_MODE: "remote" };
    children.push(await startToolsProcess(["--worker-id", "mcp-fast-tools", "--tools", TOOLS], env));
    const mcp = await startMcpProcess(["--worker-id", "mcp-fast", "--port", "0", "--no-auth"], env);
    children.push(mcp);
    url = mcp.url;
    // The worker's catalog reaches the replica within a second of its start; before it, every tool is unknown.
    await eventually(async () => assert.match((await post({ jsonrpc: "2.0", id: 0, method: "tools/list" })).body, /test_simple_text/), 10_000, 50);
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
    await dropNamespace(redis, k);
    await closeRedis(redis);
  });

  test("which messages the fast path takes: one call with an id, not about a task", () => {
    assert.equal(isPlainCall({ method: "tools/call", id: 1, params: { name: "x" } }), true);
    assert.equal(isPlainCall({ method: "tools/call", id: "a", params: { name: "x", _meta: { progressToken: 1 } } }), true);
    assert.equal(isPlainCall({ method: "tools/call", params: { name: "x" } }), false);
    assert.equal(isPlainCall({ method: "tools/list", id: 1 }), false);
    assert.equal(isPlainCall({ method: "tools/call", id: 1, params: { name: "x", task: { ttl: 1000 } } }), false);
    assert.equal(
      isPlainCall({ method: "tools/call", id: 1, params: { name: "x", _meta: { "io.modelcontextprotocol/related-task": { taskId: "t" } } } }),
      false,
    );
  });

  test("results, a tool's failure, an unknown tool, invalid params and an unsupported protocol version: the same answers both ways", async () => {
    const cases: { params: unknown; headers?: Record<string, string>; check: (a: Answer) => void }[] = [
      {
        params: { name: "test_simple_text", arguments: {} },
        check: (a) => assert.match(a.body, /"result":\{"content":\[\{"type":"text","text":"This is a simple/),
      },
      { params: { name: "test_multiple_content_types" }, check: (a) => assert.match(a.body, /"type":"image"/) },
      { params: { name: "json_schema_2020_12_tool", arguments: { name: "n", address: { street: "s" } } }, check: (a) => assert.match(a.body, /street/) },
      { params: { name: "test_error_handling", arguments: {} }, check: (a) => assert.match(a.body, /"isError":true/) },
      { params: { name: "no_such_tool", arguments: {} }, check: (a) => assert.match(a.body, /"error":\{"code":-32602,"message":"Unknown tool 'no_such_tool'/) },
      { params: { name: 5 }, check: (a) => assert.match(a.body, /"error":\{"code":-32603,"message":"\[\\n/) },
      { params: { name: "test_simple_text", arguments: [1] }, check: (a) => assert.match(a.body, /expected record/) },
      { params: undefined, check: (a) => assert.match(a.body, /expected object, received undefined/) },
      {
        params: { name: "test_simple_text" },
        headers: { "mcp-protocol-version": "1999-01-01" },
        check: (a) => {
          assert.equal(a.status, 400);
          assert.match(a.body, /"code":-32000,"message":"Bad Request: Unsupported protocol version: 1999-01-01/);
        },
      },
      { params: { name: "test_simple_text" }, headers: { "mcp-protocol-version": "2025-06-18" }, check: (a) => assert.equal(a.status, 200) },
    ];
    for (const { params, headers, check } of cases) {
      const { fast, sdk } = await bothWays(params, headers);
      assert.deepEqual(fast, sdk, `${JSON.stringify(params)}: the fast path answered as the SDK's server`);
      assert.equal(fast.type, "application/json");
      check(fast);
    }
  });

  test("the same call with a progress token (an SSE stream from the SDK's server) has the same result", async () => {
    const params = { name: "test_multiple_content_types", arguments: {} };
    const plain = JSON.parse((await post(call(params))).body) as { result: unknown };
    const message = call({ ...params, _meta: { progressToken: "p" } });
    const streamed = await post(message);
    assert.equal(streamed.type, "text/event-stream");
    const events = streamed.body
      .split("\n")
      .filter((line) => line.startsWith("data: "))
      .map((line) => JSON.parse(line.slice(6)) as { id?: unknown; result?: unknown });
    assert.deepEqual(events.find((e) => e.id === message.id)?.result, plain.result);
  });

  test("a call whose connection closes is aborted on its worker; one cancelled by a notice is answered alike both ways", async () => {
    const key = `${k.namespace}:closed`;
    const gone = new AbortController();
    const answer = post(call({ name: "mcp_wait", arguments: { ms: 30_000, key } }), {}, gone.signal);
    await eventually(async () => assert.ok(await redis.get(`${key}:started`)), 10_000);
    gone.abort();
    await assert.rejects(answer, /abort/i);
    await eventually(async () => assert.ok(await redis.get(`${key}:aborted`), "the tool saw the abort on its worker"), 5000);
    assert.equal(await redis.get(`${key}:finished`), null);

    const cancelled: string[] = [];
    for (const batch of [false, true]) {
      const mark = `${k.namespace}:cancel-${batch}`;
      const message = { jsonrpc: "2.0", id: 1000, method: "tools/call", params: { name: "mcp_wait", arguments: { ms: 30_000, key: mark } } };
      const pending = post(batch ? [message] : message);
      await eventually(async () => assert.ok(await redis.get(`${mark}:started`)), 10_000);
      const notice = await post({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1000, reason: "enough" } });
      assert.equal(notice.status, 202);
      const done = await pending;
      assert.equal(done.status, 200);
      cancelled.push(done.body);
      await eventually(async () => assert.ok(await redis.get(`${mark}:aborted`), "the tool saw the cancel on its worker"), 5000);
    }
    assert.equal(cancelled[0], cancelled[1], "the cancelled call's answer is the same both ways");
  });
});
