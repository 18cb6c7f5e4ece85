import type { CallSignal } from "./context.js";
import { errorFields, type Logger } from "./log.js";
import { cancelled } from "./outcome.js";
import type { ProgressUpdate } from "./progress.js";
import type { Rendered } from "./render.js";
import type { StructuredResult } from "./result.js";
import type { TaskManager } from "./tasks.js";

export interface WaitOptions {
  timeoutMs: number;
  /** However much progress moves the time limit on, never past this long from the start. */
  maxTotalMs: number;
  /** Past this, the call may become a background task; 0: never. */
  offloadMs: number;
  name: string;
  userId: string;
  onProgress: ((update: ProgressUpdate) => void) | undefined;
  taskManager: TaskManager | null;
  logger: Logger;
}

export interface Waited {
  kind: "ok" | "error" | "cancelled" | "timeout" | "background";
  text: string;
  taskId?: string;
  result?: StructuredResult;
}

/**
 * Waits for a running handler until it settles, times out (the call's signal
 * is aborted), is cancelled, or passes the background threshold with room in
 * the task manager (the task manager adopts it and the model gets a task id).
 * Each progress report moves the timeout to a full `timeoutMs` from now, never
 * past `maxTotalMs` from the start.
 */
export function waitForCall(settled: Promise<Rendered>, call: CallSignal, how: WaitOptions): Promise<Waited> {
  const { timeoutMs, maxTotalMs, offloadMs, name, userId, onProgress, taskManager, logger } = how;
  return new Promise((resolve) => {
    let done = false;
    const startedAt = performance.now();
    let deadline = startedAt + timeoutMs;
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      clearTimeout(offload);
      call.onProgress = undefined;
      call.onAbort = undefined;
      return true;
    };
    const expire = (): void => {
      // Moved by progress since the timer was set: wait out the rest.
      const left = deadline - performance.now();
      if (left >= 1) {
        timer = setTimeout(expire, left);
        return;
      }
      if (!finish()) return;
      // Extended by progress: how long it ran in all; else its timeout, as given.
      const seconds = Math.round(extended ? performance.now() - startedAt : timeoutMs) / 1000;
      const why = extended ? ` (no progress for ${Math.round(timeoutMs) / 1000}s, or past its ${Math.round(maxTotalMs) / 1000}s in all)` : "";
      call.abort(new Error(`timed out after ${seconds}s`));
      resolve({ kind: "timeout", text: `Tool '${name}' timed out after ${seconds}s${why}.` });
    };
    let timer = setTimeout(expire, timeoutMs);
    let extended = false;
    call.onProgress = (update) => {
      extended = true;
      deadline = Math.min(performance.now() + timeoutMs, startedAt + maxTotalMs);
      try {
        onProgress?.(update);
      } catch (err) {
        logger.warn({ tool: name, ...errorFields(err) }, "onProgress threw; the call goes on");
      }
    };
    call.onAbort = (reason) => {
      if (finish()) resolve({ kind: "cancelled", text: cancelled(name, reason) });
    };
    const offload =
      offloadMs > 0 && offloadMs < timeoutMs
        ? setTimeout(() => {
            const tasks = taskManager;
            // Full: keep waiting in the foreground rather than drop the call.
            if (!tasks?.hasCapacity() || !finish()) return;
            const taskId = tasks.adopt(name, userId, settled, call);
            resolve({
              kind: "background",
              taskId,
              text: `Tool '${name}' is still running, so it continues in the background as task ${taskId}. Fetch its result later with get_task_result (task_id "${taskId}").`,
            });
          }, offloadMs)
        : undefined;
    void settled.then(({ ok, text, cancelled, result }) => {
      if (!finish()) return;
      const out: { kind: "ok" | "error" | "cancelled"; text: string; result?: StructuredResult } = {
        kind: ok ? "ok" : cancelled ? "cancelled" : "error",
        text,
      };
      if (result) out.result = result;
      resolve(out);
    });
  });
}
