import { LRUCache } from "lru-cache";
import { z } from "zod";
import type { CallSignal } from "../core/context.js";
import { MAX_REASON } from "../core/errors.js";
import { parseJson } from "../core/json.js";
import type { Logger } from "../core/log.js";
import { closeSubscriber, duplicateConnection, type RedisClient } from "./client.js";
import type { Keys } from "./keys.js";

/**
 * Cancelling work another process runs (docs/protocol.md §9.5): a tool call on
 * a tools or gateway worker, or a chat message on an inference worker. The
 * canceller sets the cancel mark and publishes the id on the control channel,
 * in one round trip. Every worker of the namespace hears it (work not yet
 * started has no worker yet); the one running it aborts its signal. A lost
 * message (pub/sub keeps nothing for a connection that is down) is caught by
 * the mark, which each worker checks for its running work at every lease tick.
 */

/** Cancels heard for work this worker has not started, remembered this long (longer than any wait in a stream). */
const REMEMBER_MS = 10 * 60_000;

const message = z.object({ idem_key: z.string().min(1).max(257), reason: z.string().max(MAX_REASON) });

/** The mark and the announcement of a cancel, to send in one round trip (with whatever else the canceller needs). */
export function announceCancelArgs(keys: Keys, id: string, reason: string, ttlSeconds: number): string[][] {
  return [
    ["SET", keys.cancelMark(id), reason, "EX", String(Math.max(1, Math.ceil(ttlSeconds)))],
    ["PUBLISH", keys.toolsControl, JSON.stringify({ idem_key: id, reason })],
  ];
}

/**
 * A worker's work that can be cancelled, by id (a request's idempotency key, a
 * chat's id), and the cancels it heard for work it has not started (so it never starts).
 */
export class RunningCalls {
  private readonly running = new Map<string, CallSignal>();
  private readonly heard = new LRUCache<string, string>({ max: 10_000, ttl: REMEMBER_MS });

  /** The reason the work was cancelled before it started here, if it was. */
  cancelledBefore(id: string): string | undefined {
    return this.heard.get(id);
  }

  begin(id: string, call: CallSignal): void {
    this.running.set(id, call);
  }

  end(id: string): void {
    this.running.delete(id);
  }

  /** Aborts the work when it runs here; otherwise remembers the cancel for when it comes. True when it ran here. */
  cancel(id: string, reason: string): boolean {
    const call = this.running.get(id);
    if (!call) {
      this.heard.set(id, reason);
      return false;
    }
    call.abort(new Error(`cancelled by the caller: ${reason}`));
    return true;
  }

  /** The running work's ids, for the lease tick's check of their marks. */
  ids(): string[] {
    return [...this.running.keys()];
  }

  /** The lease tick's check: the MGET of the running work's marks, and what to do with its answer. Null with nothing running. */
  markCheck(keys: Keys): { args: string[]; apply(answer: unknown, onCancelled: (id: string, reason: string) => void): void } | null {
    const ids = this.ids();
    if (ids.length === 0) return null;
    return {
      args: ["MGET", ...ids.map((id) => keys.cancelMark(id))],
      apply: (answer, onCancelled) => {
        if (!Array.isArray(answer)) return;
        answer.forEach((reason, i) => {
          const id = ids[i];
          if (typeof reason === "string" && id !== undefined && this.cancel(id, reason)) onCancelled(id, reason);
        });
      },
    };
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
      onCancel: (id: string, reason: string) => void;
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
    await closeSubscriber(subscriber, this.options.keys.toolsControl, "the control channel", this.options.logger);
  }
}
