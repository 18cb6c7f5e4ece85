// A minimal peer of protocol v1 (the wire as it was before v1.1, commit 0541388): its request and
// reply bodies, copied from that commit's src/tool-exec/codec.ts, checked the way it checked them
// (Ajv over zod's JSON Schema: unknown members are ignored), and a worker and a caller that speak
// only that. For the tests that a v1 peer and a v1.1 peer still work together, both ways.
import { z } from "zod";
import { compileValidator } from "../../src/core/validate.js";
import type { RedisNode } from "../../src/redis/client.js";
import { readGroup } from "../../src/redis/streams.js";
import { COMPOSITE_ID_PATTERN, ID_PATTERN, SESSION_TAG_PATTERN, type Keys } from "../../src/redis/keys.js";

const id = z.string().regex(ID_PATTERN);
const compositeId = z.string().regex(COMPOSITE_ID_PATTERN);
const text = (max: number) => z.string().max(max);
const json = z.custom<unknown>(() => true);
const WIRE_ERROR_CODES = [
  "UNAUTHENTICATED",
  "INVALID_REQUEST",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_VERSION",
  "DEAD_LETTER",
  "CATALOG_STALE",
  "EXPIRED",
  "INTERNAL",
] as const;
const fileMeta = z.object({ field: z.string(), name: z.string(), content_type: z.string(), size: z.number() });

const v1Request = z.object({
  v: z.literal(1),
  type: z.literal("tool_exec"),
  tool_name: z.string(),
  tool_args: json,
  user_id: text(200),
  correlation_id: id,
  idem_key: compositeId,
  reply_to: compositeId,
  schema_hash: text(128),
  deadline_ms: z.number().int().positive(),
  session_tag: z.string().regex(SESSION_TAG_PATTERN),
  ctx: z.object({
    platform: text(64).default(""),
    channel_id: text(200).default(""),
    user_id: text(200).default(""),
    user_name: text(200).default(""),
    guild_id: text(200).default(""),
    message_id: text(200).default(""),
    observability_request_id: text(200).default(""),
    disclosed_skill_ids: z.array(text(200)).max(1000).default([]),
    room_context: json.default(null),
    trace_id: id,
  }),
});

const v1Reply = z.object({
  v: z.literal(1),
  type: z.literal("tool_result"),
  correlation_id: id,
  status: z.enum(["ok", "error", "CATALOG_STALE", "EXPIRED"]),
  result: z.string(),
  outcome: z.string().optional(),
  error: z.object({ code: z.enum(WIRE_ERROR_CODES), message: z.string(), retryable: z.boolean() }).optional(),
  writeback: z.object({
    sent_files: z.array(fileMeta).max(100),
    injected_tools: z.array(z.string()).max(1000).nullable(),
    sent_rich_messages: z.array(z.record(z.string(), json)).max(1000),
  }),
  worker_id: z.string(),
  duration_ms: z.number().nonnegative(),
});

const schemaOf = (schema: z.ZodType) => z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-7" });
const checkRequest = compileValidator(schemaOf(v1Request), { lengthInCodeUnits: true });
const checkReply = compileValidator(schemaOf(v1Reply), { lengthInCodeUnits: true });

export type V1Request = z.input<typeof v1Request>;
export type V1Reply = z.input<typeof v1Reply>;

/** A body as a v1 peer reads it: JSON, `v` 1, and its schema; what it does not know it ignores. */
function readBody<T>(raw: string | undefined, check: ReturnType<typeof compileValidator>): T {
  if (raw === undefined) throw new Error("v1 peer: an entry without a body field");
  const value = JSON.parse(raw) as { v?: unknown };
  if (value.v !== 1) throw new Error(`v1 peer: protocol version ${JSON.stringify(value.v)} is not supported`);
  const checked = check(value);
  if (!checked.ok) throw new Error(`v1 peer: invalid body: ${JSON.stringify(checked.issues)}`);
  return value as T;
}

export const readV1Request = (raw: string | undefined): V1Request => readBody<V1Request>(raw, checkRequest);
export const readV1Reply = (raw: string | undefined): V1Reply => readBody<V1Reply>(raw, checkReply);

/** Every entry of a stream, its fields as an object. */
export async function entriesOf(redis: RedisNode, stream: string): Promise<{ id: string; fields: Record<string, string> }[]> {
  const raw = await redis.sendCommand<[string, string[]][]>(["XRANGE", stream, "-", "+"]);
  return raw.map(([entryId, flat]) => {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
    return { id: entryId, fields };
  });
}

/** A v1 worker for one request: reads it from the tools stream's group, answers `text` with a v1 reply. */
export async function serveOneAsV1(redis: RedisNode, k: Keys, answer: (req: V1Request) => string): Promise<V1Request> {
  const stream = k.toolsStream;
  for (let i = 0; i < 100; i++) {
    // Polled, not BLOCK: the connection is shared with the caller under test.
    const [entry] = await readGroup(redis, { group: k.group(stream), consumer: "v1-worker", stream, id: ">", count: 1 });
    if (!entry?.fields) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const fields: Record<string, string> = {};
    for (const [name, value] of Object.entries(entry.fields)) fields[name] = value.toString();
    const req = readV1Request(fields.body);
    const reply: V1Reply = {
      v: 1,
      type: "tool_result",
      correlation_id: req.correlation_id,
      status: "ok",
      result: answer(req),
      outcome: "ok",
      writeback: { sent_files: [], injected_tools: null, sent_rich_messages: [] },
      worker_id: "v1-worker",
      duration_ms: 1,
    };
    await redis.sendCommand(["XADD", req.reply_to, "NOMKSTREAM", "*", "body", JSON.stringify(reply)]);
    await redis.sendCommand(["XACK", stream, k.group(stream), entry.id]);
    return req;
  }
  throw new Error("v1 peer: no request came within 10 s");
}
