import { ToolfleetError } from "../core/errors.js";
import type { McpNotices } from "./notices.js";
import type { McpCaller } from "./server.js";

/**
 * `notifications/cancelled` across replicas (docs/mcp.md, "Scaling out"): the POST that carries it
 * may reach another replica than the one running the call, so every replica publishes the notice
 * and aborts the matching call it runs, if any. A session id is bound to its user
 * (src/mcp/auth.ts), so a notice names calls of that user only.
 */
export class CancelRelay {
  private readonly running = new Map<string, AbortController>();

  constructor(private readonly notices: McpNotices) {
    notices.listen((notice) => {
      if (notice.kind !== "cancel") return;
      // Another replica runs it, or it has ended: nothing here.
      for (const { key, reason } of notice.calls)
        this.running.get(key)?.abort(new ToolfleetError("CANCELLED", reason === "" ? "cancelled by the MCP client" : reason));
    });
  }

  /**
   * A call's signal: aborted by the client's (its connection), or by a notice from any replica, with
   * the reason of the first. The client's is forwarded by a listener that done() removes, which costs
   * less per call than `AbortSignal.any` (docs/benchmarks.md, "MCP").
   */
  track(caller: McpCaller, requestId: string | number, signal: AbortSignal): { signal: AbortSignal; done: () => void } {
    const key = keyOf(caller, requestId);
    const controller = new AbortController();
    this.running.set(key, controller);
    const forward = (): void => controller.abort(signal.reason);
    if (signal.aborted) forward();
    else signal.addEventListener("abort", forward, { once: true });
    return {
      signal: controller.signal,
      done: () => {
        signal.removeEventListener("abort", forward);
        if (this.running.get(key) === controller) this.running.delete(key);
      },
    };
  }

  /** Tells every replica (this one too), in one notice, that the client cancelled these requests (one request's, at most the SDK's batch). */
  cancel(caller: McpCaller, cancels: readonly { requestId: string | number; reason: string }[]): Promise<void> {
    const calls = cancels.map(({ requestId, reason }) => ({ key: keyOf(caller, requestId), reason: reason.slice(0, 200) }));
    return this.notices.publish({ kind: "cancel", calls });
  }
}

function keyOf(caller: McpCaller, requestId: string | number): string {
  // Without a session (a client that sends none), the user's own calls: request ids are the client's.
  return `${caller.session ?? `user:${caller.user}`}\u0000${typeof requestId}:${String(requestId)}`;
}
