import { z } from "zod";
import { PROTOCOL_VERSION, type EntryFields } from "./entry-codec.js";
import { ID_PATTERN } from "./keys.js";
import { LOG_LEVELS, MAX_LOG_MESSAGE, MAX_PROGRESS_MESSAGE, type ProgressUpdate, type ToolLog } from "../core/progress.js";
import { parseJson } from "../core/json.js";

/**
 * Progress updates on the wire (docs/protocol.md §9.3): entries on the
 * caller's reply stream beside its replies, in a field of their own
 * (`progress`, never `body`), sent only to a caller that asked for them
 * (`progress: true` in its request), at most one per `PROGRESS_INTERVAL_MS`
 * per call: a handler may report as often as it likes.
 */
export const PROGRESS_FIELD = "progress";
export const PROGRESS_INTERVAL_MS = 100;

const body = z.object({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal("tool_progress"),
  correlation_id: z.string().regex(ID_PATTERN),
  progress: z.number(),
  total: z.number().optional(),
  message: z.string().max(MAX_PROGRESS_MESSAGE).optional(),
  // On a chat's answer stream: which of the chat's tools reports.
  tool: z.string().max(64).optional(),
});

export function encodeProgress(correlationId: string, update: ProgressUpdate, tool?: string): EntryFields {
  const { progress, total, message } = update;
  return { [PROGRESS_FIELD]: JSON.stringify({ v: PROTOCOL_VERSION, type: "tool_progress", correlation_id: correlationId, progress, total, message, tool }) };
}

/** A progress entry's call and update; null for an entry that is not one, or is malformed. */
export function decodeProgress(fields: EntryFields): { correlationId: string; update: ProgressUpdate & { tool?: string } } | null {
  const raw = fields[PROGRESS_FIELD];
  if (raw === undefined) return null;
  const parsed = parseJson(body, raw.toString());
  if (!parsed.ok) return null;
  const b = parsed.value;
  const update: ProgressUpdate & { tool?: string } = { progress: b.progress };
  if (b.total !== undefined) update.total = b.total;
  if (b.message !== undefined) update.message = b.message;
  if (b.tool !== undefined) update.tool = b.tool;
  return { correlationId: b.correlation_id, update };
}

/**
 * Coalesces one call's reports: the first goes out at once, later ones at
 * most every `intervalMs`, each carrying the latest report. `close()` sends
 * what is still held (before the reply, so the caller sees the last report)
 * and stops the timer.
 */
export class ProgressSender {
  private lastSent = -Infinity;
  private held: ProgressUpdate | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly send: (update: ProgressUpdate) => void,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {}

  report(update: ProgressUpdate): void {
    if (this.closed) return;
    const wait = this.lastSent + this.intervalMs - performance.now();
    if (wait <= 0 && !this.timer) {
      this.emit(update);
      return;
    }
    this.held = update;
    this.timer ??= setTimeout(() => this.flush(), Math.max(0, wait));
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const held = this.held;
    this.held = undefined;
    if (held) this.emit(held);
  }

  private emit(update: ProgressUpdate): void {
    this.lastSent = performance.now();
    this.send(update);
  }
}

const logBody = z.object({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal("tool_log"),
  correlation_id: z.string().regex(ID_PATTERN),
  level: z.enum(LOG_LEVELS),
  message: z.string().max(MAX_LOG_MESSAGE),
});

/**
 * A tool's log message (`ctx.log()`) on the caller's reply stream: in the same field as progress,
 * of type `tool_log`, sent at once (not coalesced) to a caller that asked for updates. A caller
 * that does not know the type drops it, as any side entry it cannot read.
 */
export function encodeLog(correlationId: string, log: ToolLog): EntryFields {
  return { [PROGRESS_FIELD]: JSON.stringify({ v: PROTOCOL_VERSION, type: "tool_log", correlation_id: correlationId, level: log.level, message: log.message }) };
}

/** A log entry's call and message; null for an entry that is not one, or is malformed. */
export function decodeLog(fields: EntryFields): { correlationId: string; log: ToolLog } | null {
  const raw = fields[PROGRESS_FIELD];
  if (raw === undefined) return null;
  const parsed = parseJson(logBody, raw.toString());
  if (!parsed.ok) return null;
  return { correlationId: parsed.value.correlation_id, log: { level: parsed.value.level, message: parsed.value.message } };
}
