import { ToolfleetError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { within } from "../core/within.js";
import { closeSubscriber, duplicateConnection, type RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";

/** What one `toolfleet mcp` replica tells the others: a client cancelled calls (one request's), a session set its log level. */
export type McpNotice = { kind: "cancel"; calls: { key: string; reason: string }[] } | { kind: "level"; session: string; level: string | null };

/** Longest notice read: the cancels of one request (at most the SDK's batch of 100, each a key and a short reason). */
const MAX_NOTICE = 100_000;
/** How long a request waits for Redis (a publish, a log level) before it is answered with an error. */
export const REDIS_WAIT_MS = 5000;

/** `work` on Redis for a request, at most REDIS_WAIT_MS: past that (or on its failure), REDIS_UNAVAILABLE naming `what`. */
export async function fromRedis<T>(work: Promise<T>, what: string): Promise<T> {
  try {
    return await within(work, REDIS_WAIT_MS, what);
  } catch (err) {
    throw new ToolfleetError("REDIS_UNAVAILABLE", `${what}: Redis did not answer (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
}

/**
 * The replicas' channel (`<ns>:mcp:notices`, docs/mcp.md "Scaling out"): every replica publishes what
 * the others must know and hears what they publish (itself included). Its own connection: a
 * subscribed connection can do nothing else.
 */
export class McpNotices {
  private subscriber: RedisClient | undefined;
  private readonly handlers: ((notice: McpNotice) => void)[] = [];

  constructor(private readonly options: { redis: RedisClient; redisUrl: string; keys: Keys; logger: Logger }) {}

  /** Hears every notice from now on (set before start()). */
  listen(handler: (notice: McpNotice) => void): void {
    this.handlers.push(handler);
  }

  async start(): Promise<void> {
    const { redis, redisUrl, keys, logger } = this.options;
    const subscriber = await duplicateConnection(redis, { url: redisUrl, logger, name: "mcp-notices" });
    try {
      await subscriber.subscribe(keys.mcpNotices, (message) => this.heard(message));
    } catch (err) {
      subscriber.destroy();
      throw err;
    }
    this.subscriber = subscriber;
  }

  async stop(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (!subscriber) return;
    await closeSubscriber(subscriber, this.options.keys.mcpNotices, "MCP notices", this.options.logger);
  }

  async publish(notice: McpNotice): Promise<void> {
    await fromRedis(this.options.redis.sendCommand(["PUBLISH", this.options.keys.mcpNotices, JSON.stringify(notice)]), "publishing an MCP notice");
  }

  private heard(message: string): void {
    const notice = parseNotice(message);
    if (!notice) {
      this.options.logger.warn({ length: message.length }, "an MCP notice that is not one was ignored");
      return;
    }
    for (const handler of this.handlers) handler(notice);
  }
}

/** A notice from the channel, checked; null for anything else. */
export function parseNotice(message: string): McpNotice | null {
  if (message.length > MAX_NOTICE) return null;
  let n: Record<string, unknown>;
  try {
    n = JSON.parse(message) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (n.kind === "cancel" && Array.isArray(n.calls)) {
    const calls = (n.calls as unknown[]).filter(
      (c): c is { key: string; reason: string } => typeof (c as { key?: unknown })?.key === "string" && typeof (c as { reason?: unknown }).reason === "string",
    );
    return calls.length === n.calls.length ? { kind: "cancel", calls: calls.map(({ key, reason }) => ({ key, reason })) } : null;
  }
  if (n.kind === "level" && typeof n.session === "string" && (typeof n.level === "string" || n.level === null))
    return { kind: "level", session: n.session, level: n.level };
  return null;
}
