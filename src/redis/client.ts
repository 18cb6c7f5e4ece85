import { setTimeout as sleep } from "node:timers/promises";
import { createClient, RESP_TYPES } from "redis";
import { redactRedisUrl } from "../config/schema.js";
import { ToolfleetError, isToolfleetError } from "../core/errors.js";
import { errorFields, type Logger } from "../core/log.js";
import { within } from "../core/within.js";
import { ClusterConnection, clusterConnection } from "./cluster.js";
import type { RedisClient, RedisNode } from "./port.js";

/**
 * node-redis, Redis's own client (see docs/redis-client.md for the
 * measurement behind the choice), one node's or a cluster's behind one
 * narrow port (src/redis/port.ts). Only src/redis/ talks to node-redis.
 */
export type { RedisBatch, RedisClient, RedisNode } from "./port.js";

/** Reply bulk strings as Buffers: stream values may be file bytes. */
export const AS_BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;

/**
 * What a connection does while Redis does not answer its first connect:
 * - `false`: give up after that one attempt (each is bounded by the connect
 *   timeout) with a `REDIS_UNAVAILABLE` error naming the URL: for one-shot
 *   commands, which must end rather than hang;
 * - `{ logEveryMs }`: keep trying, and say so in a log line at once and then
 *   every `logEveryMs` until Redis answers: for long-running workers, which
 *   carry on by themselves once Redis comes.
 * Either way, once connected, a lost connection is reconnected (calls in
 * flight are bounded by their own deadlines).
 */
export type WaitForRedis = false | { logEveryMs?: number };

/** How often a connection waiting for Redis says so, by default. */
export const WAIT_LOG_EVERY_MS = 5000;

export interface ConnectOptions {
  url: string;
  logger: Logger;
  /** Shown in CLIENT LIST, so an operator can tell the connections apart. */
  name?: string;
  /** @defaultValue `{ logEveryMs: 5000 }`: wait for Redis, saying so every 5 s */
  waitForRedis?: WaitForRedis;
  /** One connect attempt's limit, in ms. @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** Aborting it ends a wait for Redis: connect() rejects with `STOPPED` and nothing stays open. */
  signal?: AbortSignal;
}

// Redis coming back should be noticed within a fraction of a second: the
// backoff starts at 50 ms and stays under 500 ms, with jitter so a fleet of
// workers does not reconnect in lockstep.
function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** retries, 500) + Math.floor(Math.random() * 50);
}

/** Why a connect attempt failed, in a few words (no stack: a refused connection is not a bug). */
function reasonOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return reasonOf(err.errors[0]);
  return err instanceof Error ? err.message || err.constructor.name : String(err);
}

/**
 * Opens a connection that reconnects by itself once connected and logs
 * (never throws) its socket errors. Until the first connect, it behaves as
 * `waitForRedis` says.
 */
export async function connectRedis(options: ConnectOptions): Promise<RedisNode> {
  const wait = options.waitForRedis ?? {};
  let connected = false;
  const client: RedisNode = createClient({
    url: options.url,
    ...(options.name ? { name: options.name } : {}),
    socket: {
      // Returning an Error ends the first connect with that error (node-redis's contract for the strategy).
      reconnectStrategy: (retries: number, cause: Error) => (connected || wait !== false ? reconnectDelay(retries) : cause),
      connectTimeout: options.connectTimeoutMs ?? 5000,
    },
    // No per-command timeout: node-redis makes it with an AbortSignal.timeout() for every
    // command, which costs more than the rest of a call's client work (docs/benchmarks.md).
    // Every wait is bounded by toolfleet itself: call deadlines, the read watchdog, commit retries.
    commandOptions: { timeout: 0 },
  });
  const redacted = redactRedisUrl(options.url);
  // A one-shot's failed first connect is reported by the rejection below, not by a log line as well.
  watchErrors(client, options, wait === false ? null : (wait.logEveryMs ?? WAIT_LOG_EVERY_MS));
  try {
    await connectUnlessAborted(client, options.signal, `waiting for Redis at ${redacted}`);
    connected = true;
    return client;
  } catch (err) {
    if (isToolfleetError(err, "STOPPED")) throw err;
    throw new ToolfleetError(
      "REDIS_UNAVAILABLE",
      `Redis at ${redacted} does not answer (${reasonOf(err)}): start Redis there, or set TOOLFLEET_REDIS_URL to one that runs`,
      { cause: err },
    );
  }
}

/**
 * The fleet's connection: a Redis Cluster's client when `clusterNodes` names
 * any nodes (with the credentials and TLS of `url`), else one node's at `url`.
 */
export async function connectFleetRedis(options: ConnectOptions & { clusterNodes?: readonly string[] }): Promise<RedisClient> {
  const nodes = options.clusterNodes ?? [];
  if (nodes.length === 0) return connectRedis(options);
  const wait = options.waitForRedis ?? {};
  const where = `the Redis Cluster at ${nodes.join(", ")}`;
  const logEveryMs = wait === false ? null : (wait.logEveryMs ?? WAIT_LOG_EVERY_MS);
  let lastLine = 0;
  for (;;) {
    const cluster = clusterConnection({
      nodes,
      url: options.url,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      reconnectDelay,
      ...(options.name ? { name: options.name } : {}),
    });
    try {
      if (options.signal?.aborted) throw options.signal.reason;
      await cluster.connect();
      watchErrors(cluster, options, WAIT_LOG_EVERY_MS);
      // A listed node down while the others answer (a failover's old master, say): connected, and said so.
      if (cluster.connectFailures.size > 0)
        options.logger.warn(
          { redis: where, failed: [...cluster.connectFailures] },
          `connected to ${where} through the nodes that answer; some did not (${cluster.whyNot(undefined)})`,
        );
      return cluster;
    } catch (err) {
      cluster.destroy();
      if (options.signal?.aborted) throw new ToolfleetError("STOPPED", `stopped while waiting for ${where}`, { cause: err });
      const why = cluster.whyNot(err);
      // Refused credentials or commands do not get better by waiting.
      if (cluster.refused)
        throw new ToolfleetError(
          "REDIS_UNAVAILABLE",
          `${where} refuses this connection (${why}): check the user and password in TOOLFLEET_REDIS_URL; an ACL user needs +cluster|slots and +cluster|shards on a cluster (docs/security.md)`,
          { cause: err },
        );
      if (logEveryMs === null)
        throw new ToolfleetError("REDIS_UNAVAILABLE", `${where} does not answer (${why}): start it, or set TOOLFLEET_REDIS_CLUSTER_NODES to nodes that run`, {
          cause: err,
        });
      if (Date.now() - lastLine >= logEveryMs) {
        lastLine = Date.now();
        options.logger.warn({ redis: where, reason: why }, `waiting for ${where} (${why})`);
      }
      // The cluster client gives up a first connect at once; the wait is ours, cut short by the signal
      // (an aborted sleep rejects: the check at the top of the loop then ends the wait with STOPPED).
      await sleep(500, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
    }
  }
}

/** A second connection with the same settings, for a blocking reader or a subscriber. */
export async function duplicateConnection(client: RedisClient, options: ConnectOptions): Promise<RedisClient> {
  // Made once the first connection is up, so it reconnects (the strategy is the first one's) and says so.
  const wait = options.waitForRedis ?? {};
  const logEveryMs = wait === false ? WAIT_LOG_EVERY_MS : (wait.logEveryMs ?? WAIT_LOG_EVERY_MS);
  if (client instanceof ClusterConnection) {
    const copy = await client.duplicate(options.name);
    watchErrors(copy, options, logEveryMs);
    return copy;
  }
  const copy = (client as RedisNode).duplicate(options.name ? { name: options.name } : {});
  watchErrors(copy, options, logEveryMs);
  // It waits for Redis as the first one reconnects (for ever): aborting `signal` ends that wait, and
  // nothing is left retrying behind a stopped owner.
  await connectUnlessAborted(copy, options.signal, `opening a connection to ${redactRedisUrl(options.url)}`);
  return copy;
}

/**
 * Connects `client`; aborting `signal` ends the wait (the client destroyed, STOPPED naming `what`). A
 * failed connect destroys the client, so nothing is left retrying, and its error is rethrown.
 */
async function connectUnlessAborted(client: RedisNode, signal: AbortSignal | undefined, what: string): Promise<void> {
  const abort = (): void => client.destroy();
  signal?.addEventListener("abort", abort, { once: true });
  try {
    if (signal?.aborted) throw signal.reason;
    await client.connect();
  } catch (err) {
    client.destroy(); // idempotent: also disposes of a client whose connect gave up
    if (signal?.aborted) throw new ToolfleetError("STOPPED", `stopped while ${what}`, { cause: err });
    throw err;
  } finally {
    signal?.removeEventListener("abort", abort);
  }
}

/** Whether `client` talks to a Redis Cluster (keys of one command must then share a slot). */
export function isCluster(client: RedisClient): boolean {
  return client instanceof ClusterConnection;
}

/** Keys matching `pattern`, a batch at a time: on every master of a cluster (SCAN is per node). */
export function scanKeys(client: RedisClient, pattern: string): AsyncIterable<string[]> {
  if (client instanceof ClusterConnection) return client.scan(pattern);
  return (client as RedisNode).scanIterator({ MATCH: pattern, COUNT: 1000 });
}

/**
 * Logs the state of a connection without a flood: node-redis emits 'error' on
 * every failed attempt (several a second), so a wait for the first connect, or
 * an outage later, is one line when it starts, one every `logEveryMs` while it
 * lasts, and one when it ends. With `logEveryMs` null, nothing is logged
 * before the first connect.
 */
function watchErrors(client: RedisClient, options: ConnectOptions, logEveryMs: number | null): void {
  const redacted = client instanceof ClusterConnection ? "the Redis Cluster" : redactRedisUrl(options.url);
  const where = { redis: redacted, connection: options.name ?? "toolfleet" };
  // A cluster's connection is watched once it is up (its nodes' own events came before).
  let everUp = client.isReady;
  let downSince = 0;
  let lastLine = 0;
  client.on("error", (err: unknown) => {
    if (!everUp && logEveryMs === null) return;
    const now = Date.now();
    if (downSince === 0) {
      downSince = lastLine = now;
      if (everUp) options.logger.warn({ ...where, ...errorFields(err) }, "redis connection lost; reconnecting");
      else
        options.logger.warn(
          { ...where, reason: reasonOf(err) },
          `waiting for Redis at ${redacted} (${reasonOf(err)}); start it, or set TOOLFLEET_REDIS_URL to where it runs`,
        );
      return;
    }
    if (now - lastLine < (logEveryMs ?? WAIT_LOG_EVERY_MS)) return;
    lastLine = now;
    const seconds = Math.floor((now - downSince) / 1000);
    options.logger.warn(
      { ...where, reason: reasonOf(err), downMs: now - downSince },
      everUp ? `still reconnecting to Redis at ${redacted} (${seconds} s)` : `still waiting for Redis at ${redacted} (${seconds} s; ${reasonOf(err)})`,
    );
  });
  client.on("ready", () => {
    const first = !everUp;
    everUp = true;
    if (downSince === 0) return;
    const downMs = Date.now() - downSince;
    downSince = 0;
    if (first) options.logger.info({ ...where, waitedMs: downMs }, `Redis at ${redacted} answers; carrying on`);
    else options.logger.info({ ...where, downMs }, "redis connection restored");
  });
}

/** How long closing a connection waits for the replies already on the way. */
export const CLOSE_WAIT_MS = 2000;

/**
 * Closes a connection, waiting up to `waitMs` for replies already on the way; a dead one, or one whose
 * Redis does not answer them in that time (a stalled server), is torn down and those replies dropped.
 * Without the bound, node-redis's close() waits for them as long as Redis stays silent, and so would stop().
 */
export async function closeRedis(client: RedisClient | undefined, waitMs = CLOSE_WAIT_MS): Promise<void> {
  if (!client?.isOpen) return;
  if (!client.isReady) {
    client.destroy();
    return;
  }
  // close() resolves once the owed replies came, or once destroy() tore the connection down.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      client.destroy();
      resolve();
    }, waitMs);
  });
  try {
    await Promise.race([client.close(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Closes a pub/sub connection on the way out: unsubscribes from `channel` if it still can, within a second
 * (a Redis that stops answering must not hold stop() up), and destroys the connection either way.
 */
export async function closeSubscriber(subscriber: RedisClient, channel: string, what: string, logger: Logger): Promise<void> {
  try {
    if (subscriber.isReady) await within(subscriber.unsubscribe(channel), 1000, `unsubscribing from ${what}`);
  } catch (err) {
    logger.warn({ ...errorFields(err) }, `could not unsubscribe from ${what}; closing the connection anyway`);
  } finally {
    subscriber.destroy();
  }
}

/**
 * Whether the fleet's Redis answers within `timeoutMs`: null when it does, else why not. On a cluster,
 * any listed node answering a PING will do (a failover leaves a listed node down while the rest serve).
 */
export async function probeFleetRedis(url: string, clusterNodes: readonly string[], timeoutMs = 1500): Promise<string | null> {
  if (clusterNodes.length === 0) return probeRedis(url, timeoutMs);
  const reasons = await Promise.all(
    clusterNodes.map(async (node) => {
      const at = new URL(url);
      at.host = node;
      const down = await probeRedis(at.toString(), timeoutMs);
      return down === null ? null : `${node}: ${down}`;
    }),
  );
  return reasons.includes(null) ? null : reasons.join("; ");
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
