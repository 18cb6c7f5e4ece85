import { destination, pino, type DestinationStream } from "pino";

/**
 * The logging port every module takes. pino's logger satisfies it; tests pass
 * a recorder. Fields first, message second, as pino expects.
 */
export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

const LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/** `json`: one JSON object a line, for log collectors. `pretty`: a short line a person reads in a terminal. */
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * The format logs are written in: TOOLFLEET_LOG_FORMAT when set (blank counts
 * as unset, as in the config), else pretty on a terminal and JSON otherwise,
 * so a pipe or a log collector always gets JSON.
 */
export function logFormat(setting = process.env.TOOLFLEET_LOG_FORMAT, isTTY = process.stderr.isTTY === true): LogFormat {
  const value = setting?.trim();
  if (!value) return isTTY ? "pretty" : "json";
  if (!(LOG_FORMATS as readonly string[]).includes(value)) throw new Error(`TOOLFLEET_LOG_FORMAT: expected json or pretty, got '${value}'`);
  return value as LogFormat;
}

// Field names that hold a secret, wherever a caller puts one by mistake (one level deep too):
// the config's own secrets are already kept out of messages (src/config/schema.ts); this is the net under that.
const SECRET_FIELDS = ["llmApiKey", "webSecret", "fleetSecret", "discordToken", "apiKey", "password", "authorization", "secret", "token"];
const REDACT = { paths: SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]), censor: "***" };

export interface LoggerOptions {
  /** @defaultValue `logFormat()`: TOOLFLEET_LOG_FORMAT, else by whether stderr is a terminal */
  format?: LogFormat;
  /** Where each line goes. @defaultValue stderr, written synchronously */
  write?: (line: string) => void;
  /** Colour the level of a pretty line. @defaultValue when stderr is a terminal and NO_COLOR is not set */
  color?: boolean;
}

/**
 * Log lines on stderr, JSON or pretty (see `logFormat`). Synchronous writes,
 * so the line explaining a crash is not lost with the process. Level from
 * TOOLFLEET_LOG_LEVEL (default "info").
 */
export function createLogger(name = "toolfleet", level = process.env.TOOLFLEET_LOG_LEVEL ?? "info", options: LoggerOptions = {}): Logger {
  if (!LEVELS.has(level)) {
    throw new Error(`TOOLFLEET_LOG_LEVEL: expected one of ${[...LEVELS].join(", ")}, got '${level}'`);
  }
  const format = options.format ?? logFormat();
  const stderr = options.write ? undefined : destination({ fd: 2, sync: true });
  const write = options.write ?? ((line: string) => void stderr?.write(line));
  const pinoOptions = { name, level, redact: REDACT };
  if (format === "json") return pino(pinoOptions, stderr ?? { write });
  const color = options.color ?? (!options.write && process.stderr.isTTY === true && !process.env.NO_COLOR);
  return pino(pinoOptions, prettyDestination(write, { color, stacks: level === "debug" || level === "trace" }));
}

export interface PrettyOptions {
  /** Colour the level (ANSI). @defaultValue false */
  color?: boolean;
  /** Print an error's stack under its line. @defaultValue false: the message alone */
  stacks?: boolean;
}

/**
 * A pino destination that turns each JSON line into a pretty one and hands it
 * to `write`, in this thread: no transport worker, no extra dependency.
 */
export function prettyDestination(write: (line: string) => void, options: PrettyOptions = {}): DestinationStream {
  return { write: (json: string) => write(formatPretty(json, options)) };
}

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const LEVEL_COLORS: Record<number, string> = { 10: "90", 20: "90", 30: "32", 40: "33", 50: "31", 60: "35" };
// pino's own fields, shown in the line's head or not at all.
const HEAD_FIELDS = new Set(["level", "time", "pid", "hostname", "name", "msg"]);
const MAX_FIELDS = 8;
const MAX_VALUE = 80;

/**
 * One pino JSON line as `12:04:05.123 WARN  toolfleet.tools: message key=value …\n`:
 * local time, level, logger name, message, then at most eight fields, each
 * value cut at 80 characters. A line that is not JSON passes through as it is.
 */
export function formatPretty(json: string, options: PrettyOptions = {}): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const level = typeof record.level === "number" ? record.level : 30;
  const time = new Date(typeof record.time === "number" ? record.time : Date.now());
  const clock = `${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())}.${String(time.getMilliseconds()).padStart(3, "0")}`;
  const levelName = (LEVEL_NAMES[level] ?? String(level)).padEnd(5);
  const shownLevel = options.color ? `\x1b[${LEVEL_COLORS[level] ?? "0"}m${levelName}\x1b[0m` : levelName;
  const name = typeof record.name === "string" ? ` ${record.name}:` : "";
  const fields: string[] = [];
  let stack: string | undefined;
  for (const [key, value] of Object.entries(record)) {
    if (HEAD_FIELDS.has(key)) continue;
    if (key === "err" && value !== null && typeof value === "object") {
      const err = value as { message?: unknown; stack?: unknown };
      fields.push(`err=${show(err.message ?? value)}`);
      if (options.stacks && typeof err.stack === "string") stack = err.stack;
      continue;
    }
    fields.push(`${key}=${show(value)}`);
  }
  const extra = fields.length > MAX_FIELDS ? [...fields.slice(0, MAX_FIELDS), `(+${fields.length - MAX_FIELDS} more)`] : fields;
  const msg = typeof record.msg === "string" ? record.msg : "";
  const line = [`${clock} ${shownLevel}${name}`, msg, ...extra].filter((part) => part !== "").join(" ");
  return `${line}\n${stack ? `${stack.replace(/^/gm, "    ")}\n` : ""}`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

// A bare word stays bare; anything with spaces, quotes or structure is shown as JSON, so a line splits on spaces unambiguously.
function show(value: unknown): string {
  const text = typeof value === "string" && /^[\w.:/@+-]+$/.test(value) ? value : (JSON.stringify(value) ?? String(value));
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}

/** A logger that drops everything; for callers that explicitly want silence. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Turns any thrown value into fields a log line can carry, stack included. */
export function errorFields(err: unknown): { err: { message: string; stack?: string } } {
  if (err instanceof Error) return { err: { message: err.message, ...(err.stack ? { stack: err.stack } : {}) } };
  return { err: { message: String(err) } };
}
