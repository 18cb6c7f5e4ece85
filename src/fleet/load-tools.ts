import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import type { Permissions } from "../core/registry.js";
import { TOOL_NAME_PATTERN, type ToolDefinition } from "../core/tool.js";
import { ToolfleetError } from "../core/errors.js";

export interface ToolModule {
  tools: ToolDefinition[];
  permissions: Permissions;
}

const permissionsSchema = z.record(z.string().regex(TOOL_NAME_PATTERN, "a tool name"), z.array(z.string().min(1).max(200)));

/**
 * Loads a module of tools: it exports `tools` (or a default export) as an
 * array of `defineTool(...)` results, and optionally `permissions`.
 * Without a path, the example tools.
 */
export async function loadToolModule(path?: string): Promise<ToolModule> {
  const url = path ? pathToFileURL(resolve(path)).href : new URL("../../examples/tools.js", import.meta.url).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new ToolfleetError("TOOL_MODULE_INVALID", `cannot load the tools module ${path ?? url}: ${(err as Error).message}`, { cause: err });
  }
  const tools = mod.tools ?? mod.exampleTools ?? mod.default;
  if (!Array.isArray(tools) || !tools.every(isToolDefinition)) {
    throw new ToolfleetError(
      "TOOL_MODULE_INVALID",
      `the tools module ${path ?? url} must export 'tools' (or a default export): an array of defineTool(...) results`,
    );
  }
  const rawPermissions = mod.permissions ?? mod.examplePermissions ?? {};
  const permissions = permissionsSchema.safeParse(rawPermissions);
  if (!permissions.success)
    throw new ToolfleetError("TOOL_MODULE_INVALID", `the 'permissions' export of ${path ?? url} must map tool names to arrays of user ids`);
  return { tools, permissions: permissions.data };
}

/** Reads a permissions file: a JSON object from tool name to user ids (`"*"` for everyone). */
export function loadPermissionsFile(file: string): Permissions {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ToolfleetError("CONFIG_INVALID", `cannot read the permissions file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const checked = permissionsSchema.safeParse(data);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new ToolfleetError(
      "CONFIG_INVALID",
      `the permissions file ${file} is invalid at '${issue?.path.join(".") ?? ""}': expected ${issue?.message ?? "?"}`,
    );
  }
  return checked.data;
}

function isToolDefinition(value: unknown): value is ToolDefinition {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === "string" && typeof v.handler === "function" && typeof v.validate === "function" && typeof v.parameters === "object";
}
