// The gateway-pinned Discord tools (src/core/pins.ts), run on the gateway's live
// discord.js client. Each checks the bot's Discord permission before it acts
// and refuses in words when it lacks one; called with no Discord adapter, each
// says so. Only types come from discord.js, so these load on every tier.
import { z } from "zod";
import type { ToolContext } from "../../core/context.js";
import { ToolfleetError } from "../../core/errors.js";
import { defineTool, type ToolDefinition } from "../../core/tool.js";
import { isChatPlatform } from "../platform.js";
import { discordOf, isDiscordPlatform, onDiscord, requirePermissions, type DiscordLive } from "./live.js";
import { reactionEmoji } from "./adapter.js";
import { MESSAGE_LIMIT, toEmbed } from "./split.js";

const snowflake = z.string().regex(/^\d{1,20}$/, "a Discord id (digits)");
const channelArg = snowflake.optional().describe("The channel (default: the one the message came from); it must be in the same server");

/**
 * The channel a tool acts in: the chat's own, or another of the same server
 * (never another server's: the user asked here).
 */
function channelFor(live: DiscordLive, ctx: ToolContext, channelId: string | undefined, tool: string): string {
  if (channelId === undefined || channelId === ctx.channelId) return ctx.channelId;
  const channel = live.client.channels.cache.get(channelId);
  if (!channel || channel.isDMBased() || channel.guildId !== ctx.guildId) {
    throw new ToolfleetError("PLATFORM_REFUSED", `${tool}: channel ${channelId} is not a channel of this server`);
  }
  return channelId;
}

function guildOf(live: DiscordLive, ctx: ToolContext, tool: string) {
  const guild = ctx.guildId ? live.client.guilds.cache.get(ctx.guildId) : undefined;
  if (!guild) throw new ToolfleetError("PLATFORM_REFUSED", `${tool}: this only works in a server channel, not in a DM`);
  return guild;
}

interface RawMessage {
  id: string;
  author?: { id?: string };
  reactions?: { emoji: { id: string | null; name: string | null }; count: number; me?: boolean }[];
}

export const discordReactTool = defineTool({
  name: "discord_react",
  description: "React to the current message (or another message of this channel) with an emoji.",
  parameters: z.object({
    emoji: z.string().min(1).max(64).describe("A unicode emoji, or a custom one as <:name:id>"),
    message_id: snowflake.optional().describe("The message to react to (default: the one being answered)"),
  }),
  handler: async ({ emoji, message_id }, ctx) => {
    const messageId = message_id ?? ctx.messageId;
    // On Discord the bot's permission is checked first; any other live platform (console, web chat) reacts as it can.
    if (isDiscordPlatform(ctx.adapter)) requirePermissions(ctx.adapter.discord(), ctx.channelId, ["AddReactions", "ReadMessageHistory"], "discord_react");
    const adapter = ctx.adapter;
    if (isChatPlatform(adapter)) await onDiscord("discord_react", () => adapter.react(ctx.channelId, messageId, emoji));
    // Away from the gateway the reaction is reported for the caller to show.
    else ctx.sendRichMessage({ kind: "reaction", emoji, messageId, channelId: ctx.channelId });
    return `Reacted with ${emoji} on ${ctx.platform || "the platform"}.`;
  },
});

export const discordSendDm = defineTool({
  name: "discord_send_dm",
  description: "Send a direct message to the user who is chatting (or another member of this server).",
  parameters: z.object({
    text: z.string().min(1).max(MESSAGE_LIMIT),
    user_id: snowflake.optional().describe("The user (default: the one who asked); another user must be a member of this server"),
  }),
  handler: async ({ text, user_id }, ctx) => {
    const live = discordOf(ctx, "discord_send_dm");
    const userId = user_id ?? ctx.userId;
    if (userId !== ctx.userId) {
      const guild = guildOf(live, ctx, "discord_send_dm");
      await onDiscord("discord_send_dm", () => guild.members.fetch(userId));
    }
    const { Routes } = live.lib;
    const sent = await onDiscord("discord_send_dm", async () => {
      const dm = (await live.client.rest.post(Routes.userChannels(), { body: { recipient_id: userId } })) as { id: string };
      return (await live.client.rest.post(Routes.channelMessages(dm.id), { body: { content: text, allowed_mentions: { parse: [] } } })) as RawMessage;
    });
    return `Sent a direct message to user ${userId} (message ${sent.id}).`;
  },
});

const embedParameters = z.object({
  title: z.string().min(1).max(256).optional(),
  description: z.string().min(1).max(4096).optional(),
  url: z.url({ protocol: /^https?$/ }).optional(),
  color: z.number().int().min(0).max(0xffffff).optional().describe("An RGB colour as a number, e.g. 5793266"),
  footer: z.string().min(1).max(2048).optional(),
  fields: z
    .array(z.object({ name: z.string().min(1).max(256), value: z.string().min(1).max(1024), inline: z.boolean().optional() }))
    .max(25)
    .optional(),
  channel_id: channelArg,
});

export const discordEmbed = defineTool({
  name: "discord_embed",
  description: "Post a rich embed (title, description, fields, colour) in the channel.",
  parameters: embedParameters.refine((a) => a.title ?? a.description ?? a.fields, "an embed needs a title, a description or fields"),
  handler: async ({ channel_id, ...embed }, ctx) => {
    const live = discordOf(ctx, "discord_embed");
    const channelId = channelFor(live, ctx, channel_id, "discord_embed");
    requirePermissions(live, channelId, ["SendMessages", "EmbedLinks"], "discord_embed");
    const sent = (await onDiscord("discord_embed", () =>
      live.client.rest.post(live.lib.Routes.channelMessages(channelId), { body: { embeds: [toEmbed(embed)], allowed_mentions: { parse: [] } } }),
    )) as RawMessage;
    return `Posted the embed (message ${sent.id}).`;
  },
});

export const discordUploadFile = defineTool({
  name: "discord_upload_file",
  description: "Upload a file to the channel: text content, or bytes as base64.",
  parameters: z
    .object({
      filename: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "a file name of letters, digits, . _ -"),
      text: z.string().max(1_000_000).optional().describe("The file's content as text (UTF-8)"),
      base64: z.base64().max(11_000_000).optional().describe("The file's bytes, base64"),
      content_type: z.string().max(100).optional(),
      message: z.string().max(MESSAGE_LIMIT).optional().describe("Text to post with the file"),
      channel_id: channelArg,
    })
    .refine((a) => (a.text === undefined) !== (a.base64 === undefined), "give exactly one of text or base64"),
  handler: async ({ filename, text, base64, content_type, message, channel_id }, ctx) => {
    const live = discordOf(ctx, "discord_upload_file");
    const channelId = channelFor(live, ctx, channel_id, "discord_upload_file");
    requirePermissions(live, channelId, ["SendMessages", "AttachFiles"], "discord_upload_file");
    const data = text !== undefined ? Buffer.from(text, "utf8") : Buffer.from(base64 ?? "", "base64");
    const contentType = content_type ?? (text !== undefined ? "text/plain; charset=utf-8" : "application/octet-stream");
    const sent = (await onDiscord("discord_upload_file", () =>
      live.client.rest.post(live.lib.Routes.channelMessages(channelId), {
        body: { ...(message ? { content: message } : {}), attachments: [{ id: 0, filename }], allowed_mentions: { parse: [] } },
        files: [{ name: filename, data, contentType }],
      }),
    )) as RawMessage;
    return `Uploaded ${filename} (${data.byteLength} bytes, message ${sent.id}).`;
  },
});

/** A message of the channel, read through the REST queue (the cache holds only what arrived while connected). */
async function fetchMessage(live: DiscordLive, channelId: string, messageId: string, tool: string): Promise<RawMessage> {
  return (await onDiscord(tool, () => live.client.rest.get(live.lib.Routes.channelMessage(channelId, messageId)))) as RawMessage;
}

export const discordEditMessage = defineTool({
  name: "discord_edit_message",
  description: "Change the text of a message the bot sent earlier.",
  parameters: z.object({ message_id: snowflake, text: z.string().min(1).max(MESSAGE_LIMIT), channel_id: channelArg }),
  handler: async ({ message_id, text, channel_id }, ctx) => {
    const live = discordOf(ctx, "discord_edit_message");
    const channelId = channelFor(live, ctx, channel_id, "discord_edit_message");
    requirePermissions(live, channelId, ["ViewChannel", "ReadMessageHistory"], "discord_edit_message");
    const message = await fetchMessage(live, channelId, message_id, "discord_edit_message");
    if (message.author?.id !== live.client.user.id) {
      throw new ToolfleetError(
        "PLATFORM_REFUSED",
        `discord_edit_message: message ${message_id} is not the bot's; Discord lets a bot edit only its own messages`,
      );
    }
    await onDiscord("discord_edit_message", () =>
      live.client.rest.patch(live.lib.Routes.channelMessage(channelId, message_id), { body: { content: text, allowed_mentions: { parse: [] } } }),
    );
    return `Edited message ${message_id}.`;
  },
});

export const discordDeleteMessage = defineTool({
  name: "discord_delete_message",
  description: "Delete a message: one the bot sent, or anyone's where the bot may manage messages.",
  parameters: z.object({ message_id: snowflake, channel_id: channelArg }),
  annotations: { destructive: true },
  handler: async ({ message_id, channel_id }, ctx) => {
    const live = discordOf(ctx, "discord_delete_message");
    const channelId = channelFor(live, ctx, channel_id, "discord_delete_message");
    requirePermissions(live, channelId, ["ViewChannel", "ReadMessageHistory"], "discord_delete_message");
    const message = await fetchMessage(live, channelId, message_id, "discord_delete_message");
    if (message.author?.id !== live.client.user.id) requirePermissions(live, channelId, ["ManageMessages"], "discord_delete_message");
    await onDiscord("discord_delete_message", () => live.client.rest.delete(live.lib.Routes.channelMessage(channelId, message_id)));
    return `Deleted message ${message_id}.`;
  },
});

const emojiLabel = (e: { id: string | null; name: string | null }): string => (e.id ? `<:${e.name ?? "emoji"}:${e.id}>` : (e.name ?? "?"));

export const discordMessageReactions = defineTool({
  name: "discord_message_reactions",
  description: "The reactions on a message: each emoji and how many reacted with it.",
  parameters: z.object({ message_id: snowflake.optional().describe("Default: the message being answered"), channel_id: channelArg }),
  annotations: { readOnly: true },
  handler: async ({ message_id, channel_id }, ctx) => {
    const live = discordOf(ctx, "discord_message_reactions");
    const channelId = channelFor(live, ctx, channel_id, "discord_message_reactions");
    requirePermissions(live, channelId, ["ViewChannel", "ReadMessageHistory"], "discord_message_reactions");
    const message = await fetchMessage(live, channelId, message_id ?? ctx.messageId, "discord_message_reactions");
    return { message_id: message.id, reactions: (message.reactions ?? []).map((r) => ({ emoji: emojiLabel(r.emoji), count: r.count, by_bot: r.me === true })) };
  },
});

export const getMessageReactions = defineTool({
  name: "get_message_reactions",
  description: "Who reacted to a message with a given emoji (up to 100 users).",
  parameters: z.object({
    emoji: z.string().min(1).max(64),
    message_id: snowflake.optional().describe("Default: the message being answered"),
    limit: z.number().int().min(1).max(100).default(25),
    channel_id: channelArg,
  }),
  annotations: { readOnly: true },
  handler: async ({ emoji, message_id, limit, channel_id }, ctx) => {
    const live = discordOf(ctx, "get_message_reactions");
    const channelId = channelFor(live, ctx, channel_id, "get_message_reactions");
    requirePermissions(live, channelId, ["ViewChannel", "ReadMessageHistory"], "get_message_reactions");
    const messageId = message_id ?? ctx.messageId;
    const route = live.lib.Routes.channelMessageReaction(channelId, messageId, encodeURIComponent(reactionEmoji(emoji)));
    const users = (await onDiscord("get_message_reactions", () => live.client.rest.get(route, { query: new URLSearchParams({ limit: String(limit) }) }))) as {
      id: string;
      username: string;
    }[];
    return { message_id: messageId, emoji, users: users.map((u) => ({ id: u.id, name: u.username })) };
  },
});

export const discordServerInfo = defineTool({
  name: "discord_server_info",
  description: "About this Discord server: its name, owner, member count, channels, roles and when it was made.",
  parameters: z.object({}),
  annotations: { readOnly: true },
  handler: async (_args, ctx) => {
    const live = discordOf(ctx, "discord_server_info");
    const guild = guildOf(live, ctx, "discord_server_info");
    const fresh = (await onDiscord("discord_server_info", () =>
      live.client.rest.get(live.lib.Routes.guild(guild.id), { query: new URLSearchParams({ with_counts: "true" }) }),
    )) as { name: string; owner_id: string; approximate_member_count?: number; approximate_presence_count?: number; description?: string | null };
    return {
      id: guild.id,
      name: fresh.name,
      description: fresh.description ?? null,
      owner_id: fresh.owner_id,
      members: fresh.approximate_member_count ?? guild.memberCount,
      online: fresh.approximate_presence_count ?? null,
      channels: guild.channels.cache.size,
      roles: guild.roles.cache.size,
      created_at: guild.createdAt.toISOString(),
    };
  },
});

export const listServerEmojis = defineTool({
  name: "list_server_emojis",
  description: "The custom emojis of this Discord server, as they are written in a message.",
  parameters: z.object({}),
  annotations: { readOnly: true },
  handler: async (_args, ctx) => {
    const live = discordOf(ctx, "list_server_emojis");
    const guild = guildOf(live, ctx, "list_server_emojis");
    const emojis = (await onDiscord("list_server_emojis", () => live.client.rest.get(live.lib.Routes.guildEmojis(guild.id)))) as {
      id: string;
      name: string;
      animated?: boolean;
      available?: boolean;
    }[];
    return { emojis: emojis.map((e) => ({ name: e.name, usage: `<${e.animated ? "a" : ""}:${e.name}:${e.id}>`, available: e.available !== false })) };
  },
});

/** Pages of /users/@me/guilds (200 a page) read at most: 20,000 servers. */
const MAX_GUILD_PAGES = 100;

export const getCurrentGuildCount = defineTool({
  name: "get_current_guild_count",
  description: "How many Discord servers the bot is in (every shard's, not only this gateway's).",
  parameters: z.object({}),
  annotations: { readOnly: true },
  handler: async (_args, ctx) => {
    const live = discordOf(ctx, "get_current_guild_count");
    // Asked of Discord, not of the cache: with --shard, this gateway holds only its shard's servers.
    let count = 0;
    let after = "0";
    for (let page = 0; page < MAX_GUILD_PAGES; page++) {
      const query = new URLSearchParams({ limit: "200", after });
      const guilds = (await onDiscord("get_current_guild_count", () => live.client.rest.get(live.lib.Routes.userGuilds(), { query }))) as { id: string }[];
      count += guilds.length;
      if (guilds.length < 200) return { guilds: count, on_this_gateway: live.client.guilds.cache.size };
      after = guilds.at(-1)?.id ?? after;
    }
    return { guilds: count, more_than_counted: true, on_this_gateway: live.client.guilds.cache.size };
  },
});

export const createPoll = defineTool({
  name: "create_poll",
  description: "Start a Discord poll in the channel.",
  parameters: z.object({
    question: z.string().min(1).max(300),
    answers: z.array(z.string().min(1).max(55)).min(1).max(10),
    duration_hours: z.number().int().min(1).max(768).default(24),
    allow_multiselect: z.boolean().default(false),
    channel_id: channelArg,
  }),
  handler: async ({ question, answers, duration_hours, allow_multiselect, channel_id }, ctx) => {
    const live = discordOf(ctx, "create_poll");
    const channelId = channelFor(live, ctx, channel_id, "create_poll");
    requirePermissions(live, channelId, ["SendMessages", "SendPolls"], "create_poll");
    const poll = { question: { text: question }, answers: answers.map((text) => ({ poll_media: { text } })), duration: duration_hours, allow_multiselect };
    const sent = (await onDiscord("create_poll", () => live.client.rest.post(live.lib.Routes.channelMessages(channelId), { body: { poll } }))) as RawMessage;
    return `Started the poll "${question}" with ${answers.length} answers for ${duration_hours} h (message ${sent.id}).`;
  },
});

/** Every Discord tool toolfleet implements; their names are all gateway-pinned. */
export const discordTools: readonly ToolDefinition[] = [
  discordReactTool,
  discordSendDm,
  discordEmbed,
  discordUploadFile,
  discordEditMessage,
  discordDeleteMessage,
  discordMessageReactions,
  getMessageReactions,
  discordServerInfo,
  listServerEmojis,
  getCurrentGuildCount,
  createPoll,
];

/** `tools` and the Discord tools it does not define itself (a module's own definition of a name wins). */
export function withDiscordTools(tools: readonly ToolDefinition[]): ToolDefinition[] {
  const own = new Set(tools.map((t) => t.name));
  return [...tools, ...discordTools.filter((t) => !own.has(t.name))];
}
