import { AS_BUFFERS, type RedisClient } from "./client.js";
import { type EntryFields } from "./entry-codec.js";
import { ToolfleetError } from "../core/errors.js";

/**
 * The stream commands toolfleet uses, as typed functions over raw commands.
 * Raw replies are parsed here, defensively: they come from outside the process.
 */

export interface StreamEntry {
  id: string;
  /** Null when the entry was deleted (trimmed) while still pending. */
  fields: EntryFields | null;
}

type Arg = string | Buffer;
type RawEntry = [Buffer | string, (Buffer | string)[] | null];

/** `XADD stream [NOMKSTREAM] MAXLEN ~ maxLen * field value …`; with `onlyIfExists`, a missing stream is not created. */
export function xaddArgs(stream: string, fields: EntryFields, maxLen: number, onlyIfExists = false): Arg[] {
  const args: Arg[] = onlyIfExists ? ["XADD", stream, "NOMKSTREAM", "MAXLEN", "~", String(maxLen), "*"] : ["XADD", stream, "MAXLEN", "~", String(maxLen), "*"];
  for (const [name, value] of Object.entries(fields)) args.push(name, value);
  return args;
}

/** Creates the group (and the stream); an existing group is left as it is. */
export async function ensureGroup(client: RedisClient, stream: string, group: string, startId = "0"): Promise<void> {
  try {
    await client.sendCommand(["XGROUP", "CREATE", stream, group, startId, "MKSTREAM"]);
  } catch (err) {
    // BUSYGROUP means it exists already: exactly what we wanted.
    if (!(err instanceof Error && err.message.startsWith("BUSYGROUP"))) throw err;
  }
}

export function isNoGroupError(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith("NOGROUP");
}

/**
 * Makes `consumer` a member of the group (a no-op when it is one), as a first read would: callers count a
 * stream's readers by the group's consumers with a heartbeat (src/redis/live-workers.ts). Redone on every
 * heartbeat, since an empty read does not make it again: after the group was lost (Redis restarted empty) or
 * the consumer swept (forgetDepartedConsumers) while its worker was alive but quiet, callers would find no
 * reader until an entry came, and they send none to a stream without one. No group (yet): nothing to join.
 */
export async function joinGroup(client: RedisClient, stream: string, group: string, consumer: string): Promise<void> {
  try {
    await client.sendCommand(["XGROUP", "CREATECONSUMER", stream, group, consumer]);
  } catch (err) {
    // The reader recreates a lost group at its next read; the next heartbeat joins it.
    if (!isNoGroupError(err)) throw err;
  }
}

export interface ReadGroupOptions {
  group: string;
  consumer: string;
  stream: string;
  /** `>` for new entries, `0` for this consumer's own pending ones. */
  id: string;
  count: number;
  /** Milliseconds to block; omitted: do not block. */
  blockMs?: number;
  /** Do not add what is read to the pending list. */
  noAck?: boolean;
}

export async function readGroup(client: RedisClient, options: ReadGroupOptions): Promise<StreamEntry[]> {
  const args = ["XREADGROUP", "GROUP", options.group, options.consumer, "COUNT", String(options.count)];
  if (options.blockMs !== undefined) args.push("BLOCK", String(options.blockMs));
  if (options.noAck) args.push("NOACK");
  args.push("STREAMS", options.stream, options.id);
  const reply = await client.sendCommand<unknown>(args, { typeMapping: AS_BUFFERS });
  const out: StreamEntry[] = [];
  for (const entries of entriesByStream(reply)) {
    for (const entry of asArray(entries, "XREADGROUP entries")) out.push(parseEntry(entry));
  }
  return out;
}

export interface AutoClaimResult {
  next: string;
  entries: StreamEntry[];
}

/** `XAUTOCLAIM`: takes over entries idle for at least `minIdleMs` from any consumer. */
export async function autoClaim(
  client: RedisClient,
  stream: string,
  group: string,
  consumer: string,
  minIdleMs: number,
  start: string,
  count: number,
): Promise<AutoClaimResult> {
  const reply = await client.sendCommand<unknown>(
    ["XAUTOCLAIM", stream, group, consumer, String(Math.max(0, Math.floor(minIdleMs))), start, "COUNT", String(count)],
    { typeMapping: AS_BUFFERS },
  );
  const [next, entries] = asArray(reply, "XAUTOCLAIM reply");
  return {
    next: text(next),
    // Entries deleted while pending come back as nil (Redis 6.2) and are dropped from the PEL (7.0).
    entries: asArray(entries, "XAUTOCLAIM entries")
      .filter((e) => e !== null)
      .map(parseEntry),
  };
}

/** Delivery counts of entries a consumer holds (`XPENDING … start end count consumer`), by id. */
export async function deliveryCounts(
  client: RedisClient,
  stream: string,
  group: string,
  consumer: string,
  ids: readonly string[],
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (ids.length === 0) return counts;
  const sorted = [...ids].sort(compareIds);
  const first = sorted[0] ?? "-";
  const last = sorted[sorted.length - 1] ?? "+";
  // The range may also hold this consumer's other in-flight entries; leave room for them.
  const reply = await client.sendCommand<unknown>(["XPENDING", stream, group, first, last, String(ids.length * 2 + 1000), consumer]);
  const wanted = new Set(ids);
  for (const row of asArray(reply, "XPENDING reply")) {
    const [id, , , deliveries] = asArray(row, "XPENDING row");
    const key = text(id);
    if (wanted.has(key)) counts.set(key, Number(deliveries));
  }
  return counts;
}

/** Resets the idle time of entries this consumer holds, so no one reclaims live work. */
export async function touchPending(client: RedisClient, stream: string, group: string, consumer: string, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await client.sendCommand(["XCLAIM", stream, group, consumer, "0", ...ids, "JUSTID"]);
}

/** Number of entries a consumer holds unacknowledged. */
export async function consumerPending(client: RedisClient, stream: string, group: string, consumer: string): Promise<number> {
  const reply = await client.sendCommand<unknown>(["XPENDING", stream, group, "-", "+", "1", consumer]);
  return asArray(reply, "XPENDING reply").length;
}

/**
 * Trims what every group of the stream has acknowledged: `XTRIM stream MINID <id>`, where `<id>` is
 * the lowest id still needed, over the stream's groups, of the group's lowest pending id, or when it
 * has none pending, the id after its last-delivered-id (so entries not yet delivered to some group
 * stay). One `XINFO GROUPS`, plus one `XPENDING` summary per group with entries pending. Exact, not
 * `MINID ~`: `~` only drops whole radix-tree nodes (up to 100 entries each), so a quiet stream
 * would keep its last node of acknowledged entries for good; the cost is once per tick, not per
 * call. A stream with no group is left to its `MAXLEN`. Returns the entries trimmed.
 */
export async function trimAcknowledged(client: RedisClient, stream: string): Promise<number> {
  let reply: unknown;
  try {
    reply = await client.sendCommand<unknown>(["XINFO", "GROUPS", stream]);
  } catch (err) {
    // Gone (Redis restarted empty): nothing to trim; the worker's reader re-creates it.
    if (err instanceof Error && err.message.includes("no such key")) return 0;
    throw err;
  }
  const groups = asArray(reply, "XINFO GROUPS reply").map(fieldsOf);
  let keep: string | undefined;
  for (const group of groups) {
    let needed: string;
    if (Number(group.get("pending") ?? 0) > 0) {
      const [, smallest] = asArray(await client.sendCommand<unknown>(["XPENDING", stream, text(group.get("name"))]), "XPENDING summary");
      // Acked meanwhile: the group needs no less than what follows its last delivery.
      needed = smallest === null || smallest === undefined ? nextId(text(group.get("last-delivered-id"))) : text(smallest);
    } else needed = nextId(text(group.get("last-delivered-id")));
    if (keep === undefined || compareIds(needed, keep) < 0) keep = needed;
  }
  if (keep === undefined) return 0;
  return Number(await client.sendCommand<unknown>(["XTRIM", stream, "MINID", keep]));
}

/** The smallest id after `id`. */
function nextId(id: string): string {
  const [ms = "0", seq = "0"] = id.split("-");
  const next = BigInt(seq) + 1n;
  return next > 0xffffffffffffffffn ? `${BigInt(ms) + 1n}-0` : `${ms}-${next}`;
}

/** An `XINFO` record as a map: a flat [name, value, …] list (RESP2), or a map (RESP3). */
function fieldsOf(record: unknown): Map<string, unknown> {
  if (record instanceof Map) return new Map([...(record as Map<unknown, unknown>)].map(([k, v]) => [text(k), v]));
  if (Array.isArray(record)) {
    const out = new Map<string, unknown>();
    for (let i = 0; i + 1 < record.length; i += 2) out.set(text(record[i]), record[i + 1]);
    return out;
  }
  if (record !== null && typeof record === "object") return new Map(Object.entries(record));
  throw new ToolfleetError("REDIS_REPLY_INVALID", `unexpected XINFO GROUPS record from Redis: ${typeof record}`);
}

function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

// RESP2 answers XREADGROUP with [[stream, entries]]; RESP3 (node-redis's
// default) with a map from stream to entries, which arrives as an object.
function entriesByStream(reply: unknown): unknown[] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) return reply.map((s) => asArray(s, "XREADGROUP stream")[1]);
  if (reply instanceof Map) return [...(reply as Map<unknown, unknown>).values()];
  if (typeof reply === "object") return Object.values(reply);
  throw new ToolfleetError("REDIS_REPLY_INVALID", `unexpected XREADGROUP reply from Redis: ${typeof reply}`);
}

function parseEntry(raw: unknown): StreamEntry {
  const [id, flat] = asArray(raw, "stream entry") as RawEntry;
  if (flat === null) return { id: text(id), fields: null };
  const list = asArray(flat, "stream entry fields");
  const fields: EntryFields = {};
  for (let i = 0; i + 1 < list.length; i += 2) {
    const value = list[i + 1];
    fields[text(list[i])] = typeof value === "string" ? Buffer.from(value) : Buffer.isBuffer(value) ? value : Buffer.from(text(value));
  }
  return { id: text(id), fields };
}

function asArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new ToolfleetError("REDIS_REPLY_INVALID", `unexpected ${what} from Redis: ${typeof value}`);
  return value;
}

function text(value: unknown): string {
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  throw new ToolfleetError("REDIS_REPLY_INVALID", `unexpected value from Redis: ${typeof value}`);
}

/** A pending entry of one consumer, with its delivery count. */
export interface PendingEntry extends StreamEntry {
  deliveries: number;
}

/**
 * This consumer's pending entries after `after` (exclusive), with their
 * delivery counts and fields, read without counting a delivery: `XPENDING`
 * then `XRANGE id id` per entry. (`XREADGROUP … <id>` re-reads them too, but
 * Redis counts that as a delivery, so a worker restarting under the same name
 * would burn one per restart.) An entry deleted while pending has fields null.
 */
export async function ownPending(client: RedisClient, stream: string, group: string, consumer: string, after: string, count: number): Promise<PendingEntry[]> {
  const reply = await client.sendCommand<unknown>(["XPENDING", stream, group, `(${after}`, "+", String(count), consumer]);
  const rows = asArray(reply, "XPENDING reply").map((row) => {
    const [id, , , deliveries] = asArray(row, "XPENDING row");
    return { id: text(id), deliveries: Number(deliveries) };
  });
  // Sent together: node-redis pipelines commands issued in the same tick.
  const ranges = await Promise.all(rows.map((r) => client.sendCommand<unknown>(["XRANGE", stream, r.id, r.id], { typeMapping: AS_BUFFERS })));
  return rows.map((r, i) => {
    const [raw] = asArray(ranges[i], "XRANGE reply");
    return { id: r.id, deliveries: r.deliveries, fields: raw === undefined ? null : parseEntry(raw).fields };
  });
}
