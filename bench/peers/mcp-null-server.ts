// A Streamable HTTP "server" that does no MCP work, in its own process: each POST's one JSON-RPC
// message is answered at once in JSON (initialize with a canned result, a notification with 202, any
// other request with its `text` argument as the text content, as the echo tool's answer). What the
// MCP SDK client and HTTP cost alone, so `npm run bench:mcp` can tell the servers' own share of a call
// (the time over this one's).
//
// With `{ "floor": true }` as its config, it sends each tools/call through the naive Redis Streams
// floor (bench/floor.ts: one request and its reply over the local Redis to a worker process) before it
// answers: the least a server that runs its tools on other processes over Redis Streams can take, with
// no MCP work and nothing of toolfleet's.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { startFloor } from "../floor.js";
import { onStop, readConfig, signalReady } from "./child.js";

const { floor: viaFloor = false } = readConfig<{ floor?: boolean }>();
const floor = viaFloor ? await startFloor(process.env.TOOLFLEET_REDIS_URL ?? "redis://127.0.0.1:6379") : undefined;

/** The echo tool's answer: its `text` argument, or "" when it has none. */
const textOf = (args: unknown): string => {
  const text = (args as { text?: unknown } | undefined)?.text;
  return typeof text === "string" ? text : "";
};

const http = createServer((req, res) => {
  if (req.method === "DELETE") return void res.writeHead(200).end();
  if (req.method !== "POST") return void res.writeHead(405, { allow: "POST, DELETE" }).end();
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const m = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id?: unknown; method?: string; params?: Record<string, unknown> };
    if (m.id === undefined) return void res.writeHead(202).end();
    const params = m.params ?? {};
    if (floor && m.method === "tools/call") {
      floor.call().then(
        () => answer(m.id, { content: [{ type: "text", text: textOf(params.arguments) }] }),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    const result =
      m.method === "initialize"
        ? { protocolVersion: params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: "null-server", version: "0.1.0" } }
        : { content: [{ type: "text", text: textOf(params.arguments) }] };
    answer(m.id, result);
  });
  function answer(id: unknown, result: unknown): void {
    const body = JSON.stringify({ result, jsonrpc: "2.0", id });
    res.writeHead(200, { "content-type": "application/json", "mcp-session-id": "null-session", "content-length": Buffer.byteLength(body) }).end(body);
  }
});
await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));

onStop(async () => {
  http.closeAllConnections();
  await new Promise<void>((resolve, reject) => http.close((err) => (err ? reject(err) : resolve())));
  await floor?.close();
});
signalReady({ port: (http.address() as AddressInfo).port, pids: floor?.workerPids ?? [] });
