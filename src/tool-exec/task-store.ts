import { z } from "zod";
import { parseJson } from "../core/json.js";
import type { TaskRecord, TaskStore } from "../core/tasks.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";
import { ToolfleetError } from "../core/errors.js";

const record = z.object({
  id: z.string(),
  tool: z.string(),
  userId: z.string(),
  status: z.enum(["running", "done", "error"]),
  result: z.string().optional(),
  startedAt: z.number(),
  finishedAt: z.number().optional(),
});

const INDEX_HORIZON_SECONDS = 7 * 24 * 3600;

/**
 * Background task records in Redis, so any tier can read a task another tier
 * runs: one key per task with its TTL, and a sorted set of ids by start time
 * for listing (pruned as records expire).
 */
export class RedisTaskStore implements TaskStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    /** How many of the newest tasks `list` looks at. @defaultValue 1000 */
    private readonly listLimit = 1000,
  ) {}

  async put(task: TaskRecord, ttlSeconds: number): Promise<void> {
    const ttl = Math.max(1, Math.ceil(ttlSeconds));
    await this.redis
      .multi()
      .addCommand(["SET", this.keys.task(task.id), JSON.stringify(task), "EX", String(ttl)])
      .addCommand(["ZADD", this.keys.taskIndex, String(task.startedAt), task.id])
      // Bounded without Redis 7's EXPIRE GT: ids older than any record could live are dropped,
      // and an idle index expires. `list` prunes ids whose records expired sooner.
      .addCommand(["ZREMRANGEBYSCORE", this.keys.taskIndex, "-inf", String(Date.now() - INDEX_HORIZON_SECONDS * 1000)])
      .addCommand(["EXPIRE", this.keys.taskIndex, String(INDEX_HORIZON_SECONDS)])
      .exec();
  }

  async get(id: string): Promise<TaskRecord | null> {
    const raw = await this.redis.get(this.keys.task(id));
    return raw === null ? null : parse(raw, id);
  }

  async list(userId?: string): Promise<TaskRecord[]> {
    const ids = await this.redis.zRange(this.keys.taskIndex, 0, this.listLimit - 1, { REV: true });
    if (ids.length === 0) return [];
    const raws = await this.redis.mGet(ids.map((id) => this.keys.task(id)));
    const out: TaskRecord[] = [];
    const gone: string[] = [];
    raws.forEach((raw, i) => {
      const id = ids[i] as string;
      if (raw === null) gone.push(id);
      else {
        const task = parse(raw, id);
        if (userId === undefined || task.userId === userId) out.push(task);
      }
    });
    if (gone.length > 0) await this.redis.zRem(this.keys.taskIndex, gone);
    return out;
  }
}

function parse(raw: string, id: string): TaskRecord {
  const parsed = parseJson(record, raw);
  if (!parsed.ok) throw new ToolfleetError("RECORD_INVALID", `malformed task record for task '${id}': ${parsed.reason}`);
  return parsed.value;
}
