// Peer: the MCP TypeScript SDK over Streamable HTTP. The server (an McpServer with
// one tool, `echo`) runs in a child process on 127.0.0.1 and a free port it reports
// back; the caller is an MCP Client. One call() is client.callTool: one HTTP POST
// carrying a JSON-RPC tools/call, answered with the tool's result.
//
// Stateful, one session for the whole run, as an LLM host keeps one session per
// server: initialize happens once in start(), not inside call(). The SDK's stateless
// mode builds a new server and transport for every request, which is its
// recommendation for horizontally scaled servers, not for a single long-lived client.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { Subject } from "../harness.js";
import { forkWorker, stopWorker } from "./child.js";

// Workaround for a listener leak. The client transport passes ONE AbortSignal (its
// connection-wide one, aborted on close) to every fetch, and Node's fetch (undici)
// removes the abort listener it adds to that signal only when the request is garbage
// collected. Listeners pile up by the thousand under load (Node warns "1501 abort
// listeners added to [AbortSignal]") and the calls slow down as they do (seen here:
// about 10% fewer calls/s at 64 in flight, plus a flood of warnings). So each POST
// gets its own signal, bridged from the shared one by a listener we remove when the
// response arrives (its JSON body is read at once: the server runs with
// enableJsonResponse). GET, the one long-lived SSE stream per session, keeps the
// shared signal so close() still aborts it.
export const fetchWithOwnSignal: FetchLike = async (url, init) => {
  const shared = init?.signal;
  if (!shared || init.method !== "POST") return fetch(url, init);
  const own = new AbortController();
  const forward = (): void => own.abort(shared.reason);
  shared.addEventListener("abort", forward, { once: true });
  try {
    return await fetch(url, { ...init, signal: own.signal });
  } finally {
    shared.removeEventListener("abort", forward);
  }
};

// MCP_STOCK_FETCH=1 measures the SDK as shipped, leak included.
const stockFetch = process.env.MCP_STOCK_FETCH === "1";

/** Subject names by server. */
const NAMES = { sdk: "mcp", null: "mcp-null", "null-floor": "mcp-null-floor" } as const;

/**
 * The SDK's own server (`sdk`, subject "mcp"), or one that does no MCP work (`null`, subject "mcp-null":
 * bench/peers/mcp-null-server.ts, what the client and HTTP cost alone), or that one sending each tool
 * call through the Redis Streams floor first (`null-floor`, "mcp-null-floor"), in a child process, and a client.
 */
export async function start(server: keyof typeof NAMES = "sdk"): Promise<Subject> {
  const file = server === "sdk" ? "./mcp-server.js" : "./mcp-null-server.js";
  const { child, ready } = await forkWorker(new URL(file, import.meta.url), server === "null-floor" ? { floor: true } : {});
  if (ready.port === undefined) throw new Error(`${file} did not report its port`);

  const client = new Client({ name: "toolfleet-bench", version: "0.1.0" });
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${ready.port}/mcp`), {
    fetch: stockFetch ? undefined : fetchWithOwnSignal,
  });
  try {
    await client.connect(transport); // initialize + initialized: the session starts here
  } catch (err) {
    await stopWorker(child);
    throw err;
  }

  const args = { text: "x".repeat(100) };
  return {
    name: NAMES[server],
    workerPids: [...(child.pid === undefined ? [] : [child.pid]), ...(ready.pids ?? [])],
    call: () => client.callTool({ name: "echo", arguments: args }),
    async close() {
      await transport.terminateSession(); // HTTP DELETE: the server ends the session
      await client.close();
      await stopWorker(child);
    },
  };
}
