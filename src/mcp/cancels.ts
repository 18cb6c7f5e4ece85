import { errorFields, type Logger } from "../core/log.js";
import { within } from "../core/within.js";
import { duplicateConnection, type RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import type { McpCaller } from "./server.js";

/** Longest cancel notice relayed (a session id, a request id and a short reason). */
const MAX_NOTICE = 2000;

/**
 * `notifications/cancelled` across replicas (docs/mcp.md, "Scaling out"): the POST that carries it
 * may reach another replica than the one running the call, so every replica publishes the notice
 * on a Redis channel and aborts the matching call it runs, if any. A session id is bound to its
 * user (src/mcp/auth.ts), so a notice names calls of that user only.
 */
export class CancelRelay {
  private readonly running = new Map<string, AbortController>();
  private subscriber: RedisClient | undefined;

  constructor(private readonly options: { redis: RedisClient; redisUrl: string; keys: Keys; logger: Logger }) {}

  async start(): Promise<void> {
    const { redis, redisUrl, keys, logger } = this.options;
    const subscriber = await duplicateConnection(redis, { url: redisUrl, logger, name: "mcp-cancels" });
    try {
      await subscriber.subscribe(keys.mcpCancel, (message) => this.heard(message));
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
    try {
      if (subscriber.isReady) await within(subscriber.unsubscribe(this.options.keys.mcpCancel), 1000, "unsubscribing from MCP cancels");
    } catch (err) {
      this.options.logger.debug({ ...errorFields(err) }, "could not unsubscribe from MCP cancels; closing anyway");
    } finally {
      subscriber.destroy();
    }
  }

  /** A call's signal: the client's (its connection), or a notice from any replica. */
  track(caller: McpCaller, requestId: string | number, signal: AbortSignal): { signal: AbortSignal; done: () => void } {
    const key = keyOf(caller, requestId);
    const controller = new AbortController();
    this.running.set(key, controller);
    return {
      signal: AbortSignal.any([signal, controller.signal]),
      done: () => {
        if (this.running.get(key) === controller) this.running.delete(key);
      },
    };
  }

  /** Tells every replica (this one too) that the client cancelled `requestId`. */
  async cancel(caller: McpCaller, requestId: string | number, reason: string): Promise<void> {
    const notice = JSON.stringify({ key: keyOf(caller, requestId), reason: reason.slice(0, 500) });
    await this.options.redis.publish(this.options.keys.mcpCancel, notice);
  }

  private heard(message: string): void {
    if (message.length > MAX_NOTICE) return;
    let notice: { key?: unknown; reason?: unknown };
    try {
      notice = JSON.parse(message) as { key?: unknown; reason?: unknown };
    } catch {
      this.options.logger.warn({ length: message.length }, "an MCP cancel notice that is not JSON was ignored");
      return;
    }
    if (typeof notice.key !== "string") return;
    const controller = this.running.get(notice.key);
    if (!controller) return; // another replica runs it, or it has ended
    const reason = typeof notice.reason === "string" && notice.reason !== "" ? notice.reason : "cancelled by the MCP client";
    controller.abort(new Error(reason));
  }
}

function keyOf(caller: McpCaller, requestId: string | number): string {
  // Without a session (a client that sends none), the user's own calls: request ids are the client's.
  return `${caller.session ?? `user:${caller.user}`}\u0000${typeof requestId}:${String(requestId)}`;
}
