import type { Logger } from "../core/log.js";
import type { RedisClient } from "./client.js";
import type { EntryFields } from "./entry-codec.js";
import type { Keys } from "./keys.js";
import type { SharedSlots } from "./shared-slots.js";

type Arg = string | Buffer;

/** An entry as a handler receives it. */
export interface DeliveredEntry {
  id: string;
  fields: EntryFields;
  /** How many times the group has delivered it, this time included. */
  deliveries: number;
}

/**
 * A reply to add in the same round trip as the ack. Its stream is a reader's
 * reply stream (see ReplyInbox), which that reader makes and keeps alive: the
 * reply is added only if the stream exists (NOMKSTREAM, no TTL command); if
 * it is missing (Redis restarted empty and the reader has not re-made it yet,
 * or the reader died), it is re-created with the reply-stream TTL, so a
 * reader that comes back finds it and a dead reader's stream expires.
 */
export interface Outbound {
  stream: string;
  fields: EntryFields;
}

/** What to do with an entry once handled. */
export type Disposition =
  /** Ack it, after the extra commands and the reply (if any), sent in that order. */
  | { kind: "ack"; reply?: Outbound | null; commands?: Arg[][] }
  /** Leave it pending: someone else owns it, or it should be retried after the lease. */
  | { kind: "leave" }
  /** Poison: keep it in the dead-letter stream, ack it, and send the reply if one can be sent. */
  | { kind: "dead"; reason: string; reply?: Outbound | null };

export interface EntryHandler {
  handle(entry: DeliveredEntry, stopping: AbortSignal): Promise<Disposition>;
  /** The error reply for an entry dead-lettered for too many deliveries, when it names where to reply. */
  deadLetterReply(entry: DeliveredEntry, reason: string): Outbound | null;
  /**
   * The reply already stored for this entry (its work finished, the ack was lost), looked up
   * before it is dead-lettered for too many deliveries: if there is one, it is sent instead.
   */
  storedReply?(entry: DeliveredEntry): Promise<Outbound | null>;
  /** Called with the ids of in-flight entries whenever their leases are extended. */
  extendLeases?(ids: readonly string[]): Promise<void>;
}

export interface StreamWorkerOptions {
  redis: RedisClient;
  /** For the blocking connection's error lines (redacted). */
  redisUrl: string;
  logger: Logger;
  keys: Keys;
  /** Names this kind of worker in heartbeat keys: `tools`, `gateway`. */
  service: string;
  stream: string;
  consumer: string;
  handler: EntryHandler;
  /** Entries handled at once. @defaultValue 16 */
  concurrency?: number;
  /** How long one blocking read waits for entries. @defaultValue 1000 */
  blockMs?: number;
  /** A read that has not returned this long after its block time is presumed stuck, and its connection replaced. @defaultValue 2000 */
  watchdogGraceMs?: number;
  /** An entry idle this long is presumed abandoned by a dead worker and reclaimed. @defaultValue 30000 */
  leaseMs?: number;
  /** How often to look for abandoned entries. @defaultValue leaseMs / 2 */
  claimEveryMs?: number;
  /** An entry delivered more often than this is dead-lettered. @defaultValue 5 */
  maxDeliveries?: number;
  /** Approximate cap (`MAXLEN ~`) of the streams this worker writes to. @defaultValue 10000 */
  maxLen?: number;
  /** @defaultValue 2000 */
  heartbeatMs?: number;
  /** Shares its concurrency limit with other workers (one per shard stream of a tools worker). @defaultValue its own, of `concurrency` */
  slots?: SharedSlots;
  /** Writes and deletes the heartbeat record; false for a shard's worker whose process beats through another. @defaultValue true */
  beats?: boolean;
  /** More for the heartbeat record (what the worker ran, its version …), read at each beat. @defaultValue none */
  heartbeatExtra?: () => Record<string, unknown>;
}

/** What a worker's heartbeat record says. */
export interface Heartbeat {
  service: string;
  workerId: string;
  pid: number;
  host: string;
  startedAt: number;
  /** When the read loop last completed a read: the worker's liveness. */
  lastProgressAt: number;
  inFlight: number;
  processed: number;
  deadLettered: number;
  /** Entries taken over from workers that left them (XAUTOCLAIM). */
  reclaimed: number;
  healthy: boolean;
}
