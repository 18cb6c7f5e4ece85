import type { RedisClient } from "../redis/client.js";
import { announceCancelArgs } from "../redis/control.js";
import type { Keys } from "../redis/keys.js";
import { cancelledArgs } from "./idempotency.js";

/**
 * The caller's side of cancelling a tool call (docs/protocol.md §9.5), in one
 * round trip: the request's idempotency key claimed as cancelled (a request
 * nobody has claimed yet then never runs), the cancel mark, and the notice on
 * the control channel (src/redis/control.ts). `ttlSeconds` must outlive the
 * request's deadline.
 */
export async function cancelRunning(redis: RedisClient, keys: Keys, idemKey: string, reason: string, ttlSeconds: number): Promise<void> {
  const round = redis.multi().addCommand(cancelledArgs(keys, idemKey, ttlSeconds));
  for (const args of announceCancelArgs(keys, idemKey, reason, ttlSeconds)) round.addCommand(args);
  await round.execAsPipeline();
}
