import { ToolfleetError } from "./errors.js";

/** How far a running call has got, as MCP's progress notification says it. */
export interface ProgressUpdate {
  /** Grows with each update; a fraction of `total` when that is given. */
  progress: number;
  total?: number;
  message?: string;
}

/** Longest message an update carries; longer ones are cut (it is a status line, not output). */
export const MAX_PROGRESS_MESSAGE = 500;

/** An update from a handler, checked and copied (a handler's object is not kept). */
export function checkedProgress(update: unknown): ProgressUpdate {
  const u = (typeof update === "object" && update !== null ? update : {}) as Record<string, unknown>;
  if (typeof u.progress !== "number" || !Number.isFinite(u.progress)) {
    throw new ToolfleetError("PROGRESS_INVALID", `ctx.progress(): progress must be a finite number, got ${JSON.stringify(u.progress)}`);
  }
  const out: ProgressUpdate = { progress: u.progress };
  if (u.total !== undefined) {
    if (typeof u.total !== "number" || !Number.isFinite(u.total)) {
      throw new ToolfleetError("PROGRESS_INVALID", `ctx.progress(): total must be a finite number when given, got ${JSON.stringify(u.total)}`);
    }
    out.total = u.total;
  }
  if (u.message !== undefined) {
    if (typeof u.message !== "string") throw new ToolfleetError("PROGRESS_INVALID", "ctx.progress(): message must be a string when given");
    out.message = u.message.slice(0, MAX_PROGRESS_MESSAGE);
  }
  return out;
}

/** A line for people: "3/20 fetching page 3", "40% …", or the bare number. */
export function progressLine(update: ProgressUpdate): string {
  const amount =
    update.total !== undefined && update.total > 0
      ? `${Math.round((update.progress / update.total) * 100)}% (${update.progress}/${update.total})`
      : String(update.progress);
  return update.message ? `${amount} ${update.message}` : amount;
}

/** The levels of a tool's log messages: syslog's (RFC 5424), as MCP's `notifications/message` has them. */
export const LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A log message a tool sends its caller while it runs (`ctx.log()`), as MCP's logging carries it. */
export interface ToolLog {
  level: LogLevel;
  message: string;
}

/** Longest log message carried; longer ones are cut. */
export const MAX_LOG_MESSAGE = 2000;

/** A log message from a handler, checked. */
export function checkedLog(level: unknown, message: unknown): ToolLog {
  if (typeof level !== "string" || !(LOG_LEVELS as readonly string[]).includes(level))
    throw new ToolfleetError("PROGRESS_INVALID", `ctx.log(): level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(level)}`);
  if (typeof message !== "string") throw new ToolfleetError("PROGRESS_INVALID", "ctx.log(): message must be a string");
  return { level: level as LogLevel, message: message.slice(0, MAX_LOG_MESSAGE) };
}
