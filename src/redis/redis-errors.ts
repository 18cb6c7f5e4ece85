import { ErrorReply, MultiErrorReply } from "redis";

/**
 * Error replies that mean "not now": the server is loading, busy with a
 * script, out of memory, a replica or failing over, or cannot persist. Sent
 * again later, the same command may well go through.
 */
const TRANSIENT_PREFIXES = ["LOADING", "BUSY", "OOM", "MASTERDOWN", "TRYAGAIN", "READONLY", "CLUSTERDOWN", "NOREPLICAS", "MISCONF"];

/**
 * Whether Redis refused a write for a reason that retrying will not change:
 * an error reply (`WRONGTYPE` for a key of another type, `NOPERM`, `ERR …`)
 * other than the transient ones above. Anything that is not an error reply
 * — a dropped connection, a timeout, a closed client — is transient: the
 * command may not even have reached Redis. A failed MULTI is permanent when
 * any of its commands failed permanently. The one place this is decided.
 */
export function isPermanentRedisError(err: unknown): boolean {
  if (err instanceof MultiErrorReply) return [...err.errors()].some((e) => isPermanentRedisError(e));
  if (!(err instanceof ErrorReply)) return false;
  const prefix = err.message.split(" ", 1)[0] ?? "";
  return !TRANSIENT_PREFIXES.includes(prefix);
}
