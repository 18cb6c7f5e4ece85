import { ToolfleetError } from "./errors.js";

/**
 * The longest a call may wait: 2,000,000 s, as `toolsExecTimeout` allows. Node's timers
 * hold at most 2^31-1 ms; a longer delay fires after 1 ms, which would time a call out at once.
 */
export const MAX_CALL_TIMEOUT_MS = 2_000_000_000;

/** A call's timeout, checked: throws a ToolfleetError naming `where` for one that is not a usable number of milliseconds. */
export function checkedTimeoutMs(timeoutMs: number, where: string): number {
  if (typeof timeoutMs !== "number" || !(timeoutMs > 0 && timeoutMs <= MAX_CALL_TIMEOUT_MS)) {
    throw new ToolfleetError(
      "CALL_OPTIONS_INVALID",
      `${where}: timeoutMs must be a number of milliseconds > 0 and at most ${MAX_CALL_TIMEOUT_MS}, got ${String(timeoutMs)}`,
    );
  }
  return timeoutMs;
}
