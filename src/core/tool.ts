import { z } from "zod";
import { ToolfleetError } from "./errors.js";
import type { ToolContext } from "./context.js";
import { checkedTimeoutMs } from "./timeout.js";
import { compileValidator, type ArgsValidator, type JsonSchema } from "./validate.js";
import type { StructuredResult } from "./result.js";

/**
 * What a tool may return: text for the model, an object that becomes JSON (the
 * structured content, for a tool with an `outputSchema`), or a `toolResult()`.
 */
export type ToolResult = string | object | StructuredResult;

/** Where a tool must run, whatever the mode: on the gateway (it needs the live platform client) or next to the LLM. */
export type ToolPin = "gateway" | "inference";

export type ToolHandler<Args> = (args: Args, ctx: ToolContext) => ToolResult | Promise<ToolResult>;

/**
 * Hints about a tool's effects; the router uses them to decide what is safe to retry or mirror.
 * MCP's names (`readOnlyHint` …) are accepted beside toolfleet's own; `defineTool()` sets both.
 */
export interface ToolAnnotations {
  /** The tool changes nothing outside itself. */
  readOnly?: boolean;
  /** Running it twice with the same arguments has the effect of running it once. */
  idempotent?: boolean;
  /** It may destroy or overwrite something. */
  destructive?: boolean;
  readOnlyHint?: boolean;
  idempotentHint?: boolean;
  destructiveHint?: boolean;
  /** It talks to an open world (the web, other people's systems). */
  openWorldHint?: boolean;
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
  /** This tool's own time limit, milliseconds (a call's `timeoutMs` still overrides it). @defaultValue toolsExecTimeout */
  timeoutMs?: number;
  /** Run only on this tier, as if named in the configured pin set (the two must not disagree). */
  pin?: ToolPin;
  /** The shape of the structured content it returns (zod, or a JSON Schema of type object); results are checked against it. */
  outputSchema?: z.ZodType | JsonSchema;
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
  readonly timeoutMs?: number;
  readonly pin?: ToolPin;
  /** The JSON Schema of its structured content (in the catalog), and its compiled check. */
  readonly outputSchema?: JsonSchema;
  readonly validateOutput?: ArgsValidator;
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
  const def: ToolDefinition = {
    name: spec.name,
    description: spec.description,
    parameters: schema,
    allowRepeat: spec.allowRepeat ?? false,
    noBackground: spec.noBackground ?? false,
    annotations: Object.freeze(normalizeAnnotations(spec.annotations)),
    validate,
    handler: spec.handler,
  };
  // Optional members only when given: a tool without them describes (and hashes) exactly as before.
  if (spec.timeoutMs !== undefined) Object.assign(def, { timeoutMs: checkedTimeoutMs(spec.timeoutMs, `Tool '${spec.name}'`) });
  if (spec.pin !== undefined) {
    if (spec.pin !== "gateway" && spec.pin !== "inference") {
      throw new ToolfleetError("TOOL_DEFINITION_INVALID", `Tool '${spec.name}': pin must be "gateway" or "inference", got ${JSON.stringify(spec.pin)}`);
    }
    Object.assign(def, { pin: spec.pin });
  }
  if (spec.outputSchema !== undefined) {
    assertNotZod3(spec.name, spec.outputSchema);
    const output = compileSchema(spec.name, "outputSchema", spec.outputSchema, "output");
    Object.assign(def, { outputSchema: output.schema, validateOutput: output.validate });
  }
  return Object.freeze(def);
}

/** Each MCP hint and toolfleet's name for it, set together: either spelling reads the same. */
const HINTS = [
  ["readOnly", "readOnlyHint"],
  ["idempotent", "idempotentHint"],
  ["destructive", "destructiveHint"],
] as const;

export function normalizeAnnotations(given: ToolAnnotations | undefined): ToolAnnotations {
  const out: ToolAnnotations = { ...given };
  for (const [own, hint] of HINTS) {
    if (out[own] !== undefined && out[hint] !== undefined && out[own] !== out[hint]) {
      throw new ToolfleetError("TOOL_DEFINITION_INVALID", `annotations ${own} and ${hint} disagree`);
    }
    // Only toolfleet's name is filled in: a tool annotated the old way keeps its catalog hash.
    if (out[hint] !== undefined) out[own] = out[hint];
  }
  return out;
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
  return compileSchema(name, "parameters", parameters, "input");
}

function compileSchema(
  name: string,
  what: "parameters" | "outputSchema",
  given: z.ZodType | JsonSchema,
  io: "input" | "output",
): { schema: JsonSchema; validate: ArgsValidator } {
  try {
    if (given instanceof z.ZodType) {
      // Parameters: what the model must send (the input side); output: what the tool returns. No dialect tag.
      const schema = z.toJSONSchema(given, { target: "draft-7", io }) as JsonSchema;
      delete schema.$schema;
      if (schema.type !== "object") throw new ToolfleetError("TOOL_DEFINITION_INVALID", `a zod ${what} schema must be z.object(...)`);
      return { schema, validate: compileValidator(given) };
    }
    if (given === null || typeof given !== "object" || given.type !== "object") {
      throw new ToolfleetError("TOOL_DEFINITION_INVALID", `a JSON Schema for ${what} must have type "object"`);
    }
    return { schema: given, validate: compileValidator(given) };
  } catch (err) {
    throw new ToolfleetError("TOOL_DEFINITION_INVALID", `Tool '${name}': invalid ${what} schema: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}
