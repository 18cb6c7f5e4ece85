import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { z } from "zod";
import { parseJson } from "../core/json.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";

/**
 * The authenticated identity of a request, written by the caller under the
 * trace id before it publishes. The tools service takes identity from here,
 * never from the request envelope.
 *
 * Records are content-addressed: the key names the trace id and a hash of the
 * record (`<ns>:tool_session:<traceId>:<tag>`), so what a key holds never
 * changes. Two users' calls under one trace id get two records instead of
 * overwriting each other, and a worker may keep a record it has read for as
 * long as Redis would (`SessionCache`): the calls of one chat turn cost one
 * session write and one session read between them.
 */
export interface SessionIdentity {
  userId: string;
  guildId: string;
  channelId: string;
  platform: string;
}

/** A session record as written: its JSON and the tag that names it. */
export interface SessionRecord {
  json: string;
  tag: string;
}

const record = z.object({
  user_id: z.string().max(200),
  guild_id: z.string().max(200),
  channel_id: z.string().max(200),
  platform: z.string().max(64),
});

/** Records kept per process, at most, by each cache here (least recently used go first). */
const CACHED_RECORDS = 10_000;

// The same few identities come back call after call: their tags (and, on a worker, their
// parsed identities) are remembered by content rather than hashed and parsed again.
const byContent = new LRUCache<string, { tag: string; identity?: SessionIdentity }>({ max: CACHED_RECORDS });

function tagOf(json: string): string {
  const known = byContent.get(json);
  if (known) return known.tag;
  const tag = createHash("sha256").update(json).digest("hex").slice(0, 16);
  byContent.set(json, { tag });
  return tag;
}

const identityJson = (identity: SessionIdentity): string =>
  JSON.stringify({ user_id: identity.userId, guild_id: identity.guildId, channel_id: identity.channelId, platform: identity.platform });

export function sessionRecord(identity: SessionIdentity): SessionRecord {
  const json = identityJson(identity);
  return { json, tag: tagOf(json) };
}

/** The SET command that writes a session record, to send in the same round trip as the request. */
export function sessionWriteArgs(keys: Keys, traceId: string, rec: SessionRecord, ttlSeconds: number): string[] {
  return ["SET", keys.toolSession(traceId, rec.tag), rec.json, "EX", String(Math.max(1, Math.ceil(ttlSeconds)))];
}

/** Writes a session record and returns its tag, which the request must carry. */
export async function writeSession(redis: RedisClient, keys: Keys, traceId: string, identity: SessionIdentity, ttlSeconds: number): Promise<string> {
  const rec = sessionRecord(identity);
  await redis.sendCommand(sessionWriteArgs(keys, traceId, rec, ttlSeconds));
  return rec.tag;
}

export type SessionLookup = { ok: true; identity: SessionIdentity } | { ok: false; reason: string };

/** Reads a session record; a missing, expired or malformed one is a refusal with its reason. */
export async function readSession(redis: RedisClient, keys: Keys, traceId: string, tag: string): Promise<SessionLookup> {
  return parseSession(await redis.get(keys.toolSession(traceId, tag)), traceId, tag);
}

/**
 * The GET that reads the session record at `key` (`keys.toolSession`), and the
 * PTTL that says how long it may be kept when it is to be kept, to send in a
 * round trip with other commands; their replies go to `parseSession` and
 * `SessionCache.keep`.
 */
export function sessionReadArgs(key: string, toKeep: boolean): string[][] {
  return toKeep
    ? [
        ["GET", key],
        ["PTTL", key],
      ]
    : [["GET", key]];
}

export function parseSession(raw: string | null, traceId: string, tag: string): SessionLookup {
  if (raw === null) return { ok: false, reason: `no session record for trace '${traceId}' (missing or expired)` };
  // Whoever could write the key could write anything there; a record that is not what its key names is not trusted.
  if (tagOf(raw) !== tag) return { ok: false, reason: `the session record for trace '${traceId}' does not match its key` };
  const seen = byContent.get(raw)?.identity;
  if (seen) return { ok: true, identity: seen };
  const parsed = parseJson(record, raw);
  // The reason names the field; the raw value may hold anything and is not echoed.
  if (!parsed.ok) return { ok: false, reason: `the session record for trace '${traceId}' is malformed (${parsed.reason})` };
  const r = parsed.value;
  const identity = Object.freeze({ userId: r.user_id, guildId: r.guild_id, channelId: r.channel_id, platform: r.platform });
  byContent.set(raw, { tag, identity });
  return { ok: true, identity };
}

/**
 * Session records a tools worker has read, kept until the moment Redis would
 * expire them. Safe because a record's key names its content: a key never
 * holds another identity, so a kept record is what a read would return until
 * it expires. (A record deleted by hand before its expiry stays usable here
 * until then.)
 */
export class SessionCache {
  private readonly kept = new LRUCache<string, SessionIdentity>({ max: CACHED_RECORDS });

  get(key: string): SessionIdentity | undefined {
    return this.kept.get(key);
  }

  /** Keeps a record read with `sessionReadArgs`, for the `PTTL` it had (none when it has no expiry). */
  keep(key: string, identity: SessionIdentity, pttl: unknown): void {
    if (typeof pttl === "number" && pttl > 0) this.kept.set(key, identity, { ttl: pttl });
  }
}

/**
 * The session records a caller has written and how long each lives, so the
 * calls of one trace write it once: a new call writes it again only when it
 * would outlive it, or names another identity.
 */
export class WrittenSessions {
  private readonly written = new LRUCache<string, { rec: SessionRecord; identity: SessionIdentity; until: number }>({ max: CACHED_RECORDS });

  /** The record of this identity under this trace, and whether a call that needs it `forMs` more must write it. */
  plan(traceId: string, identity: SessionIdentity, forMs: number): { rec: SessionRecord; write: boolean } {
    const known = this.written.get(traceId);
    // Fields compared, not the record's JSON: every call of a turn comes here, and building the
    // JSON to compare cost more than the rest of planning (docs/benchmarks.md).
    if (known === undefined || !sameIdentity(known.identity, identity)) return { rec: sessionRecord(identity), write: true };
    return { rec: known.rec, write: known.until - performance.now() < forMs };
  }

  wrote(traceId: string, identity: SessionIdentity, rec: SessionRecord, ttlSeconds: number): void {
    const { userId, guildId, channelId, platform } = identity;
    // A second short of the TTL Redis was given: the command's own travel time is not counted there.
    const until = performance.now() + Math.max(1, ttlSeconds * 1000 - 1000);
    this.written.set(traceId, { rec, identity: { userId, guildId, channelId, platform }, until });
  }

  forget(traceId: string): void {
    this.written.delete(traceId);
  }

  /** After a reconnect: Redis may have restarted empty. */
  clear(): void {
    this.written.clear();
  }
}

function sameIdentity(a: SessionIdentity, b: SessionIdentity): boolean {
  return a.userId === b.userId && a.guildId === b.guildId && a.channelId === b.channelId && a.platform === b.platform;
}
