// A Discord API stand-in on loopback, written from Discord's published API docs
// (developers/docs: "Gateway", "Gateway Events", "Rate Limits", "Message", "Guild",
// "User", "Emoji", "Poll"): the REST routes the Discord adapter and tools use, under
// /api/v10, and the WebSocket gateway (HELLO, IDENTIFY, READY, GUILD_CREATE,
// RESUME/RESUMED, heartbeats and their ACKs, dispatches). The real discord.js
// client talks to it; the test reads what it received.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

type Json = Record<string, unknown>;

const snowflake = (n: bigint): string => (n << 22n).toString();
/** Discord's permission bits (docs: "Permissions", bitwise permission flags). */
export const PERM = {
  AddReactions: 1n << 6n,
  ViewChannel: 1n << 10n,
  SendMessages: 1n << 11n,
  ManageMessages: 1n << 13n,
  EmbedLinks: 1n << 14n,
  AttachFiles: 1n << 15n,
  ReadMessageHistory: 1n << 16n,
  SendPolls: 1n << 49n,
} as const;
const BOT_PERMISSIONS =
  PERM.AddReactions | PERM.ViewChannel | PERM.SendMessages | PERM.EmbedLinks | PERM.AttachFiles | PERM.ReadMessageHistory | PERM.SendPolls;

const user = (id: string, username: string, bot = false): Json => ({ id, username, discriminator: "0", global_name: null, avatar: null, bot });
export const BOT = user("1000000000000000001", "toolfleet-bot", true);
export const ALICE = user("1000000000000000002", "alice");
export const BOB = user("1000000000000000003", "bob");
export const BOT_ID = BOT.id as string;
// Guild ids whose timestamp part ((id >> 22) mod 2) puts one on each of 2 shards (docs: "Sharding formula").
export const GUILD = snowflake(1_000_000_000n);
export const OTHER_GUILD = snowflake(1_000_000_001n);
export const GENERAL = "4000000000000000001";
/** A channel where @everyone (the bot's only role) may not react, send, embed or attach. */
export const LOCKED = "4000000000000000002";
export const OPEN_CHANNEL = "4000000000000000003";
export const OTHER_CHANNEL = "4000000000000000009";

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: Json | null;
  files: { name: string; contentType: string; data: Buffer }[];
  atMs: number;
  status: number;
}

interface Session {
  id: string;
  shard: [number, number];
  seq: number;
}

/** Discord on loopback: `api` for discord.js's `rest.api`, a token that it accepts, and what it saw. */
export class DiscordStandIn {
  readonly requests: RecordedRequest[] = [];
  /** Gateway opcodes received, in order (2 IDENTIFY, 6 RESUME, 1 heartbeat …), with the shard of the socket. */
  readonly gatewayOps: { op: number; shard?: [number, number] }[] = [];
  readonly messages = new Map<string, Json>();
  private readonly sockets = new Map<WebSocket, Session | null>();
  private readonly sessions = new Map<string, Session>();
  private readonly limits: { method: string; path: RegExp; retryAfterS: number }[] = [];
  private readonly channels = new Map<string, Json>();
  private nextId = 5_000_000_000n;
  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    readonly token: string,
    private readonly heartbeatMs: number,
  ) {
    const channel = (id: string, guild: string, name: string, overwrites: Json[] = []): void => {
      this.channels.set(id, {
        id,
        type: 0,
        guild_id: guild,
        name,
        position: this.channels.size,
        permission_overwrites: overwrites,
        nsfw: false,
        parent_id: null,
      });
    };
    channel(GENERAL, GUILD, "general");
    channel(OPEN_CHANNEL, GUILD, "bot-chat");
    const denied = PERM.AddReactions | PERM.SendMessages | PERM.EmbedLinks | PERM.AttachFiles | PERM.SendPolls;
    channel(LOCKED, GUILD, "announcements", [{ id: GUILD, type: 0, allow: "0", deny: denied.toString() }]);
    channel(OTHER_CHANNEL, OTHER_GUILD, "elsewhere");
  }

  static async start(options: { token?: string; heartbeatMs?: number } = {}): Promise<DiscordStandIn> {
    const server = createServer();
    const wss = new WebSocketServer({ server, path: "/gateway" });
    const standIn = new DiscordStandIn(server, wss, options.token ?? "test-bot-token", options.heartbeatMs ?? 2000);
    server.on("request", (req, res) => void standIn.rest(req, res));
    wss.on("connection", (socket) => standIn.connected(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return standIn;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** discord.js's `rest.api` (it appends /v10). */
  get api(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  /** Requests to `method` and a path matching `path`. */
  calls(method: string, path: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && path.test(r.path));
  }

  /** The next request to `method` and `path` gets a 429 asking to wait `retryAfterS` (docs: "Exceeding a Rate Limit"). */
  rateLimitOnce(method: string, path: RegExp, retryAfterS: number): void {
    this.limits.push({ method, path, retryAfterS });
  }

  /** Sockets that have identified or resumed. */
  get liveSessions(): number {
    return [...this.sockets.values()].filter((s) => s !== null).length;
  }

  /** Guild ids each live session was sent (by shard). */
  guildsOf(shardId: number, count: number): string[] {
    return [GUILD, OTHER_GUILD].filter((g) => Number((BigInt(g) >> 22n) % BigInt(count)) === shardId);
  }

  /** A user writes in a channel (a DM when `channelId` is not a guild channel): MESSAGE_CREATE on the shard of its guild. */
  userMessage(content: string, options: { channelId?: string; author?: Json; mentionsBot?: boolean } = {}): Json {
    const channelId = options.channelId ?? GENERAL;
    const guildId = this.channels.get(channelId)?.guild_id as string | undefined;
    const mentions = options.mentionsBot ? [BOT] : [];
    const message = this.message(channelId, options.author ?? ALICE, { content: options.mentionsBot ? `<@${BOT_ID}> ${content}` : content, mentions }, guildId);
    this.dispatch("MESSAGE_CREATE", this.created(message, guildId), guildId);
    return message;
  }

  /** MESSAGE_CREATE's data: the message and the type of its channel (0 a guild text channel, 1 a DM). */
  private created(message: Json, guildId: string | undefined): Json {
    return { ...message, channel_type: guildId ? 0 : 1 };
  }

  /** Closes every gateway socket with `code` (4000: "unknown error", which a client resumes after). */
  dropGateway(code = 4000): void {
    for (const socket of this.sockets.keys()) socket.close(code, "stand-in dropped the connection");
  }

  async close(): Promise<void> {
    for (const socket of this.sockets.keys()) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ── gateway ────────────────────────────────────────────────────────────

  private connected(socket: WebSocket): void {
    this.sockets.set(socket, null);
    const send = (payload: Json): void => socket.send(JSON.stringify(payload));
    send({ op: 10, d: { heartbeat_interval: this.heartbeatMs }, s: null, t: null });
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("message", (raw) => {
      // binaryType "nodebuffer" (the default): one Buffer a message.
      const { op, d } = JSON.parse((raw as Buffer).toString("utf8")) as { op: number; d: Json };
      const session = this.sockets.get(socket) ?? null;
      this.gatewayOps.push({ op, ...(session ? { shard: session.shard } : {}) });
      if (op === 1) return send({ op: 11, d: null, s: null, t: null });
      if (op === 2) return this.identify(socket, d);
      if (op === 6) return this.resume(socket, d);
    });
  }

  private identify(socket: WebSocket, d: Json): void {
    if (d.token !== this.token) return socket.close(4004, "Authentication failed.");
    const shard = (Array.isArray(d.shard) ? d.shard : [0, 1]) as [number, number];
    const session: Session = { id: `session-${this.sessions.size + 1}`, shard, seq: 0 };
    this.sessions.set(session.id, session);
    this.sockets.set(socket, session);
    const guilds = this.guildsOf(shard[0], shard[1]);
    const url = `ws://127.0.0.1:${this.port}/gateway`;
    this.send(socket, session, "READY", {
      v: 10,
      user: BOT,
      guilds: guilds.map((id) => ({ id, unavailable: true })),
      session_id: session.id,
      resume_gateway_url: url,
      shard,
      application: { id: BOT_ID, flags: 0 },
    });
    for (const id of guilds) this.send(socket, session, "GUILD_CREATE", this.guild(id));
  }

  private resume(socket: WebSocket, d: Json): void {
    const session = this.sessions.get(String(d.session_id));
    // An unknown session must identify again (op 9, d: false: not resumable).
    if (!session || d.token !== this.token) return void socket.send(JSON.stringify({ op: 9, d: false, s: null, t: null }));
    this.sockets.set(socket, session);
    this.send(socket, session, "RESUMED", {});
  }

  private send(socket: WebSocket, session: Session, t: string, d: unknown): void {
    socket.send(JSON.stringify({ op: 0, t, s: ++session.seq, d }));
  }

  private dispatch(t: string, d: unknown, guildId: string | undefined): void {
    for (const [socket, session] of this.sockets) {
      if (!session) continue;
      const [id, count] = session.shard;
      // DMs arrive on shard 0 (docs: "Sharding"); a guild's events on its own shard.
      const owner = guildId === undefined ? 0 : Number((BigInt(guildId) >> 22n) % BigInt(count));
      if (owner === id) this.send(socket, session, t, d);
    }
  }

  private guild(id: string): Json {
    return {
      id,
      name: id === GUILD ? "Test Server" : "Other Server",
      icon: null,
      description: null,
      owner_id: ALICE.id,
      features: [],
      large: false,
      member_count: 3,
      unavailable: false,
      joined_at: "2024-01-01T00:00:00.000Z",
      roles: [
        { id, name: "@everyone", permissions: BOT_PERMISSIONS.toString(), position: 0, color: 0, hoist: false, managed: false, mentionable: false, flags: 0 },
      ],
      emojis: [],
      stickers: [],
      channels: [...this.channels.values()].filter((c) => c.guild_id === id).map(({ guild_id: _, ...c }) => c),
      threads: [],
      members: [{ user: BOT, roles: [], joined_at: "2024-01-01T00:00:00.000Z", deaf: false, mute: false, flags: 0 }],
      presences: [],
      voice_states: [],
      premium_tier: 0,
      preferred_locale: "en-US",
    };
  }

  private message(channelId: string, author: Json, fields: Json, guildId?: string): Json {
    const id = (this.nextId++).toString();
    const message: Json = {
      id,
      channel_id: channelId,
      ...(guildId ? { guild_id: guildId } : {}),
      author,
      content: "",
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: [],
      embeds: [],
      pinned: false,
      type: 0,
      reactions: [],
      ...fields,
    };
    this.messages.set(id, message);
    return message;
  }

  // ── REST ───────────────────────────────────────────────────────────────

  private async rest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://standin");
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const method = req.method ?? "GET";
    const path = url.pathname.replace(/^\/api\/v10/, "");
    const record: RecordedRequest = { method, path, query: url.searchParams, body: null, files: [], atMs: Date.now(), status: 0 };
    this.requests.push(record);
    const reply = (status: number, body?: unknown, headers: Record<string, string> = {}): void => {
      record.status = status;
      res.writeHead(status, { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bot ${this.token}`) return reply(401, { message: "401: Unauthorized", code: 0 });
    await this.readBody(req, raw, record);
    const limit = this.limits.findIndex((l) => l.method === method && l.path.test(path));
    if (limit !== -1) {
      const retryAfterS = this.limits.splice(limit, 1)[0]?.retryAfterS ?? 0;
      const headers = {
        "retry-after": String(retryAfterS),
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset-after": String(retryAfterS),
        "x-ratelimit-bucket": "standin-bucket",
        "x-ratelimit-scope": "user",
      };
      return reply(429, { message: "You are being rate limited.", retry_after: retryAfterS, global: false }, headers);
    }
    const [status, body] = this.route(method, path, record);
    reply(status, body);
  }

  private async readBody(req: IncomingMessage, raw: Buffer, record: RecordedRequest): Promise<void> {
    const type = req.headers["content-type"] ?? "";
    if (raw.length === 0) return;
    if (type.startsWith("application/json")) {
      record.body = JSON.parse(raw.toString("utf8")) as Json;
      return;
    }
    if (type.startsWith("multipart/form-data")) {
      const form = await new Request("http://standin/", { method: "POST", headers: { "content-type": type }, body: raw }).formData();
      for (const [name, value] of form) {
        if (name === "payload_json" && typeof value === "string") record.body = JSON.parse(value) as Json;
        else if (typeof value !== "string") record.files.push({ name: value.name, contentType: value.type, data: Buffer.from(await value.arrayBuffer()) });
      }
    }
  }

  private route(method: string, path: string, record: RecordedRequest): [number, unknown] {
    const notFound = (code: number, what: string): [number, unknown] => [404, { message: `Unknown ${what}`, code }];
    const forbidden: [number, unknown] = [403, { message: "Missing Permissions", code: 50013 }];
    const body = record.body ?? {};
    let m: RegExpExecArray | null;
    if (method === "GET" && path === "/gateway/bot") {
      return [
        200,
        { url: `ws://127.0.0.1:${this.port}/gateway`, shards: 1, session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 } },
      ];
    }
    if (method === "POST" && (m = /^\/channels\/(\d+)\/messages$/.exec(path))) {
      const channelId = m[1] ?? "";
      if (channelId === LOCKED) return forbidden;
      const attachments = record.files.map((f, i) => ({
        id: String(i),
        filename: f.name,
        size: f.data.length,
        content_type: f.contentType,
        url: `https://cdn.invalid/${f.name}`,
      }));
      const guildId = this.channels.get(channelId)?.guild_id as string | undefined;
      const message = this.message(
        channelId,
        BOT,
        { content: body.content ?? "", embeds: body.embeds ?? [], attachments, ...(body.poll ? { poll: body.poll } : {}) },
        guildId,
      );
      // As Discord does: the bot's own message comes back on the gateway too (the adapter must ignore it).
      this.dispatch("MESSAGE_CREATE", this.created(message, guildId), guildId);
      return [200, message];
    }
    if (method === "POST" && (m = /^\/channels\/(\d+)\/typing$/.exec(path))) return [204, undefined];
    if ((m = /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/.exec(path)) && method === "PUT") {
      if (m[1] === LOCKED) return forbidden;
      const message = this.messages.get(m[2] ?? "");
      if (!message) return notFound(10008, "Message");
      const name = decodeURIComponent(m[3] ?? "");
      (message.reactions as Json[]).push({ emoji: { id: null, name }, count: 1, me: true });
      return [204, undefined];
    }
    if (method === "GET" && (m = /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)$/.exec(path))) {
      if (!this.messages.has(m[2] ?? "")) return notFound(10008, "Message");
      return [200, [ALICE, BOB].slice(0, Number(record.query.get("limit") ?? 25))];
    }
    if ((m = /^\/channels\/(\d+)\/messages\/(\d+)$/.exec(path))) {
      const message = this.messages.get(m[2] ?? "");
      if (!message || message.channel_id !== m[1]) return notFound(10008, "Message");
      if (method === "GET") return [200, message];
      if (method === "PATCH") {
        if ((message.author as Json).id !== BOT_ID) return [403, { message: "Cannot edit a message authored by another user", code: 50005 }];
        Object.assign(message, { content: body.content, edited_timestamp: new Date().toISOString() });
        return [200, message];
      }
      if (method === "DELETE") {
        this.messages.delete(m[2] ?? "");
        return [204, undefined];
      }
    }
    if (method === "POST" && path === "/users/@me/channels") {
      const recipient = [ALICE, BOB].find((u) => u.id === body.recipient_id);
      if (!recipient) return notFound(10013, "User");
      const id = `6${String(recipient.id).slice(1)}`;
      this.channels.set(id, { id, type: 1, recipients: [recipient], last_message_id: null });
      return [200, this.channels.get(id)];
    }
    if (method === "GET" && (m = /^\/guilds\/(\d+)\/members\/(\d+)$/.exec(path))) {
      const member = [ALICE, BOB, BOT].find((u) => u.id === m?.[2]);
      return member ? [200, { user: member, roles: [], joined_at: "2024-01-01T00:00:00.000Z", deaf: false, mute: false, flags: 0 }] : notFound(10007, "Member");
    }
    if (method === "GET" && (m = /^\/guilds\/(\d+)\/emojis$/.exec(path))) {
      return [200, [{ id: "7000000000000000001", name: "fleet", animated: false, available: true, roles: [], require_colons: true, managed: false }]];
    }
    if (method === "GET" && (m = /^\/guilds\/(\d+)$/.exec(path))) {
      const guild = this.guild(m[1] ?? "");
      return [200, { ...guild, approximate_member_count: 3, approximate_presence_count: 2 }];
    }
    if (method === "GET" && path === "/users/@me/guilds") {
      return [
        200,
        [GUILD, OTHER_GUILD].map((id) => ({ id, name: this.guild(id).name, icon: null, owner: false, permissions: BOT_PERMISSIONS.toString(), features: [] })),
      ];
    }
    if (method === "GET" && (m = /^\/channels\/(\d+)$/.exec(path))) {
      const channel = this.channels.get(m[1] ?? "");
      return channel ? [200, channel] : notFound(10003, "Channel");
    }
    return [404, { message: `the stand-in has no route ${method} ${path}`, code: 0 }];
  }
}
