import type { ConfigSource } from "../config/live.js";
import type { Logger } from "../core/log.js";
import { ToolRegistry } from "../core/registry.js";
import { taskTools } from "../core/task-tools.js";
import { TaskManager, type TaskStore } from "../core/tasks.js";
import { loadToolModule, type ToolModule } from "./load-tools.js";

/**
 * A registry of a module's tools and permissions, plus the task tools (unless
 * the module has its own). Task results go to `taskStore` (default: memory).
 */
export function registryFor(module: ToolModule, config: ConfigSource, logger: Logger, taskStore?: TaskStore): ToolRegistry {
  const registry = new ToolRegistry({ config, logger, taskManager: taskManagerFor(config, logger, taskStore) });
  const own = new Set(module.tools.map((t) => t.name));
  registry.register(...module.tools, ...taskTools(() => registry.taskManager).filter((t) => !own.has(t.name)));
  registry.setPermissions(module.permissions);
  return registry;
}

/** Background tasks, their records in `taskStore` (default: memory). */
export function taskManagerFor(config: ConfigSource, logger: Logger, taskStore?: TaskStore): TaskManager {
  return new TaskManager({ config, logger, ...(taskStore ? { store: taskStore } : {}) });
}

/** The registry the CLI runs by default: the example tools. */
export async function exampleRegistry(config: ConfigSource, logger: Logger): Promise<ToolRegistry> {
  return registryFor(await loadToolModule(), config, logger);
}
