/**
 * toolfleet's one error family. A `ToolfleetError` has a string `code` and a
 * `retryable` flag; the codes in `WIRE_ERROR_CODES` also cross processes as a
 * `WireError` object in replies (docs/protocol.md), and come back as the same
 * error on the other side (`fromWire`), so no caller matches English text.
 */

/** Codes that cross the wire: stable, a peer in another language may branch on them. */
export const WIRE_ERROR_CODES = [
  "UNAUTHENTICATED",
  "INVALID_REQUEST",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_VERSION",
  "DEAD_LETTER",
  "CATALOG_STALE",
  "EXPIRED",
  "INTERNAL",
] as const;
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/** Codes of errors raised and handled within one process. */
export type LocalErrorCode =
  | "CONFIG_INVALID"
  | "PIN_SETS_OVERLAP"
  | "TOOL_NAME_INVALID"
  | "TOOL_DEFINITION_INVALID"
  | "TOOL_DUPLICATE"
  | "TOOL_MODULE_INVALID"
  | "CALL_OPTIONS_INVALID"
  | "ID_INVALID"
  | "CATALOG_INVALID"
  | "RECORD_INVALID"
  | "REDIS_REPLY_INVALID"
  | "NOT_STARTED"
  | "TIMEOUT"
  | "STOPPED"
  | "PUBLISH_FAILED"
  | "GATEWAY_UNAVAILABLE"
  | "ADDRESS_IN_USE"
  | "REDIS_UNAVAILABLE"
  | "REDIS_CROSSSLOT"
  | "NO_LIVE_WORKER"
  | "REQUEST_LOST"
  | "WORKER_GONE"
  | "CANCELLED"
  | "PROGRESS_INVALID"
  | "RESULT_INVALID"
  | "USAGE"
  | "PLATFORM_REQUIRED"
  | "PLATFORM_REFUSED"
  | "MCP_SERVER_DOWN"
  | "MCP_CALL_FAILED";

export type ToolfleetErrorCode = WireErrorCode | LocalErrorCode;

/** An error as it travels in a reply. */
export interface WireError {
  code: WireErrorCode;
  message: string;
  /** Whether the same request may succeed if sent again. */
  retryable: boolean;
}

// Whether the same operation may succeed when tried again, per code, in one place.
const RETRYABLE: ReadonlySet<ToolfleetErrorCode> = new Set<ToolfleetErrorCode>(["CATALOG_STALE", "INTERNAL", "TIMEOUT", "STOPPED", "PUBLISH_FAILED"]);

export interface ToolfleetErrorOptions {
  cause?: unknown;
  /** @defaultValue by code: CATALOG_STALE, INTERNAL, TIMEOUT, STOPPED and PUBLISH_FAILED are retryable */
  retryable?: boolean;
  /** The idempotency key of the request the error is about, when there is one (a caller may cancel it). */
  idemKey?: string;
}

export class ToolfleetError extends Error {
  override readonly name = "ToolfleetError";
  readonly retryable: boolean;
  readonly idemKey: string | undefined;

  constructor(
    readonly code: ToolfleetErrorCode,
    message: string,
    options: ToolfleetErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable ?? RETRYABLE.has(code);
    this.idemKey = options.idemKey;
  }

  /** The error that a reply's `WireError` stands for. */
  static fromWire(error: WireError): ToolfleetError {
    return new ToolfleetError(error.code, error.message, { retryable: error.retryable });
  }
}

/** A `WireError` with the code's retryable flag. */
export function wireError(code: WireErrorCode, message: string): WireError {
  return { code, message, retryable: RETRYABLE.has(code) };
}

/** True when `err` is a ToolfleetError with one of `codes`. */
export function isToolfleetError(err: unknown, ...codes: ToolfleetErrorCode[]): err is ToolfleetError {
  return err instanceof ToolfleetError && (codes.length === 0 || codes.includes(err.code));
}

/** Longest reason a cancellation carries across the wire. */
export const MAX_REASON = 200;

/** An abort reason as one line of text (an Error's message, a string as it is), at most MAX_REASON characters. */
export function reasonText(reason: unknown): string {
  const text =
    reason instanceof Error ? reason.message : reason === undefined ? "cancelled by the caller" : typeof reason === "string" ? reason : JSON.stringify(reason);
  return text.slice(0, MAX_REASON);
}

/**
 * A rejected promise of whatever a function that returns promises without being async threw, as an
 * async function would have made it (no wrapping: the error stays what it was).
 */
export function rejected(err: unknown): Promise<never> {
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passed on as thrown, like an async function's throw
  return Promise.reject(err);
}
