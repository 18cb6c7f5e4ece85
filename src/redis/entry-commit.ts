import { MultiErrorReply } from "redis";
import { errorFields, type Logger } from "../core/log.js";
import { isCluster, type RedisClient } from "./client.js";
import type { Outbound } from "./stream-worker-options.js";
import { REPLY_STREAM_TTL_SECONDS } from "./reply-inbox.js";
import { xaddArgs } from "./streams.js";

type Arg = string | Buffer;

/** Where a stream worker commits its entries (src/redis/stream-worker.ts). */
export interface CommitTarget {
  redis: RedisClient;
  logger: Logger;
  service: string;
  stream: string;
  group: string;
  maxLen: number;
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
