import { randomUUID } from "node:crypto";
import type { SettingsSource } from "./settings.js";
import { errorFields, type Logger } from "./log.js";

export type TaskStatus = "running" | "done" | "error";

/** A background task as any tier can read it back. */
export interface TaskRecord {
  id: string;
  tool: string;
  userId: string;
  status: TaskStatus;
  /** The tool's result text once done, or the error text once failed. */
  result?: string;
  startedAt: number;
  finishedAt?: number;
}

/** Where task records live: this process by default, Redis so every tier can read them. */
export interface TaskStore {
  put(record: TaskRecord, ttlSeconds: number): Promise<void>;
  get(id: string): Promise<TaskRecord | null>;
  /** Newest first; only this user's when a user id is given. */
  list(userId?: string): Promise<TaskRecord[]>;
  close?(): Promise<void>;
}

/**
 * Records in a Map with an expiry each. Bounded twice: expired records go on
 * every write, and past `maxRecords` the oldest go too.
 */
export class MemoryTaskStore implements TaskStore {
  private readonly records = new Map<string, { record: TaskRecord; expiresAt: number }>();

  constructor(private readonly maxRecords = 10_000) {}

  put(record: TaskRecord, ttlSeconds: number): Promise<void> {
    const now = Date.now();
    this.records.delete(record.id); // re-insert so Map order stays oldest-first
    this.records.set(record.id, { record: { ...record }, expiresAt: now + ttlSeconds * 1000 });
    // Oldest first: drop what has expired, and whatever is over the cap.
    for (const [id, entry] of this.records) {
      if (this.records.size <= this.maxRecords && entry.expiresAt > now) break;
      this.records.delete(id);
    }
    return Promise.resolve();
  }

  get(id: string): Promise<TaskRecord | null> {
    const entry = this.records.get(id);
    if (!entry || entry.expiresAt <= Date.now()) return Promise.resolve(null);
    return Promise.resolve({ ...entry.record });
  }

  list(userId?: string): Promise<TaskRecord[]> {
    const now = Date.now();
    const out: TaskRecord[] = [];
    for (const { record, expiresAt } of this.records.values()) {
      if (expiresAt > now && (userId === undefined || record.userId === userId)) out.push({ ...record });
    }
    return Promise.resolve(out.sort((a, b) => b.startedAt - a.startedAt));
  }
}

/** How long a task's handler has to give up after its abort, before its slot is taken back. */
const GIVE_UP_AFTER_ABORT_MS = 1000;

/** What the task manager needs of a running call: a way to stop it. */
export interface Abortable {
  abort(reason: unknown): void;
}

export interface TaskManagerOptions {
  config: SettingsSource;
  logger: Logger;
  /** @defaultValue a MemoryTaskStore */
  store?: TaskStore;
}

/**
 * Runs the tail of tool calls that outlived the background threshold. The
 * caller has already returned a task id to the model; the result lands in the
 * store when the handler settles. At most `taskMaxRunning` run at once.
 */
export class TaskManager {
  readonly store: TaskStore;
  private readonly config: SettingsSource;
  private readonly logger: Logger;
  private readonly running = new Map<string, { abort: Abortable; done: Promise<void>; stopTimers: () => void }>();

  constructor(options: TaskManagerOptions) {
    this.config = options.config;
    this.logger = options.logger;
    this.store = options.store ?? new MemoryTaskStore();
  }

  get runningCount(): number {
    return this.running.size;
  }

  hasCapacity(): boolean {
    return this.running.size < this.config.get().taskMaxRunning;
  }

  /**
   * Adopts a call still in flight. `outcome` must settle with the text the
   * model would have seen (failures included: they are results too).
   */
  adopt(tool: string, userId: string, outcome: Promise<{ ok: boolean; text: string }>, abort: Abortable): string {
    const cfg = this.config.get();
    const id = randomUUID();
    const startedAt = Date.now();
    const runningTtl = cfg.taskTimeout + cfg.taskResultTtl;
    const base: TaskRecord = { id, tool, userId, status: "running", startedAt };
    let deadline: NodeJS.Timeout | undefined;
    // Past its time the task is aborted, and a handler that ignores the abort is given up on
    // a moment later, so it can never hold a slot (or close()) forever.
    const givenUp = new Promise<{ ok: boolean; text: string }>((resolve) => {
      deadline = setTimeout(() => {
        const reason = new Error(`background task exceeded ${cfg.taskTimeout}s`);
        abort.abort(reason);
        deadline = setTimeout(() => resolve({ ok: false, text: `Tool '${tool}' was cancelled: ${reason.message}` }), GIVE_UP_AFTER_ABORT_MS);
      }, cfg.taskTimeout * 1000);
    });
    // The time limit holds whether or not the first record is written: a store that fails
    // once must not leave the handler running unlimited and uncounted.
    const written = this.store.put(base, runningTtl).then(
      () => true,
      (err: unknown) => {
        this.logger.error({ taskId: id, tool, ...errorFields(err) }, "background task record could not be written; its outcome is stored when it ends");
        return false;
      },
    );
    const done = Promise.race([outcome, givenUp])
      .then(async ({ ok, text }) => {
        await written; // the final record must land after the first, not be overwritten by it
        await this.store.put({ ...base, status: ok ? "done" : "error", result: text, finishedAt: Date.now() }, this.config.get().taskResultTtl);
      })
      .catch((err: unknown) => this.logger.error({ taskId: id, tool, ...errorFields(err) }, "background task result could not be stored"))
      .finally(() => {
        clearTimeout(deadline);
        this.running.delete(id);
      });
    this.running.set(id, { abort, done, stopTimers: () => clearTimeout(deadline) });
    return id;
  }

  getTaskResult(id: string): Promise<TaskRecord | null> {
    return this.store.get(id);
  }

  listTasks(userId?: string): Promise<TaskRecord[]> {
    return this.store.list(userId);
  }

  /** Aborts every running task and waits until each has stored its outcome (a deaf one: at most its give-up delay). */
  async close(): Promise<void> {
    const tasks = [...this.running.values()];
    for (const task of tasks) task.abort.abort(new Error("task manager closed"));
    await Promise.race([Promise.all(tasks.map((t) => t.done)), new Promise((r) => setTimeout(r, GIVE_UP_AFTER_ABORT_MS).unref())]);
    // A handler deaf to its abort is left to itself: its time limit would keep the process alive.
    for (const task of this.running.values()) task.stopTimers();
    await this.store.close?.();
  }
}
