// What a Discord tool reaches on the gateway: the live discord.js client and the
// library itself (loaded once by the adapter). Only types come from discord.js
// here, so the tool definitions load, and show in the catalog, on any tier.
import type * as DiscordJs from "discord.js";
import type { PlatformAdapter, ToolContext } from "../../core/context.js";
import { ToolfleetError } from "../../core/errors.js";

export type DiscordLib = typeof DiscordJs;

/** The live client of a started Discord adapter. */
export interface DiscordLive {
  readonly lib: DiscordLib;
  readonly client: DiscordJs.Client<true>;
}

/** A platform adapter that holds a live Discord client. */
export interface DiscordPlatform extends PlatformAdapter {
  readonly platform: "discord";
  /** The live client; throws when the adapter is not started. */
  discord(): DiscordLive;
}

export function isDiscordPlatform(adapter: PlatformAdapter | null | undefined): adapter is DiscordPlatform {
  return adapter?.platform === "discord" && adapter.ownsPlatformClient === true && typeof (adapter as Partial<DiscordPlatform>).discord === "function";
}

/** The live Discord client a tool runs on, or a clear refusal where there is none (another platform, another tier). */
export function discordOf(ctx: ToolContext, tool: string): DiscordLive {
  if (isDiscordPlatform(ctx.adapter)) return ctx.adapter.discord();
  const where = ctx.adapter?.platform ? `the ${ctx.adapter.platform} chat` : "no chat platform";
  throw new ToolfleetError(
    "PLATFORM_REQUIRED",
    `${tool} needs a gateway running the Discord adapter (toolfleet gateway --adapter discord); this call ran on ${where}, so nothing was done on Discord`,
  );
}

/** "AddReactions" → "Add Reactions": Discord's own names for permissions, as its client shows them. */
export function permissionName(flag: string): string {
  return flag.replace(/([a-z])([A-Z])/g, "$1 $2");
}

/**
 * Refuses before calling Discord when the bot's permissions in the channel,
 * as the gateway's cache knows them, lack any of `needed`. A DM, or a
 * channel not in the cache, is left to Discord (its 403 is mapped by `discordFailure`).
 */
export function requirePermissions(live: DiscordLive, channelId: string, needed: readonly (keyof typeof DiscordJs.PermissionFlagsBits)[], tool: string): void {
  const channel = live.client.channels.cache.get(channelId);
  if (!channel || channel.isDMBased()) return;
  const me = channel.guild.members.me;
  if (!me) return;
  const missing = channel.permissionsFor(me).missing([...needed]);
  if (missing.length === 0) return;
  const names = missing.map(permissionName).join(", ");
  throw new ToolfleetError(
    "PLATFORM_REFUSED",
    `${tool}: the bot lacks the Discord permission${missing.length > 1 ? "s" : ""} ${names} in channel ${channelId}; a server admin can grant ${missing.length > 1 ? "them" : "it"} to the bot's role`,
  );
}

// Discord's JSON error codes (docs: "JSON Error Codes") a user can act on, in words.
const KNOWN: Readonly<Record<number, string>> = {
  10003: "no such channel",
  10004: "no such server",
  10008: "no such message",
  10013: "no such user",
  10014: "no such emoji",
  50001: "the bot has no access to that channel",
  50005: "the bot can only edit its own messages",
  50007: "Discord does not let the bot message that user (DMs closed, or no shared server)",
  50013: "the bot lacks a Discord permission this needs; a server admin can grant it to the bot's role",
  50035: "Discord refused the request's contents as invalid",
};

/** A Discord API error as a ToolfleetError whose message says what happened; anything else passes through. */
export function discordFailure(err: unknown, tool: string): unknown {
  const e = err as { name?: unknown; code?: unknown; status?: unknown; message?: unknown };
  if (typeof e?.status !== "number" || typeof e.name !== "string" || !e.name.startsWith("DiscordAPIError")) return err;
  const said = typeof e.code === "number" ? KNOWN[e.code] : undefined;
  return new ToolfleetError(
    e.status === 403 || e.status === 404 ? "PLATFORM_REFUSED" : "INTERNAL",
    `${tool}: ${said ?? `Discord answered ${e.status}: ${typeof e.message === "string" ? e.message : "an error"}`}`,
    { cause: err },
  );
}

/** Runs one Discord operation of a tool, its Discord errors told in words. */
export async function onDiscord<T>(tool: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw discordFailure(err, tool);
  }
}
