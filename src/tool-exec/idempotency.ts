import { z } from "zod";
import { parseJson } from "../core/json.js";
import { isCluster, type RedisClient } from "../redis/client.js";
import { slotOf } from "../redis/slots.js";
import type { Keys } from "../redis/keys.js";
import { BODY_FIELD, type EntryFields } from "../redis/entry-codec.js";
import { ToolfleetError } from "../core/errors.js";
import { within } from "../core/within.js";
import { CANCEL_UNSTARTED_LUA } from "./cancel-unstarted-script.js";

/**
 * The execution state of one request under `sg:tools:idem:<key>` (docs/protocol.md, delivery):
 * claimed with SET NX before the handler runs, replaced by the stored reply
 * after, or claimed first by the caller as "cancelled" so no worker starts it.
 */
export type IdemState =
  | RunningClaim
  | { state: "cancelled"; at: number }
  // `session`: the session record key of the request that ran; a record stored before it was kept has none.
  | { state: "done"; reply: EntryFields; session?: string };

/**
 * A claim. `worker` is the worker id (the consumer name, stable across restarts); `instance`
 * names the process (`<workerId>#<random>`), so a restarted worker can tell a claim left by
 * its previous life (same worker, other instance: that process is gone, the call was
 * interrupted) from one it holds itself. `restarts` counts how often such an interrupted
 * call was taken over and run again. Both are missing from claims written before they existed.
 */
export interface RunningClaim {
  state: "running";
  worker: string;
  instance?: string;
  restarts?: number;
  at: number;
}

const stored = z.discriminatedUnion("state", [
  z.object({
    state: z.literal("running"),
    worker: z.string(),
    instance: z.string().optional(),
    restarts: z.number().int().min(0).optional(),
    at: z.number(),
  }),
  z.object({ state: z.literal("cancelled"), at: z.number() }),
  // Files are kept base64 here: this copy is only read back for a duplicate delivery.
  z.object({ state: z.literal("done"), body: z.string(), files: z.record(z.string(), z.string()), session: z.string().optional() }),
]);

/**
 * The SET NX that claims a request for a worker process (for sending with other commands; "OK" in reply means
 * this process owns it), with the parts that never change between its calls built once. The value is the
 * JSON of a RunningClaim, member for member.
 */
export function claimArgsFor(keys: Keys, worker: string, instance: string, leaseMs: number): (idemKey: string) => string[] {
  const head = `{"state":"running","worker":${JSON.stringify(worker)},"instance":${JSON.stringify(instance)},"at":`;
  const px = String(Math.ceil(leaseMs));
  return (idemKey) => ["SET", keys.idempotency(idemKey), `${head}${Date.now()}}`, "NX", "PX", px];
}

/**
 * Takes over a claim left by a previous life of this worker (same worker id, another instance).
 * A compare-and-set without a script: `SET … XX GET` swaps the value in and returns the old one;
 * if that was not such a claim after all (it expired and another worker claimed the request, or
 * its reply was stored meanwhile), the old value is put back and the state found is returned.
 * Null when the takeover happened, or when the key had gone (then claim it anew with SET NX).
 */
export async function takeOverClaim(
  redis: RedisClient,
  keys: Keys,
  idemKey: string,
  worker: string,
  instance: string,
  restarts: number,
  leaseMs: number,
): Promise<{ taken: true } | { taken: false; state: IdemState | null }> {
  const key = keys.idempotency(idemKey);
  const value = JSON.stringify({ state: "running", worker, instance, restarts, at: Date.now() } satisfies RunningClaim);
  const old = await redis.sendCommand<string | null>(["SET", key, value, "XX", "GET", "PX", String(Math.ceil(leaseMs))]);
  if (old === null) return { taken: false, state: null };
  const state = parseState(old, idemKey);
  if (state.state === "running" && state.worker === worker && state.instance !== instance) return { taken: true };
  await redis.sendCommand(["SET", key, old, "XX", "KEEPTTL"]);
  return { taken: false, state };
}

/**
 * Claims the key for the caller as cancelled; true when no worker holds the key, and then none will run the request.
 * It proves nothing after a Redis restart that lost the worker's claim (the key is gone, the tool may have run):
 * `cancelUnstarted()` is the proof that holds then.
 */
export async function cancelRequest(redis: RedisClient, keys: Keys, idemKey: string, ttlSeconds: number): Promise<boolean> {
  const reply = await redis.sendCommand<string | null>(cancelledArgs(keys, idemKey, ttlSeconds));
  return reply === "OK";
}

/** The SET NX that claims a request's key as cancelled (for sending with other commands); "OK" means no worker holds it. */
export function cancelledArgs(keys: Keys, idemKey: string, ttlSeconds: number): string[] {
  const { value, ttl } = cancelledRecord(ttlSeconds);
  return ["SET", keys.idempotency(idemKey), value, "NX", "EX", ttl];
}

/** The record a cancel writes and its TTL in whole seconds (at least 1), as the SET and the script send them. */
function cancelledRecord(ttlSeconds: number): { value: string; ttl: string } {
  return { value: JSON.stringify({ state: "cancelled", at: Date.now() }), ttl: String(Math.max(1, Math.ceil(ttlSeconds))) };
}

/** Where a published request landed: what `cancelUnstarted()` needs to prove it never started. */
export interface PublishedRequest {
  stream: string;
  /** The group whose consumers read `stream`. */
  group: string;
  /** The XADD's answer. */
  entryId: string;
  /** The run_id (INFO server) of the Redis that answered the XADD. */
  runId: string;
}

/**
 * Why a request could not be proven never started, or `cancelled` when it was (it will now never run).
 * `cluster`: on a Redis Cluster, the request's stream and its key are in different slots, so no script
 * can check both at once (docs/protocol.md, "Keys on a Redis Cluster"): unproven. toolfleet's own
 * callers never ask there (they learn no run_id on a cluster: src/tool-exec/client.ts); this answers
 * other users of the exported function (src/protocol.ts) instead of a CROSSSLOT error.
 */
export type CancelVerdict = "cancelled" | "restarted" | "gone" | "pending" | "delivered" | "claimed" | "cluster";
/** How long `cancelUnstarted()` waits for Redis's answer. */
export const CANCEL_UNSTARTED_WAIT_MS = 3000;
const VERDICTS: ReadonlySet<string> = new Set<CancelVerdict>(["cancelled", "restarted", "gone", "pending", "delivered", "claimed"]);
const ENTRY_ID = /^\d{1,15}-\d{1,15}$/;

/**
 * Cancels a request only when Redis itself proves no worker ever took it, in
 * one atomic script (src/tool-exec/cancel-unstarted-script.ts): the Redis
 * that took the request still runs (same run_id), its entry is still in the
 * stream, no consumer holds it and the group never read it; then the key is
 * claimed as cancelled. A restart that lost the entry, a worker's read or its
 * claim cannot pass for "never started" (docs/protocol.md §5.4). Rejects when
 * Redis has not answered within CANCEL_UNSTARTED_WAIT_MS.
 */
export async function cancelUnstarted(
  redis: RedisClient,
  keys: Keys,
  published: PublishedRequest,
  idemKey: string,
  ttlSeconds: number,
): Promise<CancelVerdict> {
  if (!ENTRY_ID.test(published.entryId)) throw new ToolfleetError("ID_INVALID", `cancelUnstarted(): '${published.entryId}' is not a stream entry id`);
  if (isCluster(redis) && slotOf(published.stream) !== slotOf(keys.idempotency(idemKey))) return "cluster";
  const { value, ttl } = cancelledRecord(ttlSeconds);
  // Bounded: its callers ask after a call already ended (a timeout, a worker gone), and a Redis that stalls
  // must not hold them. Unanswered, the request is not proven unstarted; the script may still run later, and
  // then the request never starts either.
  const reply = await within(
    redis.sendCommand<unknown>([
      "EVAL",
      CANCEL_UNSTARTED_LUA,
      "2",
      published.stream,
      keys.idempotency(idemKey),
      published.group,
      published.entryId,
      published.runId,
      value,
      ttl,
    ]),
    CANCEL_UNSTARTED_WAIT_MS,
    `the check that request ${idemKey} never started`,
  );
  const verdict = String(reply);
  if (!VERDICTS.has(verdict)) throw new ToolfleetError("REDIS_REPLY_INVALID", `cancelUnstarted(): unexpected answer '${verdict}'`);
  return verdict as CancelVerdict;
}

/**
 * The SET that stores a finished request's reply, pipelined with the XADD that sends it (the ack waits for both).
 * `session` (the request's session record key) is kept with it: the reply is re-sent only to a delivery with the same one.
 */
export function storeReplyArgs(keys: Keys, idemKey: string, reply: EntryFields, ttlSeconds: number, session?: string): string[] {
  const files: Record<string, string> = {};
  let body = "";
  let anyFile = false;
  for (const name in reply) {
    const value = reply[name] as string | Buffer;
    if (name === BODY_FIELD) body = value.toString();
    else {
      files[name] = (typeof value === "string" ? Buffer.from(value) : value).toString("base64");
      anyFile = true;
    }
  }
  // Written out rather than stringified as an object: the same JSON, without the object built per call.
  const value = `{"state":"done","body":${JSON.stringify(body)},"files":${anyFile ? JSON.stringify(files) : "{}"}${session === undefined ? "" : `,"session":${JSON.stringify(session)}`}}`;
  return ["SET", keys.idempotency(idemKey), value, "EX", String(Math.max(1, Math.ceil(ttlSeconds)))];
}

/** The PEXPIRE that keeps a running claim alive while its handler runs. */
export function extendClaimArgs(keys: Keys, idemKey: string, leaseMs: number): string[] {
  return ["PEXPIRE", keys.idempotency(idemKey), String(Math.ceil(leaseMs))];
}

/** The state of a request; null when there is none. A value that does not parse is reported as an error. */
export async function readRequestState(redis: RedisClient, keys: Keys, idemKey: string): Promise<IdemState | null> {
  const raw = await redis.get(keys.idempotency(idemKey));
  if (raw === null) return null;
  return parseState(raw, idemKey);
}

function parseState(raw: string, idemKey: string): IdemState {
  const parsed = parseJson(stored, raw);
  if (!parsed.ok) throw new ToolfleetError("RECORD_INVALID", `malformed idempotency record for '${idemKey}': ${parsed.reason}`);
  const s = parsed.value;
  if (s.state !== "done") return s;
  const reply: EntryFields = { [BODY_FIELD]: s.body };
  for (const [name, b64] of Object.entries(s.files)) reply[name] = Buffer.from(b64, "base64");
  return s.session === undefined ? { state: "done", reply } : { state: "done", reply, session: s.session };
}
