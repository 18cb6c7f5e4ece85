import { hostname } from "node:os";
import { staticConfig, type ConfigSource } from "../config/live.js";
import { ToolfleetError } from "../core/errors.js";
import { createLogger, errorFields, type Logger } from "../core/log.js";
import type { Permissions, ToolRegistry } from "../core/registry.js";
import type { TaskStore } from "../core/tasks.js";
import type { ToolDefinition } from "../core/tool.js";
import { closeRedis, connectFleetRedis, type RedisClient, type WaitForRedis } from "../redis/client.js";
import { keys, type Keys } from "../redis/keys.js";
import { RedisTaskStore } from "../tool-exec/task-store.js";
import { registryFor } from "./local.js";

/** What every fleet member is given. */
export interface MemberOptions {
  /** @defaultValue the defaults of `defineConfig()` (a `LiveConfig` reloads on change) */
  config?: ConfigSource;
  /** @defaultValue a pino logger named for the member */
  logger?: Logger;
  /** @defaultValue `config.redisUrl` */
  redisUrl?: string;
  /** This member's stable id: names its consumer, reply stream and heartbeat. @defaultValue `<kind>-<host>-<pid>` */
  workerId?: string;
  /**
   * What start() does while Redis does not answer: wait, logging that it waits every `logEveryMs`
   * (and carry on when it comes; stop() ends the wait), or fail at once with `REDIS_UNAVAILABLE` (`false`).
   * @defaultValue workers and gateways wait (`{ logEveryMs: 5000 }`); a caller fails at once
   */
  waitForRedis?: WaitForRedis;
}

/** Tools a member runs itself, and who may run them. */
export interface ToolSet {
  /** @defaultValue none */
  tools?: readonly ToolDefinition[];
  /** Tool name → user ids (`"*"`: everyone). @defaultValue none: every tool open to all */
  permissions?: Permissions;
}

/** A started or startable part of the fleet. */
export interface FleetMember {
  /** Its stable id in the fleet. */
  readonly workerId: string;
  /** The Redis it works on (may hold a password: redact before printing). */
  readonly redisUrl: string;
  /** One line saying what it serves, for ready lines. */
  readonly description: string;
  /** The web chat's address, when the member serves one. */
  readonly url: string | undefined;
  /** Where its Prometheus metrics are served (`/metrics`; `/healthz` and `/readyz` beside it), when asked for with `metricsPort`. */
  readonly metricsUrl?: string | undefined;
  /** Connects and starts serving; a failed start leaves nothing open. */
  start(): Promise<void>;
  /** Stops taking work, lets what runs finish (bounded), and closes every connection. */
  stop(): Promise<void>;
}

/** The member's settings with defaults applied, once. */
export interface Resolved {
  config: ConfigSource;
  logger: Logger;
  redisUrl: string;
  workerId: string;
  keys: Keys;
  waitForRedis: WaitForRedis;
}

export function resolveMember(kind: string, options: MemberOptions, defaults: { waitForRedis: WaitForRedis } = { waitForRedis: {} }): Resolved {
  const config = options.config ?? staticConfig();
  const workerId = options.workerId ?? `${kind}-${hostname()}-${process.pid}`;
  const k = keys(config.get().namespace);
  k.heartbeat(kind, workerId); // refuses a worker id that cannot name a key, before anything is opened
  return {
    config,
    logger: options.logger ?? createLogger(`toolfleet.${kind}`),
    redisUrl: options.redisUrl ?? config.get().redisUrl,
    workerId,
    keys: k,
    waitForRedis: options.waitForRedis ?? defaults.waitForRedis,
  };
}

/**
 * Starts `parts` on a Redis connection of the member's own (named `<kind>-<workerId>`), closed on stop.
 * Waiting for Redis (or not) as the member says; `signal` ends the wait.
 */
export function startOnRedis(r: Resolved, kind: string, parts: (redis: RedisClient) => Part[], signal?: AbortSignal): Promise<() => Promise<void>> {
  const open = (): Promise<RedisClient> =>
    connectFleetRedis({
      url: r.redisUrl,
      clusterNodes: r.config.get().redisClusterNodes,
      logger: r.logger,
      name: `${kind}-${r.workerId}`,
      waitForRedis: r.waitForRedis,
      ...(signal ? { signal } : {}),
    });
  return startInOrder(open, closeRedis, parts, r.logger);
}

/** Where background tasks are kept: Redis when `taskStore` says so, so any worker can answer for them. */
export function taskStoreFor(r: Resolved, redis: RedisClient): TaskStore | undefined {
  return r.config.get().taskStore === "redis" ? new RedisTaskStore(redis, r.keys) : undefined;
}

/** The registry of a member that runs tools: its tools, the task tools, its permissions; tasks kept per `taskStore`. */
export function memberRegistry(r: Resolved, toolSet: ToolSet, redis: RedisClient): ToolRegistry {
  return registryFor({ tools: [...(toolSet.tools ?? [])], permissions: toolSet.permissions ?? {} }, r.config, r.logger, taskStoreFor(r, redis));
}

/** Calls a tool-exec server runs at once, and the idle time before another worker reclaims a call, unless told otherwise. */
export const DEFAULT_CONCURRENCY = 16;
export const DEFAULT_LEASE_MS = 30_000;

/** What every tool-exec server of a member is given. */
export function serverBase(r: Resolved, redis: RedisClient, registry: ToolRegistry, options: { concurrency?: number; leaseMs?: number }) {
  return {
    redis,
    redisUrl: r.redisUrl,
    keys: r.keys,
    registry,
    config: r.config,
    logger: r.logger,
    workerId: r.workerId,
    worker: { concurrency: options.concurrency ?? DEFAULT_CONCURRENCY, leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS },
  };
}

/** A part that starts and stops. */
export interface Part {
  start(): Promise<void>;
  stop(): Promise<unknown>;
}

/**
 * Starts `parts` in order on a connection made by `open`; on a failure, stops
 * what started (in reverse) and closes the connection, then rethrows. Returns
 * the stop that undoes it all.
 */
export async function startInOrder<C>(
  open: () => Promise<C>,
  close: (c: C) => Promise<void>,
  parts: (c: C) => Part[],
  logger: Logger,
): Promise<() => Promise<void>> {
  const connection = await open();
  const started: Part[] = [];
  const stopAll = async (): Promise<void> => {
    let first: unknown;
    for (const part of started.reverse()) {
      try {
        await part.stop();
      } catch (err) {
        first ??= err;
        logger.error({ ...errorFields(err) }, "a part of the fleet member did not stop cleanly");
      }
    }
    started.length = 0;
    await close(connection);
    if (first !== undefined)
      throw first instanceof Error ? first : new ToolfleetError("INTERNAL", "a part of the fleet member did not stop cleanly", { cause: first });
  };
  try {
    for (const part of parts(connection)) {
      started.push(part);
      await part.start();
    }
  } catch (err) {
    // The start's own error is the one reported; the undo's failures are logged by stopAll.
    await stopAll().catch(() => undefined);
    throw err;
  }
  return stopAll;
}

/** Lets a member start once, and stop only what started; a stop() during start() ends a wait for Redis. */
export class Lifecycle {
  private stopper: (() => Promise<void>) | undefined;
  private starting: Promise<void> | undefined;
  private abort: AbortController | undefined;

  constructor(private readonly what: string) {}

  get started(): boolean {
    return this.stopper !== undefined;
  }

  /** Runs `run` once; its `signal` is aborted by a stop() that comes before it has finished. */
  start(run: (signal: AbortSignal) => Promise<() => Promise<void>>): Promise<void> {
    if (this.starting) return this.starting;
    const abort = (this.abort = new AbortController());
    this.starting = run(abort.signal).then(
      (stop) => {
        this.stopper = stop;
      },
      (err: unknown) => {
        this.starting = undefined;
        throw err;
      },
    );
    return this.starting;
  }

  async stop(): Promise<void> {
    if (this.starting && !this.stopper) {
      // Still starting (waiting for Redis, say): end that, and stop whatever it got to start.
      this.abort?.abort(new ToolfleetError("STOPPED", `${this.what} stopped while starting`));
      await this.starting.catch(() => undefined);
    }
    const stop = this.stopper;
    this.stopper = undefined;
    this.starting = undefined;
    await stop?.();
  }

  /** The value, once started; a clear error before. */
  need<T>(value: T | undefined, name: string): T {
    if (value === undefined) throw new ToolfleetError("NOT_STARTED", `${this.what}: ${name} exists once start() has resolved`);
    return value;
  }
}
