import { z } from "zod";
import { parseJson } from "../core/json.js";
import type { RedisClient } from "./client.js";
import type { Keys } from "./keys.js";

/**
 * The authenticated identity of a request, written by the caller under the
 * trace id before it publishes. The tools service takes identity from here,
 * never from the request envelope.
 */
export interface SessionIdentity {
  userId: string;
  guildId: string;
  channelId: string;
  platform: string;
}

const record = z.object({
  user_id: z.string().max(200),
  guild_id: z.string().max(200),
  channel_id: z.string().max(200),
  platform: z.string().max(64),
});

/** The SET command that writes a session record, to send in the same round trip as the request. */
export function sessionWriteArgs(keys: Keys, traceId: string, identity: SessionIdentity, ttlSeconds: number): string[] {
  const value = JSON.stringify({ user_id: identity.userId, guild_id: identity.guildId, channel_id: identity.channelId, platform: identity.platform });
  return ["SET", keys.toolSession(traceId), value, "EX", String(Math.max(1, Math.ceil(ttlSeconds)))];
}

export async function writeSession(redis: RedisClient, keys: Keys, traceId: string, identity: SessionIdentity, ttlSeconds: number): Promise<void> {
  await redis.sendCommand(sessionWriteArgs(keys, traceId, identity, ttlSeconds));
}

export type SessionLookup = { ok: true; identity: SessionIdentity } | { ok: false; reason: string };

/** Reads a session record; a missing, expired or malformed one is a refusal with its reason. */
export async function readSession(redis: RedisClient, keys: Keys, traceId: string): Promise<SessionLookup> {
  return parseSession(await redis.get(keys.toolSession(traceId)), traceId);
}

/** The GET that reads a session record, to send in a round trip with other commands; its reply goes to `parseSession`. */
export function sessionReadArgs(keys: Keys, traceId: string): string[] {
  return ["GET", keys.toolSession(traceId)];
}

export function parseSession(raw: string | null, traceId: string): SessionLookup {
  if (raw === null) return { ok: false, reason: `no session record for trace '${traceId}' (missing or expired)` };
  const parsed = parseJson(record, raw);
  // The reason names the field; the raw value may hold anything and is not echoed.
  if (!parsed.ok) return { ok: false, reason: `the session record for trace '${traceId}' is malformed (${parsed.reason})` };
  const r = parsed.value;
  return { ok: true, identity: { userId: r.user_id, guildId: r.guild_id, channelId: r.channel_id, platform: r.platform } };
}
