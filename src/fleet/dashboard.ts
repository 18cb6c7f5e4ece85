import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { listen } from "../core/listen.js";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ToolfleetError } from "../core/errors.js";
import { errorFields, type Logger } from "../core/log.js";
import { parseJson } from "../core/json.js";
import { within } from "../core/within.js";
import { z } from "zod";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import type { EntryFields } from "../redis/entry-codec.js";
import { DASHBOARD_PAGE, LOGIN_PAGE } from "./dashboard-page.js";
import { DashboardState } from "./dashboard-state.js";

/** A page's read of Redis is answered (or fails with a 500 saying why) within this, even with Redis stalled. */
const REDIS_WAIT_MS = 10_000;
/** What a dead-letter action posts; each member is checked by act(). */
const actionBody = z.object({ deadStream: z.unknown(), id: z.unknown() });

const COOKIE = "tf_admin";
/** A login or action body, at most. */
const MAX_BODY = 4096;
const ENTRY_ID = /^\d{1,20}-\d{1,20}$/;

export interface DashboardOptions {
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
  /** The admin token (config `adminToken`, 16+ characters): whoever gives it may requeue and delete dead letters. */
  adminToken: string;
  /** @defaultValue 8790 */
  port?: number;
  /** @defaultValue "127.0.0.1" */
  host?: string;
  /** How long a page's Redis reads and actions may take before it gets a 500 saying so. @defaultValue 10000 */
  redisWaitMs?: number;
}

/**
 * `toolfleet dashboard` (docs/observability.md, "Dashboard"): a page for the
 * fleet's admin, live from Redis — workers per pool, the catalog and its
 * conflicts, calls per second and p50/p99 per tool, recent errors, dead
 * letters with requeue and delete (each action audited in the log). Admin
 * only: the token once, then an HttpOnly, SameSite=Strict cookie that holds an
 * HMAC of it; actions also need a header no cross-site form can send.
 */
export class Dashboard {
  private server: Server | undefined;
  private readonly state: DashboardState;
  private readonly session: string;

  constructor(private readonly options: DashboardOptions) {
    if (options.adminToken.length < 16)
      throw new ToolfleetError("CONFIG_INVALID", "the dashboard needs an admin token of at least 16 characters: set TOOLFLEET_ADMIN_TOKEN");
    this.state = new DashboardState(options.redis, options.keys);
    this.session = createHmac("sha256", options.adminToken).update("toolfleet dashboard session").digest("base64url");
  }

  get url(): string | undefined {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return address ? `http://${this.options.host ?? "127.0.0.1"}:${address.port}/` : undefined;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        this.options.logger.error({ path: req.url, ...errorFields(err) }, "dashboard request failed");
        if (!res.headersSent)
          send(res, 500, "text/plain; charset=utf-8", `the dashboard could not answer: ${err instanceof Error ? err.message : String(err)}\n`);
      });
    });
    await listen(server, this.options.port ?? 8790, this.options.host ?? "127.0.0.1", {
      inUse: `--port ${this.options.port ?? 8790}: the port is in use; pick another, or 0`,
      what: "the dashboard's HTTP server",
      logger: this.options.logger,
    });
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private signedIn(req: IncomingMessage): boolean {
    const cookie = (req.headers.cookie ?? "")
      .split(";")
      .map((c) => c.trim())
      .find((c) => c.startsWith(`${COOKIE}=`));
    return cookie !== undefined && equal(cookie.slice(COOKIE.length + 1), this.session);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "POST" && path === "/login") {
      const token = new URLSearchParams(await body(req)).get("token") ?? "";
      if (!equal(token, this.options.adminToken)) {
        this.options.logger.warn({ from: req.socket.remoteAddress }, "dashboard: a sign-in with a wrong token");
        return send(res, 401, "text/html; charset=utf-8", LOGIN_PAGE.replace("<!--error-->", "<p class=err>Wrong token.</p>"));
      }
      res.writeHead(303, { location: "/", "set-cookie": `${COOKIE}=${this.session}; HttpOnly; SameSite=Strict; Path=/` });
      res.end();
      return;
    }
    if (!this.signedIn(req)) {
      if (path === "/" && req.method === "GET") return send(res, 200, "text/html; charset=utf-8", LOGIN_PAGE);
      return send(res, 401, "text/plain; charset=utf-8", "sign in first\n");
    }
    if (req.method === "GET" && path === "/") return send(res, 200, "text/html; charset=utf-8", DASHBOARD_PAGE);
    if (req.method === "GET" && path === "/api/state")
      return send(
        res,
        200,
        "application/json",
        JSON.stringify(await within(this.state.read(), this.options.redisWaitMs ?? REDIS_WAIT_MS, "reading the fleet's state from Redis")),
      );
    if (req.method === "POST" && (path === "/api/dead/requeue" || path === "/api/dead/delete")) {
      // Not sendable by a form on another site: an action needs this header and a JSON body.
      if (req.headers["x-toolfleet-admin"] !== "1") return send(res, 403, "text/plain; charset=utf-8", "missing x-toolfleet-admin header\n");
      const parsed = parseJson(actionBody, await body(req));
      if (!parsed.ok) return send(res, 400, "application/json", JSON.stringify({ ok: false, error: `expected {"deadStream": …, "id": …}: ${parsed.reason}` }));
      const { deadStream, id } = parsed.value;
      const result = await within(
        this.act(path.endsWith("requeue") ? "requeue" : "delete", deadStream, id),
        this.options.redisWaitMs ?? REDIS_WAIT_MS,
        "acting on a dead letter",
      );
      return send(res, result.ok ? 200 : 400, "application/json", JSON.stringify(result));
    }
    send(res, 404, "text/plain; charset=utf-8", "not found\n");
  }

  /** Requeues a dead letter onto the stream it came from (its fields as they were), or deletes it. Audited. */
  private async act(action: "requeue" | "delete", deadStream: unknown, id: unknown): Promise<{ ok: boolean; error?: string; newId?: string }> {
    const { redis, keys, logger } = this.options;
    if (typeof id !== "string" || !ENTRY_ID.test(id)) return { ok: false, error: "not an entry id" };
    const streams = (await this.state.read()).streams.map((s) => s.stream);
    if (typeof deadStream !== "string" || !this.state.deadStreams(streams).has(deadStream))
      return { ok: false, error: "not a dead-letter stream of this fleet" };
    const [entry] = (await redis.xRange(deadStream, id, id)) ?? [];
    if (!entry) return { ok: false, error: "no such dead letter (already requeued or deleted?)" };
    if (action === "delete") {
      await redis.xDel(deadStream, id);
      logger.info({ audit: "dashboard", action, deadStream, id, reason: entry.message.reason }, "dead letter deleted");
      return { ok: true };
    }
    const origin = entry.message.stream ?? "";
    if (keys.deadLetter(origin) !== deadStream) return { ok: false, error: "the dead letter names another stream than its own" };
    const fields: EntryFields = {};
    for (const [name, value] of Object.entries(entry.message)) if (name.startsWith("field.")) fields[name.slice("field.".length)] = String(value);
    if (Object.keys(fields).length === 0) return { ok: false, error: "the dead letter holds no entry to requeue" };
    // One MULTI: the dead letter is kept in its stream's slot (docs/protocol.md), so this works on a cluster too.
    const xadd: string[] = ["XADD", origin, "*"];
    for (const [name, value] of Object.entries(fields)) xadd.push(name, String(value));
    const [newId] = await redis.multi().addCommand(xadd).addCommand(["XDEL", deadStream, id]).exec();
    logger.info({ audit: "dashboard", action, deadStream, id, stream: origin, newId }, "dead letter requeued");
    return { ok: true, newId: String(newId) };
  }
}

function send(res: ServerResponse, status: number, type: string, text: string): void {
  res.writeHead(status, {
    "content-type": type,
    "cache-control": "no-store",
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    "x-frame-options": "DENY",
  });
  res.end(text);
}

/** Compares two secrets in constant time (their hashes, so lengths do not leak either). */
function equal(a: string, b: string): boolean {
  const h = (s: string): Buffer => createHash("sha256").update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

async function body(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) {
    text += (chunk as Buffer).toString();
    if (text.length > MAX_BODY) throw new ToolfleetError("USAGE", "request body too large");
  }
  return text;
}
