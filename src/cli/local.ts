import { examplePermissions, exampleTools } from "../../examples/tools.js";
import type { ConfigSource } from "../config/live.js";
import type { Logger } from "../core/log.js";
import { ToolRegistry } from "../core/registry.js";
import { taskTools } from "../core/task-tools.js";

/** The registry the CLI runs in process: the example tools, their permissions, and the task tools. */
export function exampleRegistry(config: ConfigSource, logger: Logger): ToolRegistry {
  const registry = new ToolRegistry({ config, logger });
  registry.register(...exampleTools, ...taskTools(() => registry.taskManager));
  registry.setPermissions(examplePermissions);
  return registry;
}
