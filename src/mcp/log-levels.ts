import { LRUCache } from "lru-cache";
import { LoggingLevelSchema, type LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { fromRedis, type McpNotices } from "./notices.js";

/** How long logging/setLevel is remembered for a session that sends nothing more. */
const LEVEL_TTL_SECONDS = 24 * 3600;
/** Sessions whose level one replica remembers; and how long it trusts what it read without hearing a notice. */
const CACHED_SESSIONS = 10_000;
const CACHE_MS = 60_000;

/** What the session's key holds once the session is ended (an HTTP DELETE). */
const ENDED = "ended";

function stateOf(value: string | null): { level: LoggingLevel | null; ended?: true } {
  if (value === ENDED) return { level: null, ended: true };
  const parsed = LoggingLevelSchema.safeParse(value);
  return { level: parsed.success ? parsed.data : null };
}

/**
 * Each session's log level (`logging/setLevel`), for every replica: kept in Redis with a TTL, told to
 * the other replicas as it changes (so their copies follow at once), and read from Redis by a
 * replica that has no copy. A session with no level gets no log messages: its tool calls are
 * answered in JSON, which costs less than a stream (docs/mcp.md, "Scaling out"). The same key marks
 * a session ended (DELETE), for as long as the key lives: past that, its id would be served again.
 */
export class SessionLogLevels {
  private readonly known = new LRUCache<string, { level: LoggingLevel | null; ended?: true }>({ max: CACHED_SESSIONS, ttl: CACHE_MS });

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly notices: McpNotices,
  ) {
    notices.listen((notice) => {
      if (notice.kind !== "level") return;
      this.known.set(notice.session, stateOf(notice.level));
    });
  }

  /** The session's level; undefined when it set none. Read from Redis (at most REDIS_WAIT_MS) when this replica has no copy. */
  async get(session: string): Promise<LoggingLevel | undefined> {
    return (await this.state(session)).level ?? undefined;
  }

  /** Whether the session was ended (DELETE), on any replica. */
  async ended(session: string): Promise<boolean> {
    return (await this.state(session)).ended === true;
  }

  /** A session just made: nothing to read. */
  fresh(session: string): void {
    this.known.set(session, { level: null });
  }

  private async state(session: string): Promise<{ level: LoggingLevel | null; ended?: true }> {
    const known = this.known.get(session);
    if (known) return known;
    // GETEX: a session in use keeps its level (or its end) for another LEVEL_TTL_SECONDS.
    const key = this.keys.mcpLogLevel(session);
    const state = stateOf(
      await fromRedis(this.redis.sendCommand<string | null>(["GETEX", key, "EX", String(LEVEL_TTL_SECONDS)]), "reading the MCP session's state"),
    );
    this.known.set(session, state);
    return state;
  }

  async set(session: string, level: LoggingLevel): Promise<void> {
    // Kept here once Redis has it (so a replica never acts on what the others cannot read), then told to them.
    const key = this.keys.mcpLogLevel(session);
    await fromRedis(this.redis.set(key, level, { expiration: { type: "EX", value: LEVEL_TTL_SECONDS } }), "keeping the session's log level");
    this.known.set(session, { level });
    await this.notices.publish({ kind: "level", session, level });
  }

  /** The session ended (HTTP DELETE): its id is refused on every replica from now on (for LEVEL_TTL_SECONDS). */
  async end(session: string): Promise<void> {
    const key = this.keys.mcpLogLevel(session);
    await fromRedis(this.redis.set(key, ENDED, { expiration: { type: "EX", value: LEVEL_TTL_SECONDS } }), "ending the MCP session");
    this.known.set(session, { level: null, ended: true });
    await this.notices.publish({ kind: "level", session, level: ENDED });
  }
}
