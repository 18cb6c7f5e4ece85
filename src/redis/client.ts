import { createClient, RESP_TYPES, type RedisClientType } from "redis";
import { redactRedisUrl } from "../config/schema.js";
import { errorFields, type Logger } from "../core/log.js";

/**
 * node-redis, Redis's own client (see docs/redis-client.md for the
 * measurement behind the choice). Only src/redis/ talks to it.
 */
export type RedisClient = RedisClientType;

/** Reply bulk strings as Buffers: stream values may be file bytes. */
export const AS_BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;

export interface ConnectOptions {
  url: string;
  logger: Logger;
  /** Shown in CLIENT LIST, so an operator can tell the connections apart. */
  name?: string;
}

// Redis coming back should be noticed within a fraction of a second: the
// backoff starts at 50 ms and stays under 500 ms, with jitter so a fleet of
// workers does not reconnect in lockstep.
function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** retries, 500) + Math.floor(Math.random() * 50);
}

/** Opens a connection that reconnects by itself and logs (never throws) its socket errors. */
export async function connectRedis(options: ConnectOptions): Promise<RedisClient> {
  const client: RedisClient = createClient({
    url: options.url,
    ...(options.name ? { name: options.name } : {}),
    socket: { reconnectStrategy: reconnectDelay, connectTimeout: 5000 },
    // No per-command timeout: node-redis makes it with an AbortSignal.timeout() for every
    // command, which costs more than the rest of a call's client work (docs/benchmarks.md).
    // Every wait is bounded by toolfleet itself: call deadlines, the read watchdog, commit retries.
    commandOptions: { timeout: 0 },
  });
  watchErrors(client, options);
  await client.connect();
  return client;
}

/** A second connection with the same settings, for a blocking reader or a subscriber. */
export async function duplicateConnection(client: RedisClient, options: ConnectOptions): Promise<RedisClient> {
  const copy = client.duplicate(options.name ? { name: options.name } : {});
  watchErrors(copy, options);
  await copy.connect();
  return copy;
}

function watchErrors(client: RedisClient, options: ConnectOptions): void {
  const where = { redis: redactRedisUrl(options.url), connection: options.name ?? "toolfleet" };
  let down = false;
  // node-redis emits 'error' on every failed reconnect attempt; one line per
  // outage (and one when it ends) says all there is to say.
  client.on("error", (err: unknown) => {
    if (down) return;
    down = true;
    options.logger.warn({ ...where, ...errorFields(err) }, "redis connection lost; reconnecting");
  });
  client.on("ready", () => {
    if (!down) return;
    down = false;
    options.logger.info(where, "redis connection restored");
  });
}

/** Closes a connection, waiting for replies already on the way; a dead one is torn down. */
export async function closeRedis(client: RedisClient | undefined): Promise<void> {
  if (!client?.isOpen) return;
  if (!client.isReady) {
    client.destroy();
    return;
  }
  await client.close();
}

/** Whether Redis answers a PING at `url` within `timeoutMs`: null when it does, else why not (no retries). */
export async function probeRedis(url: string, timeoutMs = 1500): Promise<string | null> {
  const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: timeoutMs } });
  // The reason is returned below; the event would otherwise be an unhandled 'error'.
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.ping();
    return null;
  } catch (err) {
    return err instanceof Error ? err.message || err.constructor.name : String(err);
  } finally {
    if (client.isOpen) client.destroy();
  }
}
