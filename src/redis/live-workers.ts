import { performance } from "node:perf_hooks";
import { errorFields, type Logger } from "../core/log.js";
import { within } from "../core/within.js";
import type { RedisClient } from "./client.js";
import { ID_PATTERN, type Keys } from "./keys.js";

/** How long "a live worker reads this stream" is believed before Redis is asked again. */
export const LIVE_TRUST_MS = 2000;
/** A heartbeat's TTL (StreamWorker: 3 × its 2 s interval): by then every live worker has written one. */
const HEARTBEAT_TTL_MS = 6000;
/** How long one question may take; past it the answer is "cannot tell". */
const ASK_LIMIT_MS = 1000;

export interface LiveWorkersOptions {
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
  /** @defaultValue LIVE_TRUST_MS */
  trustMs?: number;
}

/**
 * Whether a request stream has a live worker reading it, so a caller can fail
 * at once instead of publishing a request nobody will take and waiting out
 * its timeout.
 *
 * A worker is live while its heartbeat (`keys.heartbeat(service, consumer)`,
 * written by StreamWorker every 2 s with a 6 s TTL) exists. The workers are
 * found through the stream's consumer group, not by a SCAN of the keyspace:
 * `XINFO CONSUMERS` names them and one `EXISTS` counts their heartbeats (two
 * commands, whatever the size of the keyspace). A "yes" is believed for
 * `trustMs`, so a busy caller asks at most once per `trustMs` per stream; a
 * "no" is never kept: the next call asks again (concurrent calls share one
 * question), so a worker that has just started is seen at once. The cost of
 * the trust: a call within `trustMs` of the last worker leaving is still
 * published and waits out its timeout, as every call did before.
 *
 * `has()` answers `undefined` when it cannot tell (the connection is down,
 * Redis is slow, or refuses the command): the caller then publishes as usual,
 * and its own deadline applies.
 */
export class LiveWorkers {
  private readonly trustMs: number;
  /** Stream → when a live worker was last seen reading it (performance.now()). */
  private readonly seenLive = new Map<string, number>();
  private readonly asking = new Map<string, Promise<boolean | undefined>>();
  /** Stream → the last answer, so a change is logged once, not per call. */
  private readonly last = new Map<string, boolean>();
  private reconnectedAt = -Infinity;

  constructor(private readonly options: LiveWorkersOptions) {
    this.trustMs = options.trustMs ?? LIVE_TRUST_MS;
  }

  /** Whether a worker of `service` with a live heartbeat reads `stream`'s group; `undefined` when that cannot be told. */
  async has(stream: string, service: string): Promise<boolean | undefined> {
    const seen = this.seenLive.get(stream);
    if (seen !== undefined && performance.now() - seen < this.trustMs) return true;
    if (!this.options.redis.isReady) return undefined;
    let asking = this.asking.get(stream);
    if (!asking) {
      asking = this.ask(stream, service).finally(() => this.asking.delete(stream));
      this.asking.set(stream, asking);
    }
    return asking;
  }

  /**
   * Call when the connection is back after a loss. Redis may have restarted
   * empty: the workers' groups and heartbeats come back within a heartbeat
   * interval, so for one heartbeat TTL a "no" is taken as "cannot tell" and
   * calls are published as before (a worker then takes them).
   */
  reconnected(): void {
    this.seenLive.clear();
    this.reconnectedAt = performance.now();
  }

  private async ask(stream: string, service: string): Promise<boolean | undefined> {
    let live: boolean;
    try {
      live = (await within(this.countLive(stream, service), ASK_LIMIT_MS, `asking Redis who reads ${stream}`)) > 0;
    } catch (err) {
      this.options.logger.debug({ stream, ...errorFields(err) }, "could not tell whether a live worker reads the stream; publishing anyway");
      return undefined;
    }
    if (live) this.seenLive.set(stream, performance.now());
    else if (performance.now() - this.reconnectedAt < HEARTBEAT_TTL_MS) return undefined;
    const before = this.last.get(stream);
    this.last.set(stream, live);
    if (before === live) return live;
    if (!live && before === true)
      this.options.logger.warn({ stream, service }, `no live ${service} worker reads ${stream} any more: its calls fail at once until one starts`);
    else if (!live) this.options.logger.info({ stream, service }, `no live ${service} worker reads ${stream}: its calls fail at once until one starts`);
    else if (before === false) this.options.logger.info({ stream, service }, `a live ${service} worker reads ${stream} again`);
    return live;
  }

  /** How many consumers of the stream's group have a live heartbeat. */
  private async countLive(stream: string, service: string): Promise<number> {
    const names = (await consumersOf(this.options.redis, stream, this.options.keys.group(stream))).map((c) => String(c.name));
    // A consumer name that cannot name a key (a hand-made reader) has no heartbeat to find.
    const beats = names.filter((n) => ID_PATTERN.test(n)).map((n) => this.options.keys.heartbeat(service, n));
    return beats.length === 0 ? 0 : this.options.redis.exists(beats);
  }
}

/** The consumers of `stream`'s group (XINFO CONSUMERS); none when there is no stream or no group on it: no worker has ever started there. */
async function consumersOf(redis: RedisClient, stream: string, group: string): Promise<Awaited<ReturnType<RedisClient["xInfoConsumers"]>>> {
  try {
    return await redis.xInfoConsumers(stream, group);
  } catch (err) {
    if (err instanceof Error && /no such key|NOGROUP/i.test(err.message)) return [];
    throw err;
  }
}

/** How often a stream worker looks for consumers of departed workers in its stream's group. */
export const DEPARTED_SWEEP_MS = 60_000;
/** How long a consumer with nothing pending and no heartbeat must have been idle before it is forgotten. */
export const DEPARTED_IDLE_MS = 10 * 60_000;

/**
 * Deletes a consumer only while it holds no pending entry, in one step (a consumer deleted with entries
 * pending would lose them: no pending list would hold them, and no reclaim would find them).
 */
const DELETE_IF_IDLE_LUA = `
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/**
 * Forgets the consumers of `stream`'s group that left without leaving (a crash, a SIGKILL, a stop past its
 * timeout): nothing pending, idle at least `minIdleMs`, and no live heartbeat of `service`. Otherwise each
 * worker that restarts under a new id (the default id has its pid in it) adds one for good, and every
 * liveness check (`LiveWorkers`) reads them all. Returns the names forgotten.
 */
export async function forgetDepartedConsumers(
  redis: RedisClient,
  keys: Keys,
  stream: string,
  service: string,
  minIdleMs = DEPARTED_IDLE_MS,
): Promise<string[]> {
  const group = keys.group(stream);
  const idle = (await consumersOf(redis, stream, group))
    .filter((c) => Number(c.pending) === 0 && Number(c.idle) >= minIdleMs)
    .map((c) => String(c.name))
    .filter((name) => ID_PATTERN.test(name));
  if (idle.length === 0) return [];
  const beats = await redis.mGet(idle.map((name) => keys.heartbeat(service, name)));
  const forgotten: string[] = [];
  for (const [i, name] of idle.entries()) {
    if (beats[i] !== null) continue;
    if (Number(await redis.sendCommand<number>(["EVAL", DELETE_IF_IDLE_LUA, "1", stream, group, name])) === 1) forgotten.push(name);
  }
  return forgotten;
}

/** Runs forgetDepartedConsumers() for one stream from time to time, and says what it forgot. */
export class DepartedConsumers {
  /** Set when this Redis user may not run the sweep (no EVAL): it is not tried again. */
  private off = false;

  constructor(private readonly options: { redis: RedisClient; keys: Keys; logger: Logger; stream: string; service: string; minIdleMs?: number }) {}

  async sweep(): Promise<void> {
    if (this.off) return;
    const { redis, keys, logger, stream, service } = this.options;
    let forgotten: string[];
    try {
      forgotten = await forgetDepartedConsumers(redis, keys, stream, service, this.options.minIdleMs);
    } catch (err) {
      // A Redis user without EVAL (an ACL from before this sweep): said once, then left alone.
      if (!(err instanceof Error && err.message.startsWith("NOPERM"))) throw err;
      this.off = true;
      logger.warn(
        { service, stream, ...errorFields(err) },
        "cannot remove the consumers of departed workers: this Redis user may not run EVAL (docs/security.md)",
      );
      return;
    }
    if (forgotten.length > 0) logger.info({ service, stream, consumers: forgotten }, "forgot the consumers of departed workers");
  }
}
