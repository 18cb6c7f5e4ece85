import { setTimeout as sleep } from "node:timers/promises";
import { MultiErrorReply } from "redis";
import { errorFields, type Logger } from "../core/log.js";
import type { AckBatch } from "./ack-batch.js";
import { isCluster, type RedisClient } from "./client.js";
import type { EntryFields } from "./entry-codec.js";
import { isPermanentRedisError } from "./redis-errors.js";
import type { DeliveredEntry, Disposition, Outbound } from "./stream-worker-options.js";
import { REPLY_STREAM_TTL_SECONDS } from "./reply-inbox.js";
import { xaddArgs } from "./streams.js";

type Arg = string | Buffer;

const SLOW_COMMIT_RETRIES = 20;

/** Where a stream worker commits its entries (src/redis/stream-worker.ts). */
export interface CommitTarget {
  redis: RedisClient;
  logger: Logger;
  service: string;
  stream: string;
  group: string;
  maxLen: number;
  /** The worker's consumer name, written on its dead letters. */
  consumer: string;
  deadLetterStream: string;
}

/** A commit worked out: what goes to Redis for an entry, and where in it the reply is. */
interface PlannedCommit {
  id: string;
  disposition: Exclude<Disposition, { kind: "leave" }>;
  entry: DeliveredEntry | undefined;
  commands: Arg[][];
  reply: Outbound | null | undefined;
  replyAt: number;
}

/**
 * Commits a stream worker's entries (src/redis/stream-worker.ts): each one's
 * reply and commands, then its ack, retried while Redis is away; and counts them.
 */
export class EntryCommitter {
  /** Entries acked, and dead-lettered, by this worker. */
  processed = 0;
  deadLettered = 0;

  constructor(
    private readonly t: CommitTarget,
    private readonly acks: AckBatch,
    /** Aborted past the worker's stop timeout: a commit that fails then is not retried. */
    private readonly stopping: AbortSignal,
  ) {}

  /**
   * Extra commands and the reply, and once Redis has taken all of them, the
   * ack; retried while Redis is away or refuses them. Not a MULTI: if only a
   * prefix runs (the connection drops), the entry stays pending and its
   * redelivery finds the stored reply (the handler's commands) and sends it
   * again, so order is all that matters, and MULTI/EXEC would cost two more
   * commands per call. The ack waits for the replies to those commands: Redis
   * may refuse the reply (out of memory, a key of another type) and still take
   * an `XACK`, and an entry acked without its reply is lost. The ack goes out
   * with the next entry's commands, in one `XACK` with every other ack waiting
   * (see `AckBatch`): no write of its own. A dead letter's copy and ack do go
   * in a MULTI: a half-done one would copy it twice.
   */
  commit(id: string, disposition: Exclude<Disposition, { kind: "leave" }>, entry?: DeliveredEntry): Promise<void> {
    const commands: Arg[][] = [];
    if (disposition.kind === "ack") commands.push(...(disposition.commands ?? []));
    if (disposition.kind === "dead" && entry) {
      const copy: EntryFields = {
        stream: this.t.stream,
        entry_id: id,
        reason: disposition.reason,
        deliveries: String(entry.deliveries),
        worker: this.t.consumer,
        at: String(Date.now()),
      };
      for (const [name, value] of Object.entries(entry.fields)) copy[`field.${name}`] = value;
      commands.push(xaddArgs(this.t.deadLetterStream, copy, this.t.maxLen));
      this.t.logger.warn({ service: this.t.service, entryId: id, reason: disposition.reason }, "entry dead-lettered");
    }
    const reply = disposition.reply;
    const replyAt = commands.length;
    if (reply) commands.push(xaddArgs(reply.stream, reply.fields, this.t.maxLen, true));
    const planned: PlannedCommit = { id, disposition, entry, commands, reply, replyAt };
    if (disposition.kind === "dead") return this.commitRetrying(planned);
    // An ack's first try, the one nearly every entry needs; a failed one goes on in commitRetrying().
    const retry = (err: unknown): Promise<void> => this.commitRetrying(planned, { err });
    try {
      return this.tryAck(planned, retry);
    } catch (err) {
      return retry(err);
    }
  }

  /** A commit's tries, after a failed first one (`failed`) or from the start (a dead letter). */
  private async commitRetrying(c: PlannedCommit, failed?: { err: unknown }): Promise<void> {
    const { id, disposition, entry } = c;
    for (let attempt = 0; ; attempt++) {
      try {
        // The first try's failure goes through the same checks as any other.
        if (attempt === 0 && failed) throw failed.err;
        if (disposition.kind === "dead") await commitDeadLetter(this.t, id, c.commands, c.reply, c.replyAt);
        else await this.tryAck(c);
        break;
      } catch (err) {
        // Refused for good (a reply "stream" that is a key of another type, say): retrying only
        // holds a slot for seconds. The entry is dead-lettered at once, with the reason.
        if (disposition.kind === "ack" && entry && isPermanentRedisError(err)) {
          const reason = `reply refused by Redis: ${err instanceof Error ? err.message : String(err)}`;
          await this.commit(id, { kind: "dead", reason, reply: null }, entry);
          return;
        }
        // Past stop()'s deadline nobody waits for this entry: it stays pending for another worker.
        if (attempt >= SLOW_COMMIT_RETRIES || this.stopping.aborted) throw err;
        // Debug: an outage fails every entry in flight at once (the connection's own line says so),
        // and one that never goes through is logged as an error when it is given up.
        if (attempt === 0) this.t.logger.debug({ service: this.t.service, entryId: id, ...errorFields(err) }, "commit failed; retrying, the entry not acked");
        await sleep(Math.min(50 * 2 ** attempt, 500));
      }
    }
    // An ack is counted by tryAck().
    if (disposition.kind === "dead") this.deadLettered++;
  }

  /**
   * One try of an ack's commit: its commands and reply sent, and once Redis took them, the ack queued and
   * counted. A failure goes to `failed` when given (the same .then: one promise fewer). May throw.
   */
  private tryAck(c: PlannedCommit, failed?: (err: unknown) => Promise<void>): Promise<void> {
    const sent = c.commands.map((args) => this.t.redis.sendCommand(args));
    // Acks waiting for a write go out with this one.
    this.acks.flush();
    const acked = (): void => {
      this.acks.add(c.id);
      this.processed++;
    };
    const taken = (results: unknown[]): Promise<void> | void => {
      if (c.reply && results[c.replyAt] === null) return recreateAndReply(this.t, c.reply).then(acked, failed);
      acked();
    };
    // Most commits are the reply alone: no Promise.all (two promises more) for one command.
    return sent.length === 1 ? sent[0]!.then((result) => taken([result]), failed) : Promise.all(sent).then(taken, failed);
  }
}

/**
 * Dead-letters entry `id`: `commands` (the copy to the dead-letter stream, then the error reply at
 * `replyAt` when there is one) and the ack. On one node they are one MULTI, so a crash keeps all or
 * none of them. On a cluster the reply stream is in another slot than the dead letters: the copy and
 * the ack are one MULTI, the reply follows it, and a crash in between loses the reply (the caller's
 * deadline ends that call; docs/protocol.md §1.3). A MULTI that ran is never sent again.
 */
export async function commitDeadLetter(t: CommitTarget, id: string, commands: Arg[][], reply: Outbound | null | undefined, replyAt: number): Promise<void> {
  const together = !isCluster(t.redis);
  const batch = t.redis.multi();
  for (const args of together ? commands : commands.slice(0, replyAt)) batch.addCommand(args);
  batch.addCommand(["XACK", t.stream, t.group, id]);
  let results: unknown[];
  try {
    results = await batch.exec();
  } catch (err) {
    // It ran, and some of its commands failed (a reply or dead-letter "stream" that is a key of another
    // type): Redis does not undo the rest, so sending it again would copy the entry again.
    if (!(err instanceof MultiErrorReply)) throw err;
    t.logger.warn(
      { service: t.service, entryId: id, failed: [...err.errors()].map((e) => e.message) },
      "dead letter stored, but part of its transaction failed; not sent again",
    );
    return;
  }
  if (!reply) return;
  try {
    const added = together ? results[replyAt] : await t.redis.sendCommand(commands[replyAt]!);
    if (added === null) await recreateAndReply(t, reply);
  } catch (err) {
    // The entry is kept in the dead-letter stream and acked: only the error reply is lost.
    t.logger.warn(
      { service: t.service, stream: reply.stream, ...errorFields(err) },
      "could not send the dead letter's error reply; it is lost (the entry is kept in the dead-letter stream)",
    );
  }
}

/** The rare path of a reply whose stream was missing: create it, with its TTL, and add the reply. */
export async function recreateAndReply(t: CommitTarget, reply: Outbound): Promise<void> {
  await t.redis
    .multi()
    .addCommand(xaddArgs(reply.stream, reply.fields, t.maxLen))
    .addCommand(["EXPIRE", reply.stream, String(REPLY_STREAM_TTL_SECONDS)])
    .exec();
}
