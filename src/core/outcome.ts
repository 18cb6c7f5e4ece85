import type { StructuredResult } from "./result.js";
import { reasonText } from "./errors.js";
/**
 * How a tool call ended, as a value. Every registry's `execute()` returns a
 * `CallOutcome`; its `kind` also travels in replies, so a caller on another
 * tier (or the CLI, for its exit code) never has to read `text`, which is
 * written for the model.
 */
export const OUTCOME_KINDS = ["ok", "error", "denied", "invalid_args", "unknown_tool", "timeout", "cancelled", "unavailable", "background"] as const;
export type OutcomeKind = (typeof OUTCOME_KINDS)[number];

/** Where a call ran: here, on the gateway, on the tools service, here after the tools service failed, or here with a remote mirror. */
export type Route = "local" | "gateway" | "remote" | "fallback" | "shadow";

export interface CallOutcome {
  kind: OutcomeKind;
  /** What the model sees. */
  text: string;
  route: Route;
  durationMs: number;
  /** Set when `kind` is `background`: the task to ask `get_task_result` about. */
  taskId?: string;
  /** The whole result, when the tool returned a structured one (content parts, structured content, isError); `text` is what the model reads of it. */
  result?: StructuredResult;
}

const KINDS: ReadonlySet<string> = new Set(OUTCOME_KINDS);

/** A kind read from the wire; unknown ones are left out (a newer peer's kinds), older names mapped. */
export function parseOutcomeKind(value: string): OutcomeKind | undefined {
  if (KINDS.has(value)) return value as OutcomeKind;
  return value === "gateway_unavailable" ? "unavailable" : undefined;
}

/** True for the kinds that are a failure: everything but `ok` and `background`. */
export function isFailure(kind: OutcomeKind): boolean {
  return kind !== "ok" && kind !== "background";
}

export function permissionDenied(userId: string, toolName: string): string {
  return `Permission denied: user '${userId}' is not allowed to run tool '${toolName}'.`;
}

export function cancelled(toolName: string, reason: unknown): string {
  return `Tool '${toolName}' was cancelled: ${reasonText(reason)}`;
}

export function unknownTool(toolName: string): string {
  return `Unknown tool '${toolName}': no tool of that name is registered.`;
}

/** No live worker serves the tool's tier (`who`: "tools worker", "gateway"), so the call was not sent. */
export function noLiveWorker(toolName: string, who: string): string {
  return `Tool '${toolName}' is unavailable: no ${who} is running to serve it. Try again later.`;
}

export function gatewayUnavailable(toolName: string): string {
  return `Tool '${toolName}' requires the gateway client, which is unavailable.`;
}

export function unavailable(toolName: string): string {
  return `Tool '${toolName}' is temporarily unavailable (tools service error). Try again.`;
}

/** A call whose request a restarted Redis lost: no reply will come, and it cannot be told whether the tool ran. */
export function lostInRestart(toolName: string): string {
  return `Tool '${toolName}' is unavailable: the tools service's Redis restarted while the call was in flight, so it may or may not have run. Check before trying again.`;
}

export function staleTwice(toolName: string): string {
  return `Tool '${toolName}' could not run: the tools service still disagrees about its parameters after a catalog reload. Try again shortly.`;
}

/** The outcome kind of a worker's refusal, by its wire error code (docs/protocol.md §3.5). */
export function kindOfWireCode(code: string | undefined): OutcomeKind {
  switch (code) {
    case "UNAUTHENTICATED":
      return "denied";
    case "EXPIRED":
      return "timeout";
    case "CATALOG_STALE":
      return "unavailable";
    default:
      return "error";
  }
}
