import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { listen } from "../core/listen.js";
import { createServer, type IncomingMessage as HttpRequest, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { RichMessage } from "../core/context.js";
import { errorFields, type Logger } from "../core/log.js";
import { MAX_CHAT_TEXT } from "../chat/codec.js";
import { CHAT_PAGE, CHAT_SCRIPT, CHAT_STYLE, FAVICON_SVG } from "./chat-page.js";
import type { HistoryEntry } from "./chat-history.js";
import type { ChatPlatform, IncomingMessage, OutgoingMessage, PlatformHooks } from "./platform.js";
import { ToolfleetError } from "../core/errors.js";
import { COMMON_HEADERS, LOOPBACK, isLoopbackHost, json, readBody, refuseBody, remoteOf, sse, tooMany } from "./http-util.js";
import { AbandonWatch } from "./abandon-watch.js";
import type { ChatProgress } from "../chat/client.js";
import { progressLine } from "../core/progress.js";
import { TokenBuckets } from "./token-buckets.js";
import { WebFiles } from "./web-files.js";

export interface HttpAdapterOptions {
  logger: Logger;
  /** @defaultValue "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @defaultValue 8787 */
  port?: number;
  /** Signs the user cookie; gateways behind one load balancer share it. @defaultValue random per process */
  secret?: string;
  /** Files kept for download, at most (oldest dropped first). @defaultValue 200 */
  maxFiles?: number;
  /** Bytes of files kept, at most. @defaultValue 64 MiB */
  maxFileBytes?: number;
  /** Bytes of a message's body, at most: a bigger one is refused (413) and no more of it is read. @defaultValue 65536 */
  maxBodyBytes?: number;
  /** Open event streams of one user; a new page of that user ends their oldest. @defaultValue 8 */
  maxStreamsPerUser?: number;
  /**
   * Open event streams from one remote address (the socket's: behind a proxy every user shares
   * the proxy's, so raise it there). Past it, a user's new page ends their own oldest, or is refused. @defaultValue 32
   */
  maxStreamsPerAddress?: number;
  /** Open event streams in all. @defaultValue 1000 */
  maxStreams?: number;
  /** New users (session cookies) one remote address may take at once, then `newUsersPerMinute`. @defaultValue 20 */
  newUserBurst?: number;
  /** @defaultValue 10 */
  newUsersPerMinute?: number;
  /** Messages one user may send at once, then `messagesPerMinute`. @defaultValue 10 */
  messageBurst?: number;
  /** @defaultValue 30 */
  messagesPerMinute?: number;
  /** A user whose every page has been closed this long is taken to have left: their awaited answers are cancelled. @defaultValue 10000 */
  abandonAfterMs?: number;
}

interface Channel {
  clients: Set<ServerResponse>;
  /** Recent events, replayed to a page that reconnects (Last-Event-ID). */
  backlog: { id: number; event: string; data: string }[];
  /** Reactions on the user's messages (message id → emojis), for a page that reloads; the latest MAX_REACTED messages. */
  reactions: Map<string, string>;
}

const COOKIE = "tf_user";
const BACKLOG = 50;
const MAX_REACTED = 200;
const MAX_CHANNELS = 1000;
const KEEPALIVE_MS = 15_000;

/**
 * The page's policy: its script, style and icon come from this origin (no
 * inline script or style), it talks only to this origin, and no other site
 * may frame it (clickjacking). `X-Frame-Options` says the same to browsers
 * that predate `frame-ancestors`.
 */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/** The page's own files: the document, its script and style, its icon. */
const STATIC: Record<string, { type: string; body: string }> = {
  "/": { type: "text/html; charset=utf-8", body: CHAT_PAGE },
  "/chat.js": { type: "text/javascript; charset=utf-8", body: CHAT_SCRIPT },
  "/chat.css": { type: "text/css; charset=utf-8", body: CHAT_STYLE },
  "/favicon.svg": { type: "image/svg+xml", body: FAVICON_SVG },
  // Browsers ask for /favicon.ico when a page names no icon (a file opened directly, say); the same picture.
  "/favicon.ico": { type: "image/svg+xml", body: FAVICON_SVG },
};

/**
 * A web chat: serves a chat page, takes messages by POST, pushes answers,
 * files and reactions to the page by Server-Sent Events, and serves the files.
 * Each browser gets a user id in a signed, HttpOnly cookie: the gateway is the
 * authority on identity, and a user only ever sees their own channel and files.
 */
export class HttpChatAdapter implements ChatPlatform {
  readonly platform = "web";
  readonly ownsPlatformClient = true;
  private readonly secret: Buffer;
  private server: Server | undefined;
  private onMessage: ((message: IncomingMessage) => void) | undefined;
  private hooks: PlatformHooks | undefined;
  private readonly channels = new Map<string, Channel>();
  private readonly files: WebFiles;
  private eventId = 0;
  private messageCount = 0;
  private keepalive: NodeJS.Timeout | undefined;
  private address: AddressInfo | undefined;
  private readonly limits: Required<Omit<HttpAdapterOptions, "logger" | "host" | "port" | "secret" | "maxFiles" | "maxFileBytes" | "abandonAfterMs">>;
  private readonly abandon: AbandonWatch;
  /** Open event streams: each one's remote address and how to let it go. */
  private readonly streams = new Map<ServerResponse, { remote: string; release: () => void }>();
  private readonly streamsByAddress = new Map<string, number>();
  private readonly newUsers: TokenBuckets;
  private readonly messages: TokenBuckets;

  constructor(private readonly options: HttpAdapterOptions) {
    this.secret = options.secret ? Buffer.from(options.secret) : randomBytes(32);
    this.files = new WebFiles(options.maxFiles ?? 200, options.maxFileBytes ?? 64 * 1024 * 1024);
    this.limits = {
      maxBodyBytes: atLeastOne("maxBodyBytes", options.maxBodyBytes ?? 64 * 1024),
      maxStreamsPerUser: atLeastOne("maxStreamsPerUser", options.maxStreamsPerUser ?? 8),
      maxStreamsPerAddress: atLeastOne("maxStreamsPerAddress", options.maxStreamsPerAddress ?? 32),
      maxStreams: atLeastOne("maxStreams", options.maxStreams ?? 1000),
      newUserBurst: atLeastOne("newUserBurst", options.newUserBurst ?? 20),
      newUsersPerMinute: positiveRate("newUsersPerMinute", options.newUsersPerMinute ?? 10),
      messageBurst: atLeastOne("messageBurst", options.messageBurst ?? 10),
      messagesPerMinute: positiveRate("messagesPerMinute", options.messagesPerMinute ?? 30),
    };
    this.newUsers = new TokenBuckets(this.limits.newUserBurst, this.limits.newUsersPerMinute);
    this.messages = new TokenBuckets(this.limits.messageBurst, this.limits.messagesPerMinute);
    this.abandon = new AbandonWatch(atLeastOne("abandonAfterMs", options.abandonAfterMs ?? 10_000), (channelId) =>
      this.hooks?.cancel?.(channelId, undefined, "the chat page was closed"),
    );
  }

  /** The chat page's address, once started. */
  get url(): string {
    if (!this.address) throw new ToolfleetError("NOT_STARTED", "the HTTP adapter is not started");
    const host = this.address.family === "IPv6" ? `[${this.address.address}]` : this.address.address;
    return `http://${host}:${this.address.port}/`;
  }

  async start(onMessage: (message: IncomingMessage) => void, hooks?: PlatformHooks): Promise<void> {
    if (this.server) return;
    this.onMessage = onMessage;
    this.hooks = hooks;
    const server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        this.options.logger.error({ method: req.method, url: req.url, ...errorFields(err) }, "web chat request failed");
        if (!res.headersSent) json(res, 500, { error: "internal error" });
        else res.end();
      });
    });
    const host = this.options.host ?? "127.0.0.1";
    const port = this.options.port ?? 8787;
    await listen(server, port, host, {
      inUse: `port ${port} on ${host} is in use: pass another --port (0 picks a free one)`,
      what: "the web chat's HTTP server",
      logger: this.options.logger,
    });
    this.server = server;
    this.address = server.address() as AddressInfo;
    this.keepalive = setInterval(() => {
      for (const channel of this.channels.values()) for (const res of channel.clients) res.write(": keepalive\n\n");
      // Buckets that have filled up again are as good as new ones: forgotten, so the maps shrink when the traffic does.
      this.newUsers.sweep();
      this.messages.sweep();
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  send(channelId: string, message: OutgoingMessage): Promise<void> {
    // Named after the answer when it has an id, so the channel's history (which keeps the id) can link them again.
    const files = message.files.map((file, i) => this.files.store(channelId, file, message.answerId !== undefined ? fileId(message.answerId, i) : undefined));
    this.emit(channelId, "answer", {
      id: message.answerId ?? null,
      inReplyTo: message.inReplyTo ?? null,
      text: message.text,
      files,
      rich: message.richMessages as RichMessage[],
      toolCalls: message.toolCalls ?? [],
      answeredBy: message.answeredBy ?? null,
      failed: message.failed === true,
    });
    return Promise.resolve();
  }

  /** A live line under the question while its answer's tools run; not kept for pages that reconnect (the answer replaces it). */
  progress(channelId: string, inReplyTo: string, p: ChatProgress): void {
    this.emit(channelId, "progress", { inReplyTo, tool: p.tool, line: progressLine(p) }, false);
  }

  react(channelId: string, messageId: string, emoji: string): Promise<void> {
    const { reactions } = this.channel(channelId);
    const before = reactions.get(messageId) ?? "";
    reactions.delete(messageId);
    reactions.set(messageId, (before + emoji).slice(-64));
    if (reactions.size > MAX_REACTED) reactions.delete(reactions.keys().next().value ?? "");
    this.emit(channelId, "reaction", { messageId, emoji });
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.abandon.stop();
    clearInterval(this.keepalive);
    this.keepalive = undefined;
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const channel of this.channels.values()) for (const res of channel.clients) res.end();
    this.channels.clear();
    this.streams.clear();
    this.streamsByAddress.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // ── HTTP ──────────────────────────────────────────────────────────────────

  private async route(req: HttpRequest, res: ServerResponse): Promise<void> {
    // Served on loopback, only a loopback Host: a web page elsewhere cannot reach this chat by DNS rebinding.
    if (LOOPBACK.has(this.options.host ?? "127.0.0.1") && !isLoopbackHost(req.headers.host))
      return json(res, 421, { error: "this chat answers only on localhost" });
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const file = req.method === "GET" ? STATIC[path] : undefined;
    if (file) {
      const headers: Record<string, string> = {
        ...COMMON_HEADERS,
        "content-type": file.type,
        "cache-control": "no-cache",
        "content-security-policy": PAGE_CSP,
      };
      // Only the page hands out a session: its script and icon need none. Sessions cost nothing to
      // take, so each remote address gets only so many new ones a minute.
      if (path === "/") {
        let user = this.userOf(req);
        if (!user) {
          const wait = this.newUsers.take(remoteOf(req));
          if (wait > 0) return tooMany(res, wait, "too many new chat sessions from your address; try again later");
          user = this.newUser(res);
        }
        headers["x-toolfleet-user"] = user;
      }
      res.writeHead(200, headers);
      res.end(file.body);
      return;
    }
    if (req.method === "GET" && path === "/healthz") return json(res, 200, { ok: true });
    const user = this.userOf(req);
    if (!user) return json(res, 401, { error: "no chat session: open the chat page first" });
    if (req.method === "GET" && path === "/api/events") return this.subscribe(req, res, user);
    if (req.method === "GET" && path === "/api/history") return this.history(res, user);
    if (req.method === "POST" && path === "/api/messages") return this.receive(req, res, user);
    if (req.method === "POST" && path === "/api/cancel") return this.stopAnswer(req, res, user);
    if (req.method === "GET" && path.startsWith("/files/")) return this.files.serve(res, channelOf(user), path.slice("/files/".length));
    json(res, 404, { error: `no such page: ${req.method ?? "?"} ${path}` });
  }

  private async receive(req: HttpRequest, res: ServerResponse, user: string): Promise<void> {
    const max = this.limits.maxBodyBytes;
    // Refused before a byte of the body is read when it says it is too big; else while it is read (below).
    if (Number(req.headers["content-length"] ?? 0) > max) return refuseBody(req, res, max);
    const wait = this.messages.take(user);
    if (wait > 0) return tooMany(res, wait, "too many messages; wait a little before sending more");
    if (!(req.headers["content-type"] ?? "").startsWith("application/json")) return json(res, 415, { error: "send JSON: content-type application/json" });
    const body = await readBody(req, max);
    if (body === null) return refuseBody(req, res, max);
    let text: unknown;
    try {
      text = (JSON.parse(body) as { text?: unknown } | null)?.text;
    } catch {
      // The client gets told what is wrong with its body.
      return json(res, 400, { error: "the body is not JSON" });
    }
    if (typeof text !== "string" || text.trim() === "") return json(res, 400, { error: 'expected {"text": "a non-empty message"}' });
    if (text.length > MAX_CHAT_TEXT) return json(res, 400, { error: `a message can be at most ${MAX_CHAT_TEXT} characters` });
    const messageId = `web-${Date.now().toString(36)}-${++this.messageCount}`;
    const channelId = channelOf(user);
    json(res, 202, { messageId });
    // Every page of this user shows the message, before anything that answers it (one event stream per channel).
    this.emit(channelId, "question", { id: messageId, text: text.trim() });
    this.onMessage?.({
      identity: { platform: this.platform, channelId, userId: user, userName: user, guildId: "", messageId },
      text: text.trim(),
    });
  }

  /** The user's Stop button: cancels the answer to one of their messages (its running tools stop). */
  private async stopAnswer(req: HttpRequest, res: ServerResponse, user: string): Promise<void> {
    const body = await readBody(req, 1024);
    if (body === null) return refuseBody(req, res, 1024);
    let messageId: unknown;
    try {
      messageId = (JSON.parse(body) as { messageId?: unknown } | null)?.messageId;
    } catch {
      // The client gets told what is wrong with its body.
      return json(res, 400, { error: "the body is not JSON" });
    }
    if (typeof messageId !== "string" || messageId === "") return json(res, 400, { error: 'expected {"messageId": "the message whose answer to stop"}' });
    json(res, 200, { cancelled: this.hooks?.cancel?.(channelOf(user), messageId, "stopped by the user") ?? 0 });
  }

  /** The channel's conversation, for a page that opens or reloads; the answers' files by the same URLs as when they came. */
  private async history(res: ServerResponse, user: string): Promise<void> {
    if (!this.hooks) return json(res, 200, { entries: [] });
    const reactions = this.channels.get(channelOf(user))?.reactions;
    let entries: (HistoryEntry & { waiting?: boolean })[];
    try {
      entries = await this.hooks.history(channelOf(user));
    } catch (err) {
      this.options.logger.warn({ user, ...errorFields(err) }, "the chat history could not be read");
      return json(res, 503, { error: "the conversation so far could not be read; new messages still work" });
    }
    json(res, 200, {
      entries: entries.map((e) =>
        e.role === "user"
          ? { role: "user", id: e.messageId, text: e.text, waiting: e.waiting === true, reactions: reactions?.get(e.messageId) ?? "" }
          : {
              role: "assistant",
              id: e.answerId ?? null,
              inReplyTo: e.messageId,
              text: e.text,
              files: (e.files ?? []).map((f, i) => ({ ...f, url: e.answerId !== undefined ? `/files/${fileId(e.answerId, i)}` : null })),
              rich: e.richMessages ?? [],
              toolCalls: e.toolCalls ?? [],
              answeredBy: e.answeredBy ?? null,
              failed: e.failed === true,
            },
      ),
    });
  }

  private subscribe(req: HttpRequest, res: ServerResponse, user: string): void {
    const channel = this.channel(channelOf(user));
    const remote = remoteOf(req);
    // At a cap, a user's new page takes the place of their own oldest (a new tab, a reload whose old
    // stream is not closed yet); someone with nothing open is refused. Never another user's page.
    const full = (): boolean =>
      channel.clients.size >= this.limits.maxStreamsPerUser ||
      (this.streamsByAddress.get(remote) ?? 0) >= this.limits.maxStreamsPerAddress ||
      this.streams.size >= this.limits.maxStreams;
    while (full()) {
      const oldest = channel.clients.values().next().value;
      if (!oldest) return tooMany(res, 30, "too many open chat pages; close some and try again");
      this.endStream(oldest, "replaced");
    }
    res.writeHead(200, { ...COMMON_HEADERS, "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.write(`event: hello\ndata: ${JSON.stringify({ userId: user })}\n\n`);
    const last = Number(req.headers["last-event-id"] ?? NaN);
    if (Number.isInteger(last)) for (const e of channel.backlog) if (e.id > last) res.write(sse(e));
    channel.clients.add(res);
    this.abandon.opened(channelOf(user));
    this.streamsByAddress.set(remote, (this.streamsByAddress.get(remote) ?? 0) + 1);
    const release = (): void => {
      if (!this.streams.delete(res)) return;
      channel.clients.delete(res);
      if (channel.clients.size === 0) this.abandon.allClosed(channelOf(user));
      const left = (this.streamsByAddress.get(remote) ?? 1) - 1;
      if (left > 0) this.streamsByAddress.set(remote, left);
      else this.streamsByAddress.delete(remote);
    };
    this.streams.set(res, { remote, release });
    req.on("close", release);
  }

  /** Ends an event stream, telling its page why (the page stops reconnecting: a newer page took its place). */
  private endStream(res: ServerResponse, reason: string): void {
    this.streams.get(res)?.release();
    res.end(`event: ${reason}\ndata: {}\n\n`);
  }

  // ── state ─────────────────────────────────────────────────────────────────

  private emit(channelId: string, event: string, payload: unknown, keep = true): void {
    const channel = this.channel(channelId);
    const entry = { id: ++this.eventId, event, data: JSON.stringify(payload) };
    if (keep) channel.backlog.push(entry);
    if (channel.backlog.length > BACKLOG) channel.backlog.shift();
    for (const res of channel.clients) res.write(sse(entry));
  }

  private channel(id: string): Channel {
    let channel = this.channels.get(id);
    if (!channel) {
      if (this.channels.size >= MAX_CHANNELS) {
        // Forget the oldest channel nobody is watching.
        for (const [key, c] of this.channels) {
          if (c.clients.size === 0) {
            this.channels.delete(key);
            break;
          }
        }
      }
      channel = { clients: new Set(), backlog: [], reactions: new Map() };
      this.channels.set(id, channel);
    }
    return channel;
  }

  // ── identity ──────────────────────────────────────────────────────────────

  private sign(user: string): string {
    return createHmac("sha256", this.secret).update(user).digest("base64url");
  }

  private newUser(res: ServerResponse): string {
    const user = `web-${randomBytes(6).toString("hex")}`;
    res.setHeader("set-cookie", `${COOKIE}=${user}.${this.sign(user)}; Path=/; HttpOnly; SameSite=Strict`);
    return user;
  }

  /** The user of a validly signed cookie, else undefined. */
  private userOf(req: HttpRequest): string | undefined {
    const cookie = (req.headers.cookie ?? "")
      .split(";")
      .map((c) => c.trim())
      .find((c) => c.startsWith(`${COOKIE}=`));
    const value = cookie?.slice(COOKIE.length + 1) ?? "";
    const dot = value.lastIndexOf(".");
    if (dot <= 0) return undefined;
    const user = value.slice(0, dot);
    if (!/^web-[0-9a-f]{12}$/.test(user)) return undefined;
    const given = Buffer.from(value.slice(dot + 1));
    const expected = Buffer.from(this.sign(user));
    return given.length === expected.length && timingSafeEqual(given, expected) ? user : undefined;
  }
}

const channelOf = (user: string): string => `dm-${user}`;
/** The id of an answer's i-th file. Chat ids are random, and a file is served only to its channel's user. */
const fileId = (answerId: string, i: number): string => `${answerId.replace(/[^A-Za-z0-9_-]/g, "_")}.${i}`;

function atLeastOne(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new ToolfleetError("CONFIG_INVALID", `HttpChatAdapter option ${name}: expected a whole number ≥ 1, got ${value}`);
  return value;
}

function positiveRate(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new ToolfleetError("CONFIG_INVALID", `HttpChatAdapter option ${name}: expected a number > 0, got ${value}`);
  return value;
}
