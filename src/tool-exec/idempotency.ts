import { z } from "zod";
import { parseJson } from "../core/json.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { BODY_FIELD, type EntryFields } from "../redis/entry-codec.js";
import { ToolfleetError } from "../core/errors.js";

/**
 * The execution state of one request under `sg:tools:idem:<key>` (docs/protocol.md, delivery):
 * claimed with SET NX before the handler runs, replaced by the stored reply
 * after, or claimed first by the caller as "cancelled" so no worker starts it.
 */
export type IdemState =
  | { state: "running"; worker: string; at: number }
  | { state: "cancelled"; at: number }
  // `session`: the session record key of the request that ran; a record stored before it was kept has none.
  | { state: "done"; reply: EntryFields; session?: string };

const stored = z.discriminatedUnion("state", [
  z.object({ state: z.literal("running"), worker: z.string(), at: z.number() }),
  z.object({ state: z.literal("cancelled"), at: z.number() }),
  // Files are kept base64 here: this copy is only read back for a duplicate delivery.
  z.object({ state: z.literal("done"), body: z.string(), files: z.record(z.string(), z.string()), session: z.string().optional() }),
]);

/** The SET NX that claims a request for a worker (for sending with other commands); "OK" in reply means this worker owns it. */
export function claimArgs(keys: Keys, idemKey: string, worker: string, leaseMs: number): string[] {
  const value = JSON.stringify({ state: "running", worker, at: Date.now() });
  return ["SET", keys.idempotency(idemKey), value, "NX", "PX", String(Math.ceil(leaseMs))];
}

/** Claims the key for the caller as cancelled; true when no worker had started the request, which now never runs. */
export async function cancelRequest(redis: RedisClient, keys: Keys, idemKey: string, ttlSeconds: number): Promise<boolean> {
  const value = JSON.stringify({ state: "cancelled", at: Date.now() });
  const reply = await redis.sendCommand<string | null>(["SET", keys.idempotency(idemKey), value, "NX", "EX", String(Math.max(1, Math.ceil(ttlSeconds)))]);
  return reply === "OK";
}

/**
 * The SET that stores a finished request's reply, pipelined with the XADD that sends it (the ack waits for both).
 * `session` (the request's session record key) is kept with it: the reply is re-sent only to a delivery with the same one.
 */
export function storeReplyArgs(keys: Keys, idemKey: string, reply: EntryFields, ttlSeconds: number, session?: string): string[] {
  const files: Record<string, string> = {};
  let body = "";
  for (const [name, value] of Object.entries(reply)) {
    if (name === BODY_FIELD) body = value.toString();
    else files[name] = (typeof value === "string" ? Buffer.from(value) : value).toString("base64");
  }
  return ["SET", keys.idempotency(idemKey), JSON.stringify({ state: "done", body, files, session }), "EX", String(Math.max(1, Math.ceil(ttlSeconds)))];
}

/** The PEXPIRE that keeps a running claim alive while its handler runs. */
export function extendClaimArgs(keys: Keys, idemKey: string, leaseMs: number): string[] {
  return ["PEXPIRE", keys.idempotency(idemKey), String(Math.ceil(leaseMs))];
}

/** The state of a request; null when there is none. A value that does not parse is reported as an error. */
export async function readRequestState(redis: RedisClient, keys: Keys, idemKey: string): Promise<IdemState | null> {
  const raw = await redis.get(keys.idempotency(idemKey));
  if (raw === null) return null;
  const parsed = parseJson(stored, raw);
  if (!parsed.ok) throw new ToolfleetError("RECORD_INVALID", `malformed idempotency record for '${idemKey}': ${parsed.reason}`);
  const s = parsed.value;
  if (s.state !== "done") return s;
  const reply: EntryFields = { [BODY_FIELD]: s.body };
  for (const [name, b64] of Object.entries(s.files)) reply[name] = Buffer.from(b64, "base64");
  return s.session === undefined ? { state: "done", reply } : { state: "done", reply, session: s.session };
}
