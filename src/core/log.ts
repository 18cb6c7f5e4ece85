import { destination, pino } from "pino";

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

/**
 * JSON lines on stderr. Synchronous writes, so the line explaining a crash is
 * not lost with the process. Level from TOOLFLEET_LOG_LEVEL (default "info").
 */
export function createLogger(name = "toolfleet", level = process.env.TOOLFLEET_LOG_LEVEL ?? "info"): Logger {
  if (!LEVELS.has(level)) {
    throw new Error(`TOOLFLEET_LOG_LEVEL: expected one of ${[...LEVELS].join(", ")}, got '${level}'`);
  }
  return pino({ name, level }, destination({ fd: 2, sync: true }));
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
