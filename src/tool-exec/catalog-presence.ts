import { errorFields, type Logger } from "../core/log.js";
import { repeatEvery } from "../core/repeat.js";
import { within } from "../core/within.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import type { Catalog } from "./catalog.js";
import { PRESENCE_REFRESH_MS, publishCatalog, refreshPresence, type Publisher } from "./catalog-parts.js";

/** A worker's own stream lives this long past its last refresh, so a dead worker's goes by itself. */
const OWN_STREAM_TTL_MS = 60_000;
/** Its dead letters are kept for inspection this long past the worker's last refresh. */
const OWN_DEAD_LETTERS_TTL_MS = 7 * 24 * 3600_000;

export interface CatalogPresenceOptions {
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
  publisher: Publisher;
}

/**
 * A tools worker's place in the merged catalog (docs/protocol.md, "Pools and
 * the merged catalog"): its part, published and kept alive every
 * PRESENCE_REFRESH_MS (published again when Redis lost it), with its own
 * stream's life; on a graceful stop, first marked draining, then withdrawn.
 */
export class CatalogPresence {
  /** The index member of the part last published; "" when none is. */
  private member = "";
  private catalog: Catalog | undefined;
  /** Ends the keep-alive ticks; set while the part is kept alive. */
  private stopRefresh: (() => void) | undefined;
  private failing = false;
  // Every write of the part and every refresh, one after another: a refresh that read the member before a
  // write replaced it would put the old member back.
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: CatalogPresenceOptions) {}

  /** Publishes `catalog` as this worker's part (again, after a change), and keeps it alive from then on. */
  async publish(catalog: Catalog): Promise<void> {
    this.catalog = catalog;
    // The own stream exists (its reader made it): give it its life now, not at the first refresh.
    await this.options.redis.pExpire(this.options.keys.workerStream(this.options.publisher.workerId), OWN_STREAM_TTL_MS);
    await this.serial(() => this.write(this.member.endsWith("/draining")));
    // One tick at a time: while Redis is away a tick waits, and ticks must not pile up behind it to go out in a burst.
    this.stopRefresh ??= repeatEvery(
      PRESENCE_REFRESH_MS,
      () => this.keepAlive(),
      (err) => this.options.logger.warn({ worker: this.options.publisher.workerId, ...errorFields(err) }, "catalog keep-alive tick failed"),
    );
  }

  /** Says the worker is stopping: callers send it nothing new, and still wait for the calls it holds. */
  async drain(): Promise<void> {
    if (this.member)
      await this.bounded(
        this.serial(() => this.write(true)),
        "announcing that this worker drains",
      );
  }

  /** Leaves the catalog now, not when the part's life runs out. */
  async withdraw(): Promise<void> {
    this.stopRefresh?.();
    this.stopRefresh = undefined;
    const member = this.member;
    if (!member) return;
    this.member = "";
    const { redis, keys, publisher } = this.options;
    const withdraw = this.serial(() =>
      redis
        .multi()
        .addCommand(["DEL", keys.catalogPart(publisher.pool, publisher.workerId)])
        .addCommand(["ZREM", keys.catalogParts, member])
        .addCommand(["PUBLISH", keys.catalogChanged, member])
        .exec(),
    );
    await this.bounded(withdraw, "withdrawing the catalog part");
  }

  private async write(draining: boolean): Promise<void> {
    if (!this.catalog) return;
    const { redis, keys, publisher } = this.options;
    this.member = await publishCatalog(redis, keys, this.catalog, publisher, { before: this.member, draining });
  }

  // A stop during an outage must end: the part then expires by itself, within PRESENCE_TTL_MS.
  private async bounded(work: Promise<unknown>, what: string): Promise<void> {
    try {
      await within(work, 1000, what);
    } catch (err) {
      this.options.logger.warn({ worker: this.options.publisher.workerId, ...errorFields(err) }, `${what} failed; the catalog part expires by itself`);
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work);
    this.queue = next.catch(() => undefined); // its failure is the caller's to see
    return next;
  }

  private async keepAlive(): Promise<void> {
    const { redis, keys, publisher, logger } = this.options;
    const own = keys.workerStream(publisher.workerId);
    try {
      const [alive] = await Promise.all([
        this.serial(() => (this.member ? refreshPresence(redis, keys, publisher, this.member) : Promise.resolve(true))),
        redis.pExpire(own, OWN_STREAM_TTL_MS),
        redis.pExpire(keys.deadLetter(own), OWN_DEAD_LETTERS_TTL_MS),
      ]);
      // (Not after withdraw(): a tick that raced it must not bring the part back.)
      if (!alive && this.stopRefresh) {
        logger.info({ worker: publisher.workerId, pool: publisher.pool }, "catalog part gone from Redis (a restart?); publishing it again");
        await this.serial(() => this.write(this.member.endsWith("/draining")));
      }
      if (this.failing) logger.info({ worker: publisher.workerId }, "catalog part kept alive again");
      this.failing = false;
    } catch (err) {
      // Once per outage: the connection's own log says Redis is away; callers drop this worker's tools meanwhile.
      if (!this.failing) logger.warn({ worker: publisher.workerId, ...errorFields(err) }, "could not keep the catalog part alive");
      this.failing = true;
    }
  }
}
