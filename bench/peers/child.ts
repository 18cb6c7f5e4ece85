// The process plumbing every peer shares: the peer's server/worker runs in its own
// Node process (so its event loop and GC don't share a core's time slices with the
// caller's, as a real deployment wouldn't), started with `fork` and driven over the
// IPC channel. One rule both sides follow: the parent closing the IPC channel means
// "shut down"; the child cleans up and must then exit on its own.
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

/** What a child sends once it can take calls. `port` is for peers that listen on one. */
export interface ReadyMessage {
  ready: true;
  port?: number;
  /** Processes of its own that do part of its work (their CPU is counted with its). */
  pids?: number[];
}

const isReady = (m: unknown): m is ReadyMessage => typeof m === "object" && m !== null && (m as { ready?: unknown }).ready === true;

// ---- parent side ----

/** Forks `file` (a compiled .js next to the caller) with `config` as JSON in argv[2]; resolves on its ready message. */
export async function forkWorker(file: URL, config: object, timeoutMs = 15_000): Promise<{ child: ChildProcess; ready: ReadyMessage }> {
  // The parent's own Node flags are passed on, but not --input-type (it makes a child
  // that runs a file fail), which `node --input-type=module -e` callers would pass.
  const execArgv = process.execArgv.filter((a) => !a.startsWith("--input-type"));
  const child = fork(fileURLToPath(file), [JSON.stringify(config)], { stdio: "inherit", execArgv });
  try {
    const ready = await new Promise<ReadyMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${file.pathname}: not ready after ${timeoutMs} ms`)), timeoutMs);
      child.on("message", (m) => {
        if (isReady(m)) {
          clearTimeout(timer);
          resolve(m);
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${file.pathname}: exited before ready (code ${code}, signal ${signal})`));
      });
    });
    return { child, ready };
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
}

/** Asks the child to shut down (by closing IPC) and waits for it to exit; kills it if it hangs. */
export async function stopWorker(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  if (child.connected) child.disconnect();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code, signal] = await exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`peer child exited with code ${code}, signal ${signal}`);
}

// ---- child side ----

/** The JSON config the parent passed in argv[2]. The cast is the trust boundary: both ends are ours. */
export function readConfig<T>(): T {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error("expected the peer config as JSON in argv[2] (start this file via forkWorker)");
  return JSON.parse(raw) as T;
}

export function signalReady(extra: Omit<ReadyMessage, "ready"> = {}): void {
  if (!process.send) throw new Error("not started with an IPC channel (use forkWorker)");
  process.send({ ready: true, ...extra } satisfies ReadyMessage);
}

/**
 * Runs `cleanup` when the parent closes IPC (or dies). After it the process must exit by
 * itself; if a library leaks a handle we say so and force exit(1) after `graceMs`, so a
 * leak shows up as a failed close() in the parent instead of a hang.
 */
export function onStop(cleanup: () => Promise<void>, graceMs = 5_000): void {
  process.once("disconnect", () => {
    setTimeout(() => {
      console.error(`peer child ${process.pid}: still alive ${graceMs} ms after cleanup:`, process.getActiveResourcesInfo());
      process.exit(1);
    }, graceMs).unref();
    cleanup().catch((err: unknown) => {
      console.error(`peer child ${process.pid}: cleanup failed:`, err);
      process.exit(1);
    });
  });
}
