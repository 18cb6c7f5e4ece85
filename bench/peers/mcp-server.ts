// The MCP side of the peer, in its own process: an McpServer with one tool, `echo`,
// served over Streamable HTTP by a plain node:http server on 127.0.0.1, port 0 (the
// OS picks a free one, which goes back to the parent in the ready message).
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import { onStop, signalReady } from "./child.js";

const server = new McpServer({ name: "toolfleet-bench", version: "0.1.0" });
server.registerTool("echo", { description: "Returns its input", inputSchema: { text: z.string() } }, ({ text }) => ({
  content: [{ type: "text", text }],
}));

// One transport is one session: the benchmark has a single client, so there is no
// sessionId -> transport map as in the SDK's multi-client example.
// enableJsonResponse: each POST is answered with a plain JSON body rather than a
// one-event SSE stream; the SDK offers it for request/response servers like this one
// (the tool sends no progress or log notifications that would need a stream).
const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, enableJsonResponse: true });
await server.connect(transport);

const http = createServer((req, res) => {
  transport.handleRequest(req, res).catch((err: unknown) => {
    console.error("mcp-server:", err);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));

onStop(async () => {
  await server.close();
  // Keep-alive sockets (and the client's GET stream, if any) would hold close() open.
  http.closeAllConnections();
  await new Promise<void>((resolve, reject) => http.close((err) => (err ? reject(err) : resolve())));
});
signalReady({ port: (http.address() as AddressInfo).port });
