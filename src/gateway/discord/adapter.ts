import type * as DiscordJs from "discord.js";
import { ToolfleetError } from "../../core/errors.js";
import { errorFields, type Logger } from "../../core/log.js";
import type { ChatPlatform, IncomingMessage, OutgoingMessage } from "../platform.js";
import type { DiscordLib, DiscordLive, DiscordPlatform } from "./live.js";
import { planMessages, reactionOf, type PlannedMessage } from "./split.js";

export interface DiscordAdapterOptions {
  /** The bot token (TOOLFLEET_DISCORD_TOKEN). Never logged. */
  token: string;
  logger: Logger;
  /** Channel ids where every message is answered; elsewhere only DMs and messages that mention the bot. @defaultValue none */
  channels?: readonly string[];
  /** Discord's REST API base (a proxy, a test stand-in). @defaultValue "https://discord.com/api" */
  apiUrl?: string;
  /** The Discord gateway shard this process runs, of how many. @defaultValue every shard Discord recommends, in this process */
  shard?: { id: number; count: number };
  /** How long start() waits for Discord's READY and the guilds. @defaultValue 30000 */
  readyTimeoutMs?: number;
}

/** Discord shows "typing…" for 10 s after each POST /typing: refreshed a little before that. */
const TYPING_REFRESH_MS = 8000;
/** A chat whose answer never comes (a stopped inference tier) stops typing after this long, at the latest. */
const TYPING_MAX_MS = 10 * 60_000;
const DEFAULT_READY_TIMEOUT_MS = 30_000;

/** discord.js, loaded on first use only: the console and web adapters, and `--help`, never pay for it. */
let loaded: Promise<DiscordLib> | undefined;
function loadDiscordJs(): Promise<DiscordLib> {
  loaded ??= import("discord.js").then((m) => (m as { default?: DiscordLib }).default ?? m);
  return loaded;
}

/**
 * Discord as a chat platform, on discord.js 14. Messages come in from DMs,
 * from messages that mention the bot and from the configured channels, with
 * Discord's user, server, channel and message ids as the identity; answers go
 * out as replies split at 2,000 characters, files as attachments, rich
 * messages as embeds, with "typing…" shown while the chat runs. Every REST
 * call goes through discord.js's REST queue, which waits out 429s as Discord
 * says (`retry_after`); the gateway connection resumes by itself after a drop.
 */
export class DiscordAdapter implements ChatPlatform, DiscordPlatform {
  readonly platform = "discord";
  readonly ownsPlatformClient = true;
  private live: DiscordLive | undefined;
  private readonly channels: ReadonlySet<string>;
  /** Message id → its typing timer, until the answer to it is sent. */
  private readonly typing = new Map<string, { channelId: string; timer: NodeJS.Timeout; until: number }>();

  constructor(private readonly options: DiscordAdapterOptions) {
    if (!options.token.trim()) {
      throw new ToolfleetError("CONFIG_INVALID", "the discord adapter needs the bot's token: set TOOLFLEET_DISCORD_TOKEN (README, Discord)");
    }
    const shard = options.shard;
    if (shard && !(Number.isInteger(shard.count) && shard.count >= 1 && Number.isInteger(shard.id) && shard.id >= 0 && shard.id < shard.count)) {
      throw new ToolfleetError("CONFIG_INVALID", `a Discord shard must be 0 to count-1 of a count >= 1, got ${shard.id} of ${shard.count}`);
    }
    this.channels = new Set(options.channels ?? []);
  }

  /** The live client, for the Discord tools. */
  discord(): DiscordLive {
    if (!this.live) throw new ToolfleetError("NOT_STARTED", "the Discord adapter is not connected (start() has not finished, or it stopped)");
    return this.live;
  }

  async start(onMessage: (message: IncomingMessage) => void): Promise<void> {
    if (this.live) return;
    const lib = await loadDiscordJs();
    const { GatewayIntentBits: I, Partials, Events } = lib;
    const { shard } = this.options;
    const client = new lib.Client({
      // Message Content is privileged: without it enabled on the bot's page, guild messages that do not mention the bot arrive empty.
      intents: [I.Guilds, I.GuildMessages, I.GuildMessageReactions, I.DirectMessages, I.MessageContent, I.GuildExpressions],
      // A DM's channel is not in the cache until its first message: without the partial, discord.js drops that message.
      partials: [Partials.Channel],
      rest: { api: this.options.apiUrl ?? "https://discord.com/api" },
      ...(shard ? { shards: [shard.id], shardCount: shard.count } : {}),
      // The bot pings nobody unless a reply to the user: model output may contain @everyone.
      allowedMentions: { parse: [], repliedUser: true },
    });
    client.on(Events.MessageCreate, (m) => this.receive(client, m, onMessage));
    client.on(Events.ShardDisconnect, (event, id) =>
      this.options.logger.error({ shard: id, code: event.code }, "Discord closed the gateway connection for good"),
    );
    client.on(Events.ShardResume, (id) => this.options.logger.info({ shard: id }, "Discord gateway connection resumed"));
    client.on(Events.Error, (err) => this.options.logger.error({ ...errorFields(err) }, "Discord client error"));
    client.rest.on("rateLimited", (info) =>
      this.options.logger.warn({ route: info.route, retryAfterMs: info.retryAfter, global: info.global }, "Discord rate limit: the request waits"),
    );
    const readyMs = this.options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
    try {
      await Promise.race([
        client.login(this.options.token).then(() => ready),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ToolfleetError("TIMEOUT", `Discord was not ready within ${readyMs / 1000} s`)), readyMs);
        }),
      ]);
    } catch (err) {
      await client
        .destroy()
        .catch((destroyErr: unknown) =>
          this.options.logger.debug({ ...errorFields(destroyErr) }, "closing the Discord client after a failed login failed too"),
        );
      const code = (err as { code?: unknown }).code;
      if (code === "TokenInvalid" || (err as { status?: unknown }).status === 401) {
        throw new ToolfleetError("CONFIG_INVALID", "Discord refused the bot token (401): check TOOLFLEET_DISCORD_TOKEN", { cause: err });
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.live = { lib, client: client as DiscordJs.Client<true> };
    this.options.logger.info({ bot: client.user?.tag, guilds: client.guilds.cache.size, shard: shard?.id }, "Discord adapter connected");
  }

  private receive(client: DiscordJs.Client, m: DiscordJs.Message, onMessage: (message: IncomingMessage) => void): void {
    const me = client.user;
    if (!me || m.author.bot || m.system) return;
    const mentioned = m.mentions.users.has(me.id);
    if (m.guildId !== null && !mentioned && !this.channels.has(m.channelId)) return;
    // The mention that addressed the bot is not part of what the user said.
    const text = m.content.replace(new RegExp(`<@!?${me.id}>`, "g"), "").trim();
    if (text === "") return;
    this.startTyping(m.channelId, m.id);
    onMessage({
      identity: {
        platform: this.platform,
        channelId: m.channelId,
        userId: m.author.id,
        userName: m.author.username,
        guildId: m.guildId ?? "",
        messageId: m.id,
      },
      text,
    });
  }

  async send(channelId: string, message: OutgoingMessage): Promise<void> {
    const { client, lib } = this.discord();
    if (message.inReplyTo) this.stopTyping(message.inReplyTo);
    for (const rich of message.richMessages) {
      const reaction = reactionOf(rich);
      if (reaction) await this.react(channelId, reaction.messageId, reaction.emoji);
    }
    let first = true;
    for (const planned of planMessages(message)) {
      if (!planned.content && planned.embeds.length === 0 && planned.files.length === 0) continue;
      await client.rest.post(lib.Routes.channelMessages(channelId), messageRequest(planned, first ? message.inReplyTo : undefined));
      first = false;
    }
  }

  async react(channelId: string, messageId: string, emoji: string): Promise<void> {
    const { client, lib } = this.discord();
    await client.rest.put(lib.Routes.channelMessageOwnReaction(channelId, messageId, encodeURIComponent(reactionEmoji(emoji))));
  }

  async stop(): Promise<void> {
    for (const id of [...this.typing.keys()]) this.stopTyping(id);
    const live = this.live;
    this.live = undefined;
    await live?.client.destroy();
  }

  private startTyping(channelId: string, messageId: string): void {
    const until = Date.now() + TYPING_MAX_MS;
    const tick = (): void => {
      const entry = this.typing.get(messageId);
      if (!this.live || (entry && Date.now() > entry.until)) return this.stopTyping(messageId);
      this.live.client.rest
        .post(this.live.lib.Routes.channelTyping(channelId))
        .catch((err: unknown) => this.options.logger.debug({ channelId, ...errorFields(err) }, "could not show typing"));
    };
    this.typing.set(messageId, { channelId, until, timer: setInterval(tick, TYPING_REFRESH_MS) });
    tick();
  }

  private stopTyping(messageId: string): void {
    const entry = this.typing.get(messageId);
    if (!entry) return;
    clearInterval(entry.timer);
    this.typing.delete(messageId);
  }
}

/** A custom emoji as the user writes it (`<:name:id>`, `<a:name:id>`) is `name:id` in a reaction route. */
export function reactionEmoji(emoji: string): string {
  const custom = /^<a?:([A-Za-z0-9_]+):(\d+)>$/.exec(emoji.trim());
  return custom ? `${custom[1]}:${custom[2]}` : emoji.trim();
}

/** A planned message as discord.js's REST takes it: JSON, or multipart with the files (`files[n]`, named in `attachments`). */
export function messageRequest(planned: PlannedMessage, replyTo?: string): { body: unknown; files?: { name: string; data: Buffer; contentType: string }[] } {
  const body: Record<string, unknown> = {
    ...(planned.content ? { content: planned.content } : {}),
    ...(planned.embeds.length > 0 ? { embeds: planned.embeds } : {}),
    ...(replyTo ? { message_reference: { message_id: replyTo, fail_if_not_exists: false } } : {}),
    allowed_mentions: { parse: [], replied_user: true },
  };
  if (planned.files.length === 0) return { body };
  body.attachments = planned.files.map((f, id) => ({ id, filename: f.name }));
  return { body, files: planned.files.map((f) => ({ name: f.name, data: Buffer.from(f.data), contentType: f.contentType })) };
}
