import type { Logger } from "../../src/index.js";

export interface LogRecord {
  level: "debug" | "info" | "warn" | "error";
  fields: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps what it was told, so tests can assert on log lines. */
export class RecordingLogger implements Logger {
  readonly records: LogRecord[] = [];
  debug(fields: object, msg: string): void {
    this.records.push({ level: "debug", fields: fields as Record<string, unknown>, msg });
  }
  info(fields: object, msg: string): void {
    this.records.push({ level: "info", fields: fields as Record<string, unknown>, msg });
  }
  warn(fields: object, msg: string): void {
    this.records.push({ level: "warn", fields: fields as Record<string, unknown>, msg });
  }
  error(fields: object, msg: string): void {
    this.records.push({ level: "error", fields: fields as Record<string, unknown>, msg });
  }
  at(level: LogRecord["level"]): LogRecord[] {
    return this.records.filter((r) => r.level === level);
  }
}

/** Polls until `check` passes or `timeoutMs` runs out; for waiting on another process or a watcher. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000, stepMs = 10): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, stepMs));
    }
  }
}
