import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { listen } from "../core/listen.js";
import type { AddressInfo } from "node:net";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { MAX_BATCH_SIZE } from "@modelcontextprotocol/sdk/server/requestBody.js";
import { isJsonContentType } from "@modelcontextprotocol/sdk/shared/mediaType.js";
import { JSONRPCMessageSchema, type LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import { isToolfleetError } from "../core/errors.js";
import { errorFields } from "../core/log.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { SessionIds, type TokenCheck } from "./auth.js";
import { CancelRelay } from "./cancels.js";
import { answerCall, isPlainCall, surelyRequest, type Message } from "./fast-call.js";
import { SessionLogLevels } from "./log-levels.js";
import { fromRedis, McpNotices } from "./notices.js";
import { hostProblem } from "./origin.js";
import { fleetMcpServer, type McpCaller, type McpToolsOptions } from "./server.js";

/** The MCP endpoint's path. */
export const MCP_PATH = "/mcp";
/** A request body, at most (a tools/call's arguments). */
const MAX_BODY = 4 * 1024 * 1024;
/** GET streams one replica holds open at most (each holds a connection and a server instance). */
const MAX_STREAMS = 10_000;
/** How long stop() lets the requests in flight (tool calls) finish before it closes their connections. */
const DRAIN_MS = 20_000;

export interface McpHttpOptions {
  tools: Pick<McpToolsOptions, "registry" | "logger" | "gatewayPinned">;
  redis: RedisClient;
  redisUrl: string;
  keys: Keys;
  host: string;
  port: number;
  /** Host names a request's Host and Origin may name (src/mcp/origin.ts). */
  allowedHosts: ReadonlySet<string>;
  /** Bearer tokens → users; or, with `--no-auth`, the one user every caller is. */
  auth: { check: TokenCheck } | { localUser: string };
  /**
   * The key that signs session ids, the same on every replica: the fleet secret, or one kept in Redis
   * (made by the first replica to ask). Asked again for each new session and when an id fails to
   * verify, so replicas follow a key that was lost from Redis and made anew.
   */
  sessionKey: () => Promise<string>;
}

/**
 * `toolfleet mcp` over Streamable HTTP (docs/mcp.md, "Scaling out"). Each request gets an SDK server
 * and transport of its own in the SDK's stateless mode (but one tools/call answered in JSON, which is
 * answered as they would without them: src/mcp/fast-call.ts), so any replica answers any request: what a
 * session needs beyond one request lives in its signed id (the user) or in Redis (its log level;
 * cancels and level changes go to every replica on a channel). A GET stream stays open on the replica that took it; each replica watches the catalog
 * and tells its own streams of a change.
 */
export class McpHttpServer {
  private http: HttpServer | undefined;
  private readonly streams = new Set<Server>();
  private readonly notices: McpNotices;
  private readonly cancels: CancelRelay;
  private readonly levels: SessionLogLevels;
  private sessions: { key: string; ids: SessionIds } | undefined;
  private keyRead: Promise<SessionIds> | undefined;
  /** Responses not yet ended but GET streams' (stop() lets them finish); and whether stop() has begun. */
  private readonly inFlight = new Set<ServerResponse>();
  private draining: (() => void) | undefined;
  private stopping = false;
  /** What a call needs, for the SDK server made per request and for a call answered without one. */
  private readonly tools: McpToolsOptions;

  constructor(private readonly options: McpHttpOptions) {
    this.notices = new McpNotices({ redis: options.redis, redisUrl: options.redisUrl, keys: options.keys, logger: options.tools.logger });
    this.cancels = new CancelRelay(this.notices);
    this.levels = new SessionLogLevels(options.redis, options.keys, this.notices);
    this.tools = {
      ...options.tools,
      setLogLevel: (who, level) => this.setLogLevel(who, level),
      logLevel: (who) => this.logLevel(who),
      track: (who, requestId, signal) => this.cancels.track(who, requestId, signal),
    };
  }

  /** The endpoint's URL, once listening. */
  get url(): string | undefined {
    const address = this.http?.address() as AddressInfo | null | undefined;
    if (!address) return undefined;
    const host = this.options.host.includes(":") ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${address.port}${MCP_PATH}`;
  }

  async start(): Promise<void> {
    this.stopping = false;
    await this.currentSessions();
    await this.notices.start();
    const logger = this.options.tools.logger;
    const http = createServer((req, res) => {
      if (req.method !== "GET") {
        this.inFlight.add(res);
        res.once("close", () => {
          this.inFlight.delete(res);
          if (this.inFlight.size === 0) this.draining?.();
        });
      }
      this.handle(req, res).catch((err: unknown) => {
        if (isToolfleetError(err, "REDIS_UNAVAILABLE")) {
          logger.warn({ method: req.method, ...errorFields(err) }, "an MCP request was answered 503: Redis did not answer");
          if (!res.headersSent) return jsonError(res, 503, -32000, `Service unavailable: ${err.message}`);
        } else logger.error({ method: req.method, ...errorFields(err) }, "an MCP request failed");
        if (!res.headersSent) jsonError(res, 500, -32603, "Internal error");
        else res.end();
      });
    });
    try {
      await listen(http, this.options.port, this.options.host, {
        inUse: `--port ${this.options.port}: the port is in use; pick another, or 0`,
        what: "the MCP HTTP server",
        logger,
      });
    } catch (err) {
      await this.notices.stop();
      throw err;
    }
    this.http = http;
  }

  /**
   * Stops taking requests (new ones are answered 503, to be sent to another replica), ends the GET
   * streams (their clients reconnect elsewhere), lets the calls in flight finish for up to DRAIN_MS,
   * then closes what is left (docs/mcp.md, "Scaling out").
   */
  async stop(): Promise<void> {
    const http = this.http;
    this.http = undefined;
    this.stopping = true;
    const logger = this.options.tools.logger;
    for (const server of this.streams)
      await server.close().catch((err: unknown) => logger.debug({ ...errorFields(err) }, "a GET stream's server did not close cleanly"));
    this.streams.clear();
    if (http) {
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      if (this.inFlight.size > 0) {
        const calls = this.inFlight.size;
        let timer: NodeJS.Timeout | undefined;
        const finished = await Promise.race([
          new Promise<boolean>((resolve) => (this.draining = () => resolve(true))),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), DRAIN_MS))),
        ]);
        clearTimeout(timer);
        this.draining = undefined;
        if (!finished) logger.warn({ calls: this.inFlight.size, of: calls, drainMs: DRAIN_MS }, "MCP requests still running at the drain deadline are cut");
      }
      http.closeAllConnections();
      await closed;
    }
    await this.notices.stop();
  }

  /** Sends notifications/tools/list_changed on every GET stream open on this replica. */
  toolsChanged(): void {
    for (const server of this.streams)
      server
        .sendToolListChanged()
        .catch((err: unknown) => this.options.tools.logger.debug({ ...errorFields(err) }, "list_changed not sent on a closing stream"));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.stopping) {
      res.setHeader("connection", "close");
      return jsonError(res, 503, -32000, "Service unavailable: this replica is stopping; send the request again");
    }
    if ((req.url ?? "/").split("?")[0] !== MCP_PATH) return jsonError(res, 404, -32000, `Not found: the MCP endpoint is ${MCP_PATH}`);
    const problem = hostProblem(this.options.allowedHosts, req.headers.host, req.headers.origin);
    if (problem) return jsonError(res, 403, -32000, `Forbidden: ${problem}`);
    const user = this.authenticate(req, res);
    if (user === null) return;
    const sessionHeader = req.headers["mcp-session-id"];
    const session = typeof sessionHeader === "string" ? sessionHeader : undefined;
    if (session !== undefined && (!(await this.validSession(session, user)) || (await this.levels.ended(session))))
      return jsonError(res, 404, -32001, "Session not found");
    const caller: McpCaller = { user, ...(session !== undefined ? { session } : {}) };
    if (req.method === "DELETE") {
      if (session !== undefined) await this.levels.end(session);
      res.writeHead(200).end();
      return;
    }
    if (req.method === "GET") {
      if (this.streams.size >= MAX_STREAMS) return jsonError(res, 503, -32000, `Too many open streams on this replica (${MAX_STREAMS}); try another`);
      return this.serve(caller, req, res, undefined, true);
    }
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "GET, POST, DELETE" }).end();
      return;
    }
    const messages = await readMessages(req, res);
    if (messages === undefined) return;
    if (messages.list.some((m) => m.method === "initialize")) {
      caller.session = (await this.currentSessions()).mint(user);
      this.levels.fresh(caller.session);
      res.setHeader("mcp-session-id", caller.session);
    }
    // Cancels go to whichever replica runs the call (the SDK's server here would only know its own):
    // all of one request's in one notice, each request id once.
    const cancels = new Map<string, { requestId: string | number; reason: string }>();
    const rest = [];
    for (const m of messages.list) {
      if (m.method !== "notifications/cancelled") rest.push(m);
      else {
        const { requestId, reason } = m.params ?? {};
        if (typeof requestId === "string" || typeof requestId === "number")
          cancels.set(`${typeof requestId}:${requestId}`, { requestId, reason: typeof reason === "string" ? reason : "" });
      }
    }
    if (cancels.size > 0) await this.cancels.cancel(caller, [...cancels.values()]);
    if (rest.length === 0) {
      res.writeHead(202).end();
      return;
    }
    // A stream for a call whose progress or log messages the client asked for (they go before the result); the rest in JSON.
    const calls = rest.filter((m) => m.method === "tools/call");
    const streamed =
      calls.some((m) => typeof m.params?._meta === "object" && m.params._meta !== null && "progressToken" in m.params._meta) ||
      (calls.length > 0 && caller.session !== undefined && (await this.levels.get(caller.session)) !== undefined);
    // The most common request, one call answered in JSON, without an SDK server and transport (they cost more than the call).
    const only = rest[0];
    if (!messages.batch && !streamed && only !== undefined && isPlainCall(only)) return answerCall(caller, this.tools, req, res, only);
    return this.serve(caller, req, res, messages.batch ? rest : rest[0], streamed);
  }

  /** The session ids of the current key: the fleet secret, or the one in Redis now (read at most REDIS_WAIT_MS, one read at a time). */
  private currentSessions(): Promise<SessionIds> {
    this.keyRead ??= fromRedis(this.options.sessionKey(), "reading the MCP session key")
      .then((key) => {
        if (this.sessions?.key !== key) this.sessions = { key, ids: new SessionIds(key) };
        return this.sessions.ids;
      })
      .finally(() => (this.keyRead = undefined));
    return this.keyRead;
  }

  /** Whether the session id is the user's, signed with the key this replica knows, or else with the key now in Redis. */
  private async validSession(session: string, user: string): Promise<boolean> {
    const known = this.sessions?.ids;
    if (known?.valid(session, user)) return true;
    const now = await this.currentSessions();
    return now !== known && now.valid(session, user);
  }

  private async serve(caller: McpCaller, req: IncomingMessage, res: ServerResponse, body: unknown, streamed: boolean): Promise<void> {
    const server = fleetMcpServer(caller, this.tools);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: !streamed });
    const stream = req.method === "GET";
    res.on("close", () => {
      if (stream) this.streams.delete(server);
      transport
        .close()
        .then(() => server.close())
        .catch((err: unknown) => this.options.tools.logger.debug({ ...errorFields(err) }, "an MCP request's server did not close cleanly"));
    });
    await server.connect(transport);
    if (stream) this.streams.add(server);
    await transport.handleRequest(req, res, body);
  }

  private async setLogLevel(caller: McpCaller, level: LoggingLevel): Promise<void> {
    // No session to remember it for: no log messages beyond this request, which sends none.
    if (caller.session !== undefined) await this.levels.set(caller.session, level);
  }

  private logLevel(caller: McpCaller): Promise<LoggingLevel | undefined> {
    return caller.session === undefined ? Promise.resolve(undefined) : this.levels.get(caller.session);
  }

  /** The caller's user, or null once a 401 has been sent. */
  private authenticate(req: IncomingMessage, res: ServerResponse): string | null {
    const auth = this.options.auth;
    if ("localUser" in auth) return auth.localUser;
    const header = req.headers.authorization ?? "";
    const token = /^Bearer +(\S+)\s*$/i.exec(header)?.[1];
    const user = token === undefined ? null : auth.check(token);
    if (user !== null) return user;
    res.setHeader("www-authenticate", token === undefined ? 'Bearer realm="toolfleet"' : 'Bearer realm="toolfleet", error="invalid_token"');
    jsonError(res, 401, -32001, token === undefined ? "Unauthorized: send Authorization: Bearer <token>" : "Unauthorized: the token is not valid");
    return null;
  }
}

function jsonError(res: ServerResponse, status: number, code: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

/**
 * A POST's JSON-RPC messages, held to the SDK transport's own checks (Accept, Content-Type, size,
 * batch size, message shape; node_modules/@modelcontextprotocol/sdk/dist/esm/server/webStandardStreamableHttp.js)
 * before any is acted on here (a cancel is published before the SDK sees the request); or undefined
 * once an error answer has been sent, as the SDK words it.
 */
async function readMessages(req: IncomingMessage, res: ServerResponse): Promise<{ list: Message[]; batch: boolean } | undefined> {
  const accept = req.headers.accept ?? "";
  if (!accept.includes("application/json") || !accept.includes("text/event-stream")) {
    jsonError(res, 406, -32000, "Not Acceptable: Client must accept both application/json and text/event-stream");
    return undefined;
  }
  if (!isJsonContentType(req.headers["content-type"])) {
    jsonError(res, 415, -32000, "Unsupported Media Type: Content-Type must be application/json");
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) {
      jsonError(res, 413, -32000, `Request body over ${MAX_BODY} bytes`);
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    jsonError(res, 400, -32700, "Parse error: Invalid JSON");
    return undefined;
  }
  const list = Array.isArray(body) ? (body as unknown[]) : [body];
  if (list.length > MAX_BATCH_SIZE) {
    jsonError(res, 400, -32600, `Invalid Request: Batch must not exceed ${MAX_BATCH_SIZE} messages`);
    return undefined;
  }
  if (!list.every((m) => surelyRequest(m) || JSONRPCMessageSchema.safeParse(m).success)) {
    jsonError(res, 400, -32700, "Parse error: Invalid JSON-RPC message");
    return undefined;
  }
  return { list: list as Message[], batch: Array.isArray(body) };
}
