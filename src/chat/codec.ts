import { TRACEPARENT_PATTERN } from "../core/tracing.js";
import { z } from "zod";
import type { JsonValue, RichMessage, SentFile, ToolCallIdentity } from "../core/context.js";
import { ID_PATTERN } from "../redis/keys.js";
import {
  BODY_FIELD,
  DEFAULT_MAX_REPLY_BYTES,
  MAX_REPLY_FILES,
  PROTOCOL_VERSION,
  describe,
  fileFields,
  fileMeta,
  fileMetas,
  filesFromFields,
  formatBytes,
  parseBody,
  type Decoded,
  type EntryFields,
} from "../redis/entry-codec.js";
import { ToolfleetError, wireError } from "../core/errors.js";

/** Longest chat message text taken from a user. */
export const MAX_CHAT_TEXT = 16_000;
/** Earlier turns a gateway sends with a message, at most. */
export const MAX_HISTORY = 40;

export interface HistoryTurn {
  role: "user" | "assistant";
  text: string;
}

/**
 * A chat message on its way from a gateway to the inference tier. The
 * identity is the one the gateway authenticated; the inference tier writes it
 * to the session record of every tool call the message leads to.
 */
export interface InboundChat {
  /** This message's id across the fleet (also the trace id of its tool calls). */
  id: string;
  /** The gateway's answer stream. */
  replyTo: string;
  identity: ToolCallIdentity;
  text: string;
  /** Earlier turns of the channel, oldest first, as the gateway holds them. */
  history: HistoryTurn[];
  sentAtMs: number;
  /** After this the gateway has told the user it gave up: no answer is wanted. */
  deadlineMs: number;
  /** The gateway stream shard of the gateway that holds this chat: its gateway-pinned calls go there. */
  gatewayShard?: string;
  /** The W3C trace context of the gateway's span of this message, when it traces (docs/observability.md). */
  traceparent?: string;
  /** v1.1: the gateway shows its tools' progress, so wants progress entries on its answer stream (absent: none are sent). */
  progress?: boolean;
}

export type ChatEnd = "answer" | "limit" | "stopped" | "llm_error" | "expired" | "error";

/** Tool calls an answer describes, at most (the first ones; `toolCalls` still counts them all). */
export const MAX_CALL_DETAILS = 50;
/** Characters of a call's arguments, and of its result, an answer carries; longer ones are cut and marked. */
export const MAX_CALL_DETAIL_TEXT = 2000;

/**
 * One tool call of an answer, for the user to see which tier ran what: the
 * tool, its route (`local`, `gateway`, `remote`, `fallback`, `shadow`), how it
 * ended (an outcome kind), how long it took, and its arguments and result,
 * cut to MAX_CALL_DETAIL_TEXT. `route` and `kind` are strings: a newer peer
 * may send ones this version does not know, and they are shown as they are.
 */
export interface ToolCallDetail {
  name: string;
  route: string;
  kind: string;
  durationMs: number;
  /** The arguments as the model sent them (JSON text). */
  args: string;
  /** What the model got back. */
  result: string;
  /** Made by a subagent. */
  nested?: boolean;
  /** The arguments or the result were cut. */
  truncated?: boolean;
}

/** How the inference tier answered a message: the text, and what the tools of its loop sent. */
export interface ChatReply {
  text: string;
  files: SentFile[];
  richMessages: RichMessage[];
  ended: ChatEnd;
  toolCalls: number;
  /** The calls behind the answer (at most MAX_CALL_DETAILS); absent from an older worker's answer. */
  toolCallsDetail?: ToolCallDetail[];
}

/** A list of call details cut to the bounds an answer carries (count, name, arguments, result). */
export function boundCallDetails(details: readonly ToolCallDetail[]): ToolCallDetail[] {
  const cut = (text: string): string => (text.length > MAX_CALL_DETAIL_TEXT ? `${text.slice(0, MAX_CALL_DETAIL_TEXT - 1)}…` : text);
  return details.slice(0, MAX_CALL_DETAILS).map((d) => {
    const truncated = d.truncated === true || d.args.length > MAX_CALL_DETAIL_TEXT || d.result.length > MAX_CALL_DETAIL_TEXT;
    return {
      name: d.name.slice(0, 64),
      route: d.route.slice(0, 32),
      kind: d.kind.slice(0, 32),
      durationMs: Math.round(Math.max(0, d.durationMs) * 1000) / 1000,
      args: cut(d.args),
      result: cut(d.result),
      ...(d.nested ? { nested: true } : {}),
      ...(truncated ? { truncated: true } : {}),
    };
  });
}

/** A ChatReply on its way back to the gateway that asked. */
export interface ChatAnswer extends ChatReply {
  /** The InboundChat's id. */
  inReplyTo: string;
  channelId: string;
  workerId: string;
  durationMs: number;
}

const id = z.string().regex(ID_PATTERN, "1-128 of letters, digits and _ . : @ -");
const short = (max: number) => z.string().max(max);

const inboundBody = z.object({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal("chat_message"),
  id,
  reply_to: z.string().min(1).max(300),
  identity: z.object({
    platform: short(64),
    channel_id: short(200).min(1),
    user_id: short(200).min(1),
    user_name: short(200),
    guild_id: short(200),
    message_id: short(200),
  }),
  text: short(MAX_CHAT_TEXT).min(1),
  history: z.array(z.object({ role: z.enum(["user", "assistant"]), text: short(MAX_CHAT_TEXT) })).max(MAX_HISTORY),
  sent_at_ms: z.number().int().positive(),
  deadline_ms: z.number().int().positive(),
  gateway_shard: id.optional(),
  // Only trace context: one that is not a traceparent is dropped, not the message with it.
  traceparent: z.string().regex(TRACEPARENT_PATTERN).optional().catch(undefined),
  progress: z.boolean().optional(),
});

const callDetail = z.object({
  name: z.string().min(1).max(64),
  route: z.string().regex(/^[a-z_]{1,32}$/),
  kind: z.string().regex(/^[a-z_]{1,32}$/),
  duration_ms: z.number().nonnegative(),
  args: z.string().max(MAX_CALL_DETAIL_TEXT),
  result: z.string().max(MAX_CALL_DETAIL_TEXT),
  nested: z.boolean().optional(),
  truncated: z.boolean().optional(),
});
const callDetails = z.array(callDetail).max(MAX_CALL_DETAILS);

const answerBody = z.object({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal("chat_answer"),
  in_reply_to: id,
  channel_id: short(200),
  text: z.string(),
  files: z.array(fileMeta).max(MAX_REPLY_FILES),
  rich_messages: z.array(z.record(z.string(), z.json())).max(1000),
  ended: z.enum(["answer", "limit", "stopped", "llm_error", "expired", "error"]),
  tool_calls: z.number().int().nonnegative(),
  worker_id: z.string().max(200),
  duration_ms: z.number().nonnegative(),
  // Checked on its own (below): details that fail the check are left out, the answer stands.
  tool_calls_detail: z.unknown().optional(),
});

/** Bigger than any valid message (JSON escapes a UTF-16 unit in at most 6 bytes); a body past it is refused before parsing. */
const MAX_INBOUND_BYTES = (MAX_HISTORY + 1) * MAX_CHAT_TEXT * 6 + 64 * 1024;

export function encodeInbound(m: InboundChat): EntryFields {
  if (m.text.length > MAX_CHAT_TEXT)
    throw new ToolfleetError("PAYLOAD_TOO_LARGE", `A chat message can be at most ${MAX_CHAT_TEXT} characters; this one has ${m.text.length}.`);
  const i = m.identity;
  return {
    [BODY_FIELD]: JSON.stringify({
      v: PROTOCOL_VERSION,
      type: "chat_message",
      id: m.id,
      reply_to: m.replyTo,
      identity: { platform: i.platform, channel_id: i.channelId, user_id: i.userId, user_name: i.userName, guild_id: i.guildId, message_id: i.messageId },
      text: m.text,
      history: m.history.slice(-MAX_HISTORY),
      sent_at_ms: m.sentAtMs,
      deadline_ms: m.deadlineMs,
      ...(m.gatewayShard !== undefined ? { gateway_shard: m.gatewayShard } : {}),
      ...(m.traceparent !== undefined ? { traceparent: m.traceparent } : {}),
      ...(m.progress ? { progress: true } : {}),
    }),
  };
}

export function decodeInbound(fields: EntryFields): Decoded<InboundChat> {
  const parsed = parseBody(fields, MAX_INBOUND_BYTES);
  if (!parsed.ok) return parsed;
  const checked = inboundBody.safeParse(parsed.value);
  if (!checked.success) return { ok: false, error: wireError("INVALID_REQUEST", `invalid chat message: ${describe(checked.error)}`) };
  const b = checked.data;
  const i = b.identity;
  return {
    ok: true,
    value: {
      id: b.id,
      replyTo: b.reply_to,
      identity: { platform: i.platform, channelId: i.channel_id, userId: i.user_id, userName: i.user_name, guildId: i.guild_id, messageId: i.message_id },
      text: b.text,
      history: b.history,
      sentAtMs: b.sent_at_ms,
      deadlineMs: b.deadline_ms,
      ...(b.gateway_shard !== undefined ? { gatewayShard: b.gateway_shard } : {}),
      ...(b.traceparent !== undefined ? { traceparent: b.traceparent } : {}),
      ...(b.progress ? { progress: true } : {}),
    },
  };
}

/**
 * Encodes an answer; one too big to carry (files past the reply limit) goes
 * without its files and says so, so the user still hears back.
 */
export function encodeAnswer(a: ChatAnswer, maxBytes = DEFAULT_MAX_REPLY_BYTES): EntryFields {
  const size = a.files.reduce((n, f) => n + f.data.byteLength, 0);
  if (a.files.length > MAX_REPLY_FILES || size > maxBytes) {
    const note = `\n\n(${a.files.length} file(s), ${formatBytes(size)} in all, were too large to deliver.)`;
    return encodeAnswer({ ...a, text: a.text + note, files: [] }, maxBytes);
  }
  const body = JSON.stringify({
    v: PROTOCOL_VERSION,
    type: "chat_answer",
    in_reply_to: a.inReplyTo,
    channel_id: a.channelId,
    text: a.text,
    files: fileMetas(a.files),
    rich_messages: a.richMessages as { [key: string]: JsonValue }[],
    ended: a.ended,
    tool_calls: a.toolCalls,
    worker_id: a.workerId,
    duration_ms: Math.round(a.durationMs * 1000) / 1000,
    ...(a.toolCallsDetail !== undefined
      ? {
          tool_calls_detail: boundCallDetails(a.toolCallsDetail).map((d) => ({
            name: d.name,
            route: d.route,
            kind: d.kind,
            duration_ms: d.durationMs,
            args: d.args,
            result: d.result,
            ...(d.nested ? { nested: true } : {}),
            ...(d.truncated ? { truncated: true } : {}),
          })),
        }
      : {}),
  });
  return fileFields(a.files, { [BODY_FIELD]: body });
}

export function decodeAnswer(fields: EntryFields, maxBytes = DEFAULT_MAX_REPLY_BYTES): Decoded<ChatAnswer> {
  const parsed = parseBody(fields, maxBytes);
  if (!parsed.ok) return parsed;
  const checked = answerBody.safeParse(parsed.value);
  if (!checked.success) return { ok: false, error: wireError("INVALID_REQUEST", `invalid chat answer: ${describe(checked.error)}`) };
  const b = checked.data;
  const files = filesFromFields(fields, b.files);
  if (typeof files === "string") return { ok: false, error: wireError("INVALID_REQUEST", `invalid chat answer: ${files}`) };
  const details = b.tool_calls_detail === undefined ? undefined : callDetails.safeParse(b.tool_calls_detail);
  return {
    ok: true,
    value: {
      inReplyTo: b.in_reply_to,
      channelId: b.channel_id,
      text: b.text,
      files,
      richMessages: b.rich_messages,
      ended: b.ended,
      toolCalls: b.tool_calls,
      workerId: b.worker_id,
      durationMs: b.duration_ms,
      ...(details?.success
        ? {
            toolCallsDetail: details.data.map((d) => ({
              name: d.name,
              route: d.route,
              kind: d.kind,
              durationMs: d.duration_ms,
              args: d.args,
              result: d.result,
              ...(d.nested ? { nested: true } : {}),
              ...(d.truncated ? { truncated: true } : {}),
            })),
          }
        : {}),
    },
  };
}
