import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { WebChatClient } from "../../src/cli/web-client.js";
import { closeRedis } from "../../src/redis/client.js";
import { eventually } from "../support/helpers.js";
import { startScriptedLLM } from "../support/fixtures/scripted-llm.js";
import {
  REDIS_URL,
  connect,
  dropNamespace,
  exited,
  startFleet,
  startMcpProcess,
  startToolsProcess,
  testKeys,
  type CliChild,
} from "../support/redis-helpers.js";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}

interface Collected extends OtlpSpan {
  service: string;
}

/**
 * An OTLP/HTTP collector stand-in on loopback (the JSON encoding the exporter sends, from the OTLP
 * specification): it keeps every span it is sent, with the service that sent it.
 */
async function startCollector(): Promise<{ url: string; spans: Collected[]; close(): Promise<void> }> {
  const spans: Collected[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      if (req.url === "/v1/traces" && req.method === "POST") {
        const doc = JSON.parse(body) as {
          resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
        };
        for (const rs of doc.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "?";
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service });
        }
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const attr = (s: OtlpSpan, key: string): string | undefined => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? String(v.intValue) : undefined);
};

test(
  "one chat message needing a remote, a gateway-pinned and an inference-pinned tool is one trace, with spans from the gateway, inference and tools processes linked parent to child",
  { timeout: 120_000 },
  async () => {
    const collector = await startCollector();
    const llm = await startScriptedLLM((req) => {
      if (req.messages.at(-1)?.role === "tool") return { content: "done" };
      return {
        calls: [
          { name: "echo", args: { text: "traced" } },
          { name: "discord_react", args: { emoji: "🔭" } },
          { name: "extend_tool_loop", args: { turns: 2 } },
        ],
      };
    });
    const k = testKeys();
    const fleet = await startFleet(["--tools-workers", "1"], {
      TOOLFLEET_NAMESPACE: k.namespace,
      TOOLFLEET_REDIS_URL: REDIS_URL,
      TOOLFLEET_LLM_API_KEY: "test-key",
      TOOLFLEET_LLM_BASE_URL: llm.baseURL,
      TOOLFLEET_LLM_MODEL: "scripted",
      // The standard OpenTelemetry variables: every process of the fleet exports to the collector.
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
    const redis = await connect();
    try {
      const chat = await WebChatClient.open(fleet.url);
      try {
        assert.equal((await chat.ask("trace this")).answer.text, "done");
      } finally {
        chat.close();
      }
      const named = (name: string): Collected => {
        const found = collector.spans.filter((s) => s.name === name);
        assert.equal(found.length, 1, `${found.length} spans named '${name}': ${collector.spans.map((s) => `${s.service}:${s.name}`).join(", ")}`);
        return found[0]!;
      };
      const spans = await eventually(
        () => ({
          message: named("chat message"),
          turn: named("chat turn"),
          echoCall: named("tool call echo"),
          echoRun: named("tool run echo"),
          reactCall: named("tool call discord_react"),
          reactRun: named("tool run discord_react"),
          pinnedCall: named("tool call extend_tool_loop"),
        }),
        15_000,
        100,
      );
      // One trace.
      assert.deepEqual(new Set(Object.values(spans).map((s) => s.traceId)).size, 1);
      // From three processes.
      assert.equal(spans.message.service, "toolfleet-gateway");
      assert.equal(spans.turn.service, "toolfleet-inference");
      assert.equal(spans.echoRun.service, "toolfleet-tools");
      assert.equal(spans.reactRun.service, "toolfleet-gateway");
      // Parent to child: message → turn → each call → its run on the worker that ran it.
      assert.equal(spans.turn.parentSpanId, spans.message.spanId);
      for (const call of [spans.echoCall, spans.reactCall, spans.pinnedCall]) assert.equal(call.parentSpanId, spans.turn.spanId);
      assert.equal(spans.echoRun.parentSpanId, spans.echoCall.spanId);
      assert.equal(spans.reactRun.parentSpanId, spans.reactCall.spanId);
      // What each says about itself.
      assert.deepEqual([attr(spans.echoCall, "toolfleet.route"), attr(spans.echoCall, "toolfleet.outcome")], ["remote", "ok"]);
      assert.equal(attr(spans.reactCall, "toolfleet.route"), "gateway");
      assert.equal(attr(spans.pinnedCall, "toolfleet.route"), "local");
      assert.equal(attr(spans.echoRun, "toolfleet.deliveries"), "1");
      assert.ok(Number(attr(spans.echoRun, "toolfleet.queue_wait_ms")) >= 0);
    } finally {
      fleet.kill("SIGINT");
      await exited(fleet);
      await llm.close();
      await collector.close();
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  },
);

test("`toolfleet mcp` traces too: a tools/call is a span of the MCP server's, the parent of the run on the tools worker", { timeout: 60_000 }, async () => {
  const collector = await startCollector();
  const k = testKeys();
  const env = {
    TOOLFLEET_REDIS_URL: REDIS_URL,
    TOOLFLEET_NAMESPACE: k.namespace,
    TOOLFLEET_TOOLS_SERVICE_MODE: "remote",
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
  const children: CliChild[] = [];
  const redis = await connect();
  try {
    children.push(await startToolsProcess(["--worker-id", "traced-tools"], env));
    const mcp = await startMcpProcess(["--worker-id", "traced-mcp", "--port", "0", "--no-auth"], env);
    children.push(mcp);
    const post = async (body: unknown, session?: string): Promise<{ text: string; session: string | null }> => {
      const res = await fetch(mcp.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": "2025-06-18",
          ...(session ? { "mcp-session-id": session } : {}),
        },
        body: JSON.stringify(body),
      });
      return { text: await res.text(), session: res.headers.get("mcp-session-id") };
    };
    const init = await post({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "traces", version: "1" } },
    });
    const session = init.session ?? "";
    // The worker's catalog reaches the server within a second of its start; before it, echo is unknown.
    await eventually(
      async () =>
        assert.match(
          (await post({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: { text: "traced over mcp" } } }, session)).text,
          /traced over mcp/,
        ),
      10_000,
      100,
    );
    const { call, run } = await eventually(
      () => {
        const calls = collector.spans.filter((s) => s.name === "tool call echo" && s.service === "toolfleet-mcp");
        const runs = collector.spans.filter((s) => s.name === "tool run echo" && s.service === "toolfleet-tools");
        assert.equal(calls.length, 1, collector.spans.map((s) => `${s.service}:${s.name}`).join(", "));
        assert.equal(runs.length, 1);
        return { call: calls[0]!, run: runs[0]! };
      },
      15_000,
      100,
    );
    assert.equal(run.traceId, call.traceId);
    assert.equal(run.parentSpanId, call.spanId);
    assert.equal(attr(call, "toolfleet.route"), "remote");
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
    await collector.close();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
