import { z } from "zod";
import { ToolfleetError } from "./errors.js";
import type { ToolContext } from "./context.js";
import { compileValidator, type ArgsValidator, type JsonSchema } from "./validate.js";

/** What a tool may return: text for the model, or an object that becomes JSON. */
export type ToolResult = string | object;

export type ToolHandler<Args> = (args: Args, ctx: ToolContext) => ToolResult | Promise<ToolResult>;

/** Hints about a tool's effects (as in MCP); the router uses them to decide what is safe to retry or mirror. */
export interface ToolAnnotations {
  /** The tool changes nothing outside itself. */
  readOnly?: boolean;
  /** Running it twice with the same arguments has the effect of running it once. */
  idempotent?: boolean;
  /** It may destroy or overwrite something. */
  destructive?: boolean;
}

interface ToolSpecBase {
  /** OpenAI function-name rules: 1–64 characters of `a-z A-Z 0-9 _ -`. */
  name: string;
  description: string;
  /** The model may call this tool again with identical arguments in one loop. @defaultValue false */
  allowRepeat?: boolean;
  /** Never offload this tool to a background task, however long it runs. @defaultValue false */
  noBackground?: boolean;
  annotations?: ToolAnnotations;
}

export interface ZodToolSpec<S extends z.ZodType> extends ToolSpecBase {
  parameters: S;
  handler: ToolHandler<z.output<S>>;
}

export interface JsonSchemaToolSpec extends ToolSpecBase {
  parameters: JsonSchema;
  handler: ToolHandler<Record<string, unknown>>;
}

/**
 * A tool ready to register: its name, its JSON Schema (what the model and the
 * catalog see), a validator compiled once, and the handler.
 */
export interface ToolDefinition {
  readonly name: string;
  readonly description: string;
  readonly parameters: JsonSchema;
  readonly allowRepeat: boolean;
  readonly noBackground: boolean;
  readonly annotations: Readonly<ToolAnnotations>;
  readonly validate: ArgsValidator;
  readonly handler: ToolHandler<never>;
}

/** OpenAI's function-name rule, the one rule for a tool name everywhere in toolfleet. */
export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function assertToolName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !TOOL_NAME_PATTERN.test(name)) {
    throw new ToolfleetError("TOOL_NAME_INVALID", `Invalid tool name ${JSON.stringify(name)}: use 1-64 characters of letters, digits, '_' and '-'.`);
  }
}

export function defineTool<S extends z.ZodType>(spec: ZodToolSpec<S>): ToolDefinition;
export function defineTool(spec: JsonSchemaToolSpec): ToolDefinition;
export function defineTool(spec: ZodToolSpec<z.ZodType> | JsonSchemaToolSpec): ToolDefinition {
  assertToolName(spec.name);
  if (typeof spec.description !== "string") {
    throw new ToolfleetError("TOOL_DEFINITION_INVALID", `Tool '${spec.name}': description must be a string.`);
  }
  if (typeof spec.handler !== "function") {
    throw new ToolfleetError("TOOL_DEFINITION_INVALID", `Tool '${spec.name}': handler must be a function.`);
  }
  assertNotZod3(spec.name, spec.parameters);
  const { schema, validate } = compileParameters(spec.name, spec.parameters);
  return Object.freeze({
    name: spec.name,
    description: spec.description,
    parameters: schema,
    allowRepeat: spec.allowRepeat ?? false,
    noBackground: spec.noBackground ?? false,
    annotations: Object.freeze({ ...spec.annotations }),
    validate,
    handler: spec.handler,
  });
}

/**
 * A zod 3 schema (a project that installed zod 3, or imports "zod/v3") is not a zod 4 `ZodType`, so it
 * would be read as a JSON Schema and refused for a reason that points nowhere near the fix. Zod 3 objects
 * carry `_def.typeName` ("ZodObject"); zod 4's carry `_zod` instead.
 */
function assertNotZod3(name: string, parameters: unknown): void {
  if (parameters === null || typeof parameters !== "object" || "_zod" in parameters) return;
  const def = (parameters as { _def?: unknown })._def;
  const typeName = typeof def === "object" && def !== null ? (def as { typeName?: unknown }).typeName : undefined;
  if (typeof typeName !== "string") return;
  throw new ToolfleetError(
    "TOOL_DEFINITION_INVALID",
    `Tool '${name}': parameters is a zod 3 schema (${typeName}), and toolfleet needs zod 4: run npm install zod@^4 and import { z } from "zod" ` +
      `(not "zod/v3"), or give parameters as a JSON Schema object.`,
  );
}

function compileParameters(name: string, parameters: z.ZodType | JsonSchema): { schema: JsonSchema; validate: ArgsValidator } {
  try {
    if (parameters instanceof z.ZodType) {
      // The model sees what it must send (the input side), without the dialect tag.
      const schema = z.toJSONSchema(parameters, { target: "draft-7", io: "input" }) as JsonSchema;
      delete schema.$schema;
      if (schema.type !== "object") throw new ToolfleetError("TOOL_DEFINITION_INVALID", "a zod parameters schema must be z.object(...)");
      return { schema, validate: compileValidator(parameters) };
    }
    if (parameters === null || typeof parameters !== "object" || parameters.type !== "object") {
      throw new ToolfleetError("TOOL_DEFINITION_INVALID", 'a JSON Schema for parameters must have type "object"');
    }
    return { schema: parameters, validate: compileValidator(parameters) };
  } catch (err) {
    throw new ToolfleetError("TOOL_DEFINITION_INVALID", `Tool '${name}': invalid parameters schema: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}
