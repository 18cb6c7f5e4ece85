import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
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
    const where = await errorLocation(err, url);
    const what = err instanceof Error ? (err.name === "Error" ? err.message : `${err.name}: ${err.message}`) : String(err);
    throw new ToolfleetError("TOOL_MODULE_INVALID", `cannot load the tools module ${path ?? url}: ${where ? `${where}: ` : ""}${what}`, { cause: err });
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

// A stack frame in a file, `at fn (/a/b.js:3:5)` or `at file:///a/b.js:3:5`; not node's own (`node:internal/...`).
const SOURCE_FRAME = /^at (?:.* \()?((?:file:\/\/)?\/[^()\s]+?):(\d+):(\d+)\)?$/;
// toolfleet's own files (dist/src/): a frame there is the loader, not the module.
const OWN_FILES = fileURLToPath(new URL("../", import.meta.url));
const CHECK_TIMEOUT_MS = 10_000;

/**
 * Where a module failed to load, as `file:line:column`, when it can be told.
 * An error thrown while the module ran names it in its stack. A syntax error
 * does not: Node keeps the place for the message it prints when such an
 * error goes uncaught, and gives a caught one no file at all. So the import is
 * tried once more in a child process, only to read that message. The
 * module's code does not run there: ES modules are all parsed and linked
 * before any of them runs, and that is what fails. (Only a module that reaches
 * the broken one through a dynamic import() would run again, up to that
 * import; the child is bounded by a timeout.)
 */
async function errorLocation(err: unknown, url: string): Promise<string | undefined> {
  const stack = err instanceof Error ? (err.stack ?? "") : "";
  for (const line of stack.split("\n").slice(1)) {
    const m = SOURCE_FRAME.exec(line.trim());
    if (m?.[1] && !filePath(m[1]).startsWith(OWN_FILES)) return `${filePath(m[1])}:${m[2]}:${m[3]}`;
  }
  if (!(err instanceof SyntaxError)) return undefined;
  let output = "";
  try {
    await promisify(execFile)(process.execPath, [...process.execArgv, "--input-type=module", "-e", "await import(process.argv[1])", url], {
      timeout: CHECK_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    return undefined; // it loaded this time: nothing to point at
  } catch (failed) {
    const stderr = (failed as { stderr?: unknown }).stderr;
    output = typeof stderr === "string" ? stderr : "";
  }
  return syntaxErrorLocation(output);
}

/**
 * The place in Node's printout of an uncaught syntax error: a `file:line`
 * line, the source line, then carets under the bad token, which give the column.
 */
export function syntaxErrorLocation(printout: string): string | undefined {
  const lines = printout.split("\n");
  const at = lines.findIndex((l) => /^(?:file:\/\/)?\/.*:\d+$/.test(l));
  if (at === -1) return undefined;
  const head = lines[at] ?? "";
  const split = head.lastIndexOf(":");
  const where = `${filePath(head.slice(0, split))}:${head.slice(split + 1)}`;
  const caret = (lines[at + 2] ?? "").indexOf("^");
  return caret === -1 ? where : `${where}:${caret + 1}`;
}

function filePath(fileOrUrl: string): string {
  return fileOrUrl.startsWith("file://") ? fileURLToPath(fileOrUrl) : fileOrUrl;
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
