import { LRUCache } from "lru-cache";
import { z } from "zod";
import type { CallSignal } from "../core/context.js";
import { parseJson } from "../core/json.js";
import { MAX_REASON } from "../core/errors.js";
import { errorFields, type Logger } from "../core/log.js";
import { within } from "../core/within.js";
import { duplicateConnection, type RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { cancelledArgs } from "./idempotency.js";

/**
 * Cancelling a request across processes (docs/protocol.md §5.6). The caller,
 * in one round trip: claims the request's idempotency key as cancelled (a
 * request nobody has claimed yet then never runs), sets the cancel mark, and
 * publishes the idempotency key on the control channel. Every tools and
 * gateway worker of the namespace hears it (a request not yet started has no
 * worker yet); the one running it aborts the handler's `ctx.signal`. A lost
 * message (pub/sub keeps nothing for a connection that is down) is caught by
 * the mark, which each worker checks for its running calls at every lease tick.
 */

/** Cancels heard for requests this worker has not started, remembered this long (longer than any wait in a stream). */
const REMEMBER_MS = 10 * 60_000;

const message = z.object({ idem_key: z.string().min(1).max(257), reason: z.string().max(MAX_REASON) });

/** The caller's side: marks the request cancelled and tells the workers. `ttlSeconds` must outlive the request's deadline. */
export async function cancelRunning(redis: RedisClient, keys: Keys, idemKey: string, reason: string, ttlSeconds: number): Promise<void> {
  const ttl = String(Math.max(1, Math.ceil(ttlSeconds)));
  await redis
    .multi()
    .addCommand(cancelledArgs(keys, idemKey, ttlSeconds))
    .addCommand(["SET", keys.cancelMark(idemKey), reason, "EX", ttl])
    .addCommand(["PUBLISH", keys.toolsControl, JSON.stringify({ idem_key: idemKey, reason })])
    .execAsPipeline();
}

/**
 * A worker's calls that can be cancelled, by idempotency key, and the cancels
 * it heard for requests it has not started (so they never start).
 */
export class RunningCalls {
  private readonly running = new Map<string, CallSignal>();
  private readonly heard = new LRUCache<string, string>({ max: 10_000, ttl: REMEMBER_MS });

  get size(): number {
    return this.running.size;
  }

  /** The reason a request was cancelled before it started here, if it was. */
  cancelledBefore(idemKey: string): string | undefined {
    return this.heard.get(idemKey);
  }

  begin(idemKey: string, call: CallSignal): void {
    this.running.set(idemKey, call);
  }

  end(idemKey: string): void {
    this.running.delete(idemKey);
  }

  /** Aborts the call when it runs here; otherwise remembers the cancel for when it comes. True when it ran here. */
  cancel(idemKey: string, reason: string): boolean {
    const call = this.running.get(idemKey);
    if (!call) {
      this.heard.set(idemKey, reason);
      return false;
    }
    call.abort(new Error(`cancelled by the caller: ${reason}`));
    return true;
  }

  /** The running calls' idempotency keys, for the lease tick's check of their marks. */
  keys(): string[] {
    return [...this.running.keys()];
  }
}

/** The worker's side: its own subscribed connection to the control channel. */
export class ControlListener {
  private subscriber: RedisClient | undefined;

  constructor(
    private readonly options: {
      redis: RedisClient;
      url: string;
      keys: Keys;
      logger: Logger;
      name: string;
      onCancel: (idemKey: string, reason: string) => void;
    },
  ) {}

  async start(): Promise<void> {
    if (this.subscriber) return;
    const { redis, url, logger, name, keys } = this.options;
    const subscriber = await duplicateConnection(redis, { url, logger, name: `${name}-control` });
    try {
      await subscriber.subscribe(keys.toolsControl, (raw) => this.heard(raw));
    } catch (err) {
      subscriber.destroy();
      throw err;
    }
    this.subscriber = subscriber;
  }

  private heard(raw: string): void {
    const parsed = parseJson(message, raw);
    if (!parsed.ok) {
      this.options.logger.warn({ reason: parsed.reason }, "malformed control message dropped");
      return;
    }
    this.options.onCancel(parsed.value.idem_key, parsed.value.reason);
  }

  async stop(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (!subscriber) return;
    try {
      // Bounded: a Redis that stops answering must not hold stop() up; the connection goes either way.
      if (subscriber.isReady) await within(subscriber.unsubscribe(this.options.keys.toolsControl), 1000, "unsubscribing from the control channel");
    } catch (err) {
      this.options.logger.warn({ ...errorFields(err) }, "could not unsubscribe from the control channel; closing the connection anyway");
    } finally {
      subscriber.destroy();
    }
  }
}
