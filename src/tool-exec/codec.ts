import { TRACEPARENT_PATTERN } from "../core/tracing.js";
import { z } from "zod";
import type { JsonValue, RichMessage, SentFile, ToolCallIdentity } from "../core/context.js";
import { TOOL_NAME_PATTERN } from "../core/tool.js";
import { compileValidator, type ArgIssue, type JsonSchema } from "../core/validate.js";
import { WIRE_ERROR_CODES, ToolfleetError, wireError, type WireError } from "../core/errors.js";
import {
  BODY_FIELD,
  DEFAULT_MAX_REPLY_BYTES,
  MAX_REPLY_FILES,
  PROTOCOL_VERSION,
  fileFields,
  fileMeta,
  fileMetas,
  filesFromFields,
  formatBytes,
  parseBody,
  utf8SizeIfOver,
  type Decoded,
  type EntryFields,
} from "../redis/entry-codec.js";
import { ID_PATTERN, COMPOSITE_ID_PATTERN, SESSION_TAG_PATTERN } from "../redis/keys.js";
import { parseOutcomeKind, type OutcomeKind } from "../core/outcome.js";
import { MAX_CONTENT_PARTS, resultProblem, type StructuredResult } from "../core/result.js";

/**
 * The tool-exec messages: a request and its reply (docs/protocol.md is their
 * specification). Each is a stream entry as src/redis/entry-codec.ts lays
 * it out; a reply's files travel raw in fields of their own.
 */

/** @defaultValue 1 MiB: a request is JSON arguments, never bulk data. */
export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024;

/** The caller's context, as it crosses the wire. Identity here is informational only: the tools service takes identity from the session record. */
export interface WireContext extends ToolCallIdentity {
  observabilityRequestId: string;
  disclosedSkillIds: string[];
  roomContext: JsonValue;
}

export interface ToolRequest {
  type: "tool_exec";
  toolName: string;
  toolArgs: JsonValue;
  userId: string;
  correlationId: string;
  /** Ties the calls of one request (a chat turn) together; on the wire, `ctx.trace_id`. */
  traceId: string;
  /** `<traceId>:<correlationId>` */
  idemKey: string;
  /** The caller's reply stream. */
  replyTo: string;
  /** The caller's catalog hash of this tool. Empty: the caller has no catalog; no staleness check. */
  schemaHash: string;
  /** Absolute deadline, Unix epoch milliseconds: past it the caller has given up. */
  deadlineMs: number;
  /** Names, with `traceId`, the session record that holds the caller's identity. */
  sessionTag: string;
  ctx: WireContext;
  /** v1.1: the caller takes progress updates on its reply stream (a v1 caller never asks, so never gets one). */
  progress?: boolean;
  /** v1.1: the latest progress may push the deadline to, Unix epoch milliseconds. */
  maxDeadlineMs?: number;
  /** v1.1: the W3C trace context of the caller's span, when it traces (docs/observability.md). */
  traceparent?: string;
}

export type ReplyStatus = "ok" | "error" | "CATALOG_STALE" | "EXPIRED";

export interface WriteBack {
  sentFiles: SentFile[];
  injectedTools: string[] | null;
  sentRichMessages: RichMessage[];
}

export interface ToolReply {
  correlationId: string;
  /** `ok`: the call ran through the registry and `result` is what the model sees (a tool's own failure included). */
  status: ReplyStatus;
  result: string;
  /** How the registry judged the call, when it ran. */
  outcome?: OutcomeKind;
  /** Present whenever status is not `ok`. */
  error?: WireError;
  writeBack: WriteBack;
  workerId: string;
  durationMs: number;
  /** v1.1: the tool's structured result (content parts, structured content, isError); `result` is its text. */
  structured?: StructuredResult;
}

// ── schemas (snake_case on the wire, camelCase in code) ───────────────────

// One id as the key builder allows it; a composite (the idempotency key is trace:correlation) up to two of them.
const id = z.string().regex(ID_PATTERN, "1-128 of letters, digits and _ . : @ -");
const compositeId = z.string().regex(COMPOSITE_ID_PATTERN, "1-257 of letters, digits and _ . : @ -");
const text = (max: number) => z.string().max(max);
// Any value: a body is parsed from JSON text, so whatever it holds is JSON already, and checking
// that again (a recursive schema over every argument) cost the worker about a microsecond a call.
const json = z.custom<JsonValue>(() => true);

const wireContext = z.object({
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
});

const requestBody = z.object({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal("tool_exec"),
  tool_name: z.string().regex(TOOL_NAME_PATTERN, "a tool name"),
  tool_args: json,
  user_id: text(200),
  correlation_id: id,
  idem_key: compositeId,
  reply_to: compositeId,
  schema_hash: text(128),
  deadline_ms: z.number().int().positive(),
  session_tag: z.string().regex(SESSION_TAG_PATTERN, "16 lowercase hex digits"),
  ctx: wireContext,
  progress: z.boolean().optional(),
  max_deadline_ms: z.number().int().positive().optional(),
  // Only trace context: one that is not a traceparent is dropped, not the message with it.
  traceparent: z.string().regex(TRACEPARENT_PATTERN).optional().catch(undefined),
});

const replyBody = z.object({
  v: z.literal(PROTOCOL_VERSION),
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
  // v1.1, checked by resultProblem() when present: MCP's CallToolResult members.
  content: z.array(json).max(MAX_CONTENT_PARTS).optional(),
  structured_content: z.record(z.string(), json).optional(),
  is_error: z.boolean().optional(),
});

// zod stays the one description of each body; on the hot path Ajv runs it, compiled
// from zod's own JSON Schema output: ten times faster than zod (docs/benchmarks.md).
// Defaults are not applied by Ajv: the decoders fill them in.
const jsonSchemaOf = (schema: z.ZodType): JsonSchema => z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-7" });
const checkRequestBody = compileValidator(jsonSchemaOf(requestBody), { lengthInCodeUnits: true });
const checkReplyBody = compileValidator(jsonSchemaOf(replyBody), { lengthInCodeUnits: true });

function listIssues(issues: readonly ArgIssue[]): string {
  return issues
    .slice(0, 10)
    .map((i) => `${i.field === "(arguments)" ? "(body)" : i.field}: ${i.message}`)
    .join("; ");
}

// ── requests ──────────────────────────────────────────────────────────────

export function encodeRequest(req: ToolRequest, maxBytes = DEFAULT_MAX_REQUEST_BYTES): EntryFields {
  const body = JSON.stringify({
    v: PROTOCOL_VERSION,
    type: req.type,
    tool_name: req.toolName,
    tool_args: req.toolArgs,
    user_id: req.userId,
    correlation_id: req.correlationId,
    idem_key: req.idemKey,
    reply_to: req.replyTo,
    schema_hash: req.schemaHash,
    deadline_ms: req.deadlineMs,
    session_tag: req.sessionTag,
    ctx: {
      platform: req.ctx.platform,
      channel_id: req.ctx.channelId,
      user_id: req.ctx.userId,
      user_name: req.ctx.userName,
      guild_id: req.ctx.guildId,
      message_id: req.ctx.messageId,
      observability_request_id: req.ctx.observabilityRequestId,
      disclosed_skill_ids: req.ctx.disclosedSkillIds,
      room_context: req.ctx.roomContext,
      trace_id: req.traceId,
    },
    // v1.1 members, left out when unset (JSON.stringify drops undefined): a v1 worker ignores them.
    progress: req.progress,
    max_deadline_ms: req.maxDeadlineMs,
    traceparent: req.traceparent,
  });
  const size = utf8SizeIfOver(body, maxBytes);
  if (size !== null) {
    throw new ToolfleetError(
      "PAYLOAD_TOO_LARGE",
      `The request for tool '${req.toolName}' is ${formatBytes(size)}, over the ${formatBytes(maxBytes)} limit; send less data in the arguments.`,
    );
  }
  return { [BODY_FIELD]: body };
}

export function decodeRequest(fields: EntryFields, maxBytes = DEFAULT_MAX_REQUEST_BYTES): Decoded<ToolRequest> {
  const parsed = parseBody(fields, maxBytes);
  if (!parsed.ok) return parsed;
  const raw = parsed.value as Record<string, unknown>;
  // A bad request still gets a reply where it says, validly, where to send one and under which id.
  const refused = (error: WireError): Decoded<ToolRequest> => ({
    ok: false,
    error,
    ...(typeof raw.correlation_id === "string" && ID_PATTERN.test(raw.correlation_id) ? { correlationId: raw.correlation_id } : {}),
    ...(typeof raw.reply_to === "string" && COMPOSITE_ID_PATTERN.test(raw.reply_to) ? { replyTo: raw.reply_to } : {}),
  });
  if (raw.v !== PROTOCOL_VERSION) {
    return refused(wireError("UNSUPPORTED_VERSION", `protocol version ${JSON.stringify(raw.v)} is not supported (this worker speaks ${PROTOCOL_VERSION})`));
  }
  const checked = checkRequestBody(raw);
  if (!checked.ok) return refused(wireError("INVALID_REQUEST", `invalid request: ${listIssues(checked.issues)}`));
  const b = raw as z.input<typeof requestBody>;
  // The key is derived, never chosen: otherwise a request could name another's key and be sent its stored reply.
  if (b.idem_key !== `${b.ctx.trace_id}:${b.correlation_id}`) {
    return refused(wireError("INVALID_REQUEST", "invalid request: idem_key must be <ctx.trace_id>:<correlation_id>"));
  }
  const c = b.ctx;
  const value: ToolRequest = {
    type: b.type,
    toolName: b.tool_name,
    toolArgs: b.tool_args,
    userId: b.user_id,
    correlationId: b.correlation_id,
    traceId: b.ctx.trace_id,
    idemKey: b.idem_key,
    replyTo: b.reply_to,
    schemaHash: b.schema_hash,
    deadlineMs: b.deadline_ms,
    sessionTag: b.session_tag,
    ctx: {
      platform: c.platform ?? "",
      channelId: c.channel_id ?? "",
      userId: c.user_id ?? "",
      userName: c.user_name ?? "",
      guildId: c.guild_id ?? "",
      messageId: c.message_id ?? "",
      observabilityRequestId: c.observability_request_id ?? "",
      disclosedSkillIds: c.disclosed_skill_ids ?? [],
      roomContext: c.room_context ?? null,
    },
  };
  // Assigned, not spread in: this is every request's path (see replyBodyJson).
  if (b.progress) value.progress = true;
  if (b.max_deadline_ms !== undefined) value.maxDeadlineMs = b.max_deadline_ms;
  if (b.traceparent !== undefined) value.traceparent = b.traceparent;
  return { ok: true, value };
}

// ── replies ───────────────────────────────────────────────────────────────

/** The reply as stored JSON plus raw file bytes; see `encodeReply`. */
function replyBodyJson(reply: ToolReply): string {
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    type: "tool_result",
    correlation_id: reply.correlationId,
    status: reply.status,
    result: reply.result,
    // Left out when undefined (JSON.stringify drops those); no conditional spreads on this path.
    outcome: reply.outcome,
    error: reply.error,
    writeback: {
      sent_files: fileMetas(reply.writeBack.sentFiles),
      injected_tools: reply.writeBack.injectedTools,
      sent_rich_messages: reply.writeBack.sentRichMessages,
    },
    worker_id: reply.workerId,
    duration_ms: Math.round(reply.durationMs * 1000) / 1000,
    content: reply.structured?.content,
    structured_content: reply.structured?.structuredContent,
    is_error: reply.structured?.isError,
  });
}

/**
 * Encodes a reply. One the caller could not take (too large, too many files,
 * a file without name or type) becomes an error reply instead, with no files:
 * the caller must still hear back.
 */
export function encodeReply(reply: ToolReply, maxBytes = DEFAULT_MAX_REPLY_BYTES): EntryFields {
  const body = replyBodyJson(reply);
  const problem = replyProblem(reply, body, maxBytes);
  if (problem) {
    // The caller must still hear back: an error reply in place of one it could not decode.
    return { [BODY_FIELD]: replyBodyJson({ ...errorReply(reply.correlationId, reply.workerId, problem), durationMs: reply.durationMs }) };
  }
  // Files written into the object, not spread into it: a spread after a property takes V8's slow path.
  return fileFields(reply.writeBack.sentFiles, { [BODY_FIELD]: body });
}

/** What would make a reply undeliverable or undecodable by the caller, checked before sending it. */
function replyProblem(reply: ToolReply, body: string, maxBytes: number): WireError | null {
  const files = reply.writeBack.sentFiles;
  if (files.length > MAX_REPLY_FILES) return wireError("PAYLOAD_TOO_LARGE", `The tool sent ${files.length} files; at most ${MAX_REPLY_FILES} can be returned.`);
  const bad = files.find((f) => !f.name || !f.contentType || f.name.length > 255 || f.contentType.length > 255);
  if (bad)
    return wireError(
      "INTERNAL",
      `The tool sent a file without a valid name and content type (${JSON.stringify(bad.name)}, ${JSON.stringify(bad.contentType)}).`,
    );
  const filesBytes = files.reduce((n, f) => n + f.data.byteLength, 0);
  const bodyBytes = utf8SizeIfOver(body, maxBytes - filesBytes);
  if (bodyBytes === null) return null;
  return wireError(
    "PAYLOAD_TOO_LARGE",
    `The result of this tool call is ${formatBytes(bodyBytes + filesBytes)}, over the ${formatBytes(maxBytes)} reply limit, so it was not sent.`,
  );
}

export function decodeReply(fields: EntryFields, maxBytes = DEFAULT_MAX_REPLY_BYTES): Decoded<ToolReply> {
  const parsed = parseBody(fields, maxBytes);
  if (!parsed.ok) return parsed;
  const checked = checkReplyBody(parsed.value);
  if (!checked.ok) return { ok: false, error: wireError("INVALID_REQUEST", `invalid reply: ${listIssues(checked.issues)}`) };
  const b = parsed.value as z.infer<typeof replyBody>;
  const sentFiles = filesFromFields(fields, b.writeback.sent_files);
  if (typeof sentFiles === "string") return { ok: false, error: wireError("INVALID_REQUEST", `invalid reply: ${sentFiles}`), correlationId: b.correlation_id };
  const value: ToolReply = {
    correlationId: b.correlation_id,
    status: b.status,
    result: b.result,
    writeBack: { sentFiles, injectedTools: b.writeback.injected_tools, sentRichMessages: b.writeback.sent_rich_messages },
    workerId: b.worker_id,
    durationMs: b.duration_ms,
  };
  if (b.outcome !== undefined) {
    const kind = parseOutcomeKind(b.outcome);
    if (kind) value.outcome = kind;
  }
  if (b.error) value.error = b.error;
  if (b.content !== undefined) {
    const structured: StructuredResult = { content: b.content as StructuredResult["content"] };
    if (b.structured_content !== undefined) structured.structuredContent = b.structured_content;
    if (b.is_error !== undefined) structured.isError = b.is_error;
    const problem = resultProblem(structured);
    if (problem) return { ok: false, error: wireError("INVALID_REQUEST", `invalid reply: ${problem}`), correlationId: b.correlation_id };
    value.structured = structured;
  }
  return { ok: true, value };
}

export function emptyWriteBack(): WriteBack {
  return { sentFiles: [], injectedTools: null, sentRichMessages: [] };
}

export function errorReply(correlationId: string, workerId: string, error: WireError): ToolReply {
  const status: ReplyStatus = error.code === "CATALOG_STALE" || error.code === "EXPIRED" ? error.code : "error";
  return {
    correlationId,
    status,
    result: "",
    error,
    writeBack: emptyWriteBack(),
    workerId,
    durationMs: 0,
  };
}
