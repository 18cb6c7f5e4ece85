import { z } from "zod";
import type { TaskManager } from "./tasks.js";
import { defineTool, type ToolDefinition } from "./tool.js";
import { ToolfleetError } from "./errors.js";

/**
 * The tools through which the model reads back background tasks. They take
 * the task manager lazily, so they follow a registry whose manager is swapped.
 */
export function taskTools(taskManager: () => TaskManager | null): ToolDefinition[] {
  const manager = (): TaskManager => {
    const tm = taskManager();
    if (!tm) throw new ToolfleetError("NOT_STARTED", "background tasks are not enabled on this registry");
    return tm;
  };
  return [
    defineTool({
      name: "get_task_result",
      description: "Fetch the status and, once finished, the result of a background task by its id.",
      parameters: z.object({ task_id: z.string().min(1).describe("The task id returned when the task started") }),
      noBackground: true,
      allowRepeat: true,
      annotations: { readOnly: true },
      handler: async ({ task_id }, ctx) => {
        const task = await manager().getTaskResult(task_id);
        // Another user's task is reported as unknown, not as forbidden, so ids leak nothing.
        if (!task || task.userId !== ctx.userId) return `No task with id '${task_id}'.`;
        if (task.status === "running") return `Task ${task.id} (${task.tool}) is still running.`;
        return `Task ${task.id} (${task.tool}) ${task.status === "done" ? "finished" : "failed"}: ${task.result ?? ""}`;
      },
    }),
    defineTool({
      name: "list_tasks",
      description: "List the caller's background tasks, newest first, with their status.",
      parameters: z.object({}),
      noBackground: true,
      allowRepeat: true,
      annotations: { readOnly: true },
      handler: async (_args, ctx) => {
        // Always one user's: an empty user id sees only tasks started without one.
        const tasks = await manager().listTasks(ctx.userId);
        return tasks.map(({ id, tool, status, startedAt }) => ({ id, tool, status, startedAt: new Date(startedAt).toISOString() }));
      },
    }),
  ];
}
