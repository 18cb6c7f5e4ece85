import { LRUCache } from "lru-cache";
import { LoggingLevelSchema, type LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import type { McpNotices } from "./notices.js";

/** How long logging/setLevel is remembered for a session that sends nothing more. */
const LEVEL_TTL_SECONDS = 24 * 3600;
/** Sessions whose level one replica remembers; and how long it trusts what it read without hearing a notice. */
const CACHED_SESSIONS = 10_000;
const CACHE_MS = 60_000;

/**
 * Each session's log level (`logging/setLevel`), for every replica: kept in Redis with a TTL, told to
 * the other replicas as it changes (so their copies follow at once), and read from Redis by a
 * replica that has no copy. A session with no level gets no log messages: its tool calls are
 * answered in JSON, which costs less than a stream (docs/mcp.md, "Scaling out").
 */
export class SessionLogLevels {
  private readonly known = new LRUCache<string, { level: LoggingLevel | null }>({ max: CACHED_SESSIONS, ttl: CACHE_MS });

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly notices: McpNotices,
  ) {
    notices.listen((notice) => {
      if (notice.kind !== "level") return;
      const parsed = LoggingLevelSchema.safeParse(notice.level);
      this.known.set(notice.session, { level: parsed.success ? parsed.data : null });
    });
  }

  /** The session's level; undefined when it set none. */
  async get(session: string): Promise<LoggingLevel | undefined> {
    const known = this.known.get(session);
    if (known) return known.level ?? undefined;
    const parsed = LoggingLevelSchema.safeParse(await this.redis.get(this.keys.mcpLogLevel(session)));
    const level = parsed.success ? parsed.data : null;
    this.known.set(session, { level });
    return level ?? undefined;
  }

  async set(session: string, level: LoggingLevel): Promise<void> {
    this.known.set(session, { level });
    await this.redis.set(this.keys.mcpLogLevel(session), level, { expiration: { type: "EX", value: LEVEL_TTL_SECONDS } });
    await this.notices.publish({ kind: "level", session, level });
  }

  /** The session ended (HTTP DELETE). */
  async drop(session: string): Promise<void> {
    this.known.set(session, { level: null });
    await this.redis.del(this.keys.mcpLogLevel(session));
    await this.notices.publish({ kind: "level", session, level: null });
  }
}
