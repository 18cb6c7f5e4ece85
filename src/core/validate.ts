import { Ajv, type ErrorObject } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import { z } from "zod";

/** A JSON Schema document: draft-07, or 2020-12 when its `$schema` says so (MCP servers' tools often do). */
export type JsonSchema = { [key: string]: unknown };

export interface ArgIssue {
  /** Dotted path of the bad field, or "(arguments)" for the whole object. */
  field: string;
  message: string;
}

export type ValidationResult = { ok: true; value: unknown } | { ok: false; issues: ArgIssue[] };

/** Compiled once when a tool is defined; called on every call with no schema work. */
export type ArgsValidator = (args: unknown) => ValidationResult;

// One Ajv instance for the process: compiled validators are cached on it.
// allErrors so the model hears about every bad field at once, not one per retry.
// Formats (uri, email …) are not checked (no ajv-formats); Ajv's warning about each one, printed on the console for
// every schema that names one (MCP servers' often do), is dropped: warnings only, errors still reach the console.
const quiet = { log: console.log, warn: () => undefined, error: console.error };
const ajv = new Ajv({ allErrors: true, strict: false, logger: quiet });
// For schemas made from zod (the wire bodies): string lengths in UTF-16 code units, as zod counts
// them, instead of JSON Schema's code points, which Ajv counts by walking every string (a
// measurable share of a worker's call: docs/benchmarks.md). Ajv 8 calls the option deprecated but keeps it
// (a test pins the behaviour); its logger is off so the notice is not printed by every process.
const ajvCodeUnits = new Ajv({ allErrors: true, strict: false, unicode: false, logger: false });

// JSON Schema 2020-12 (prefixItems, $defs, dependentRequired …) for a schema whose $schema names it; draft-07's Ajv
// would refuse the meta-schema. A schema without $schema stays draft-07, as every tool was validated before.
const ajv2020 = new Ajv2020({ allErrors: true, strict: false, logger: quiet });
const DRAFT_2020_12 = /^https?:\/\/json-schema\.org\/draft\/2020-12\/schema#?$/;

/** Whether a schema declares the 2020-12 dialect. */
export function isDraft2020(schema: JsonSchema): boolean {
  return typeof schema.$schema === "string" && DRAFT_2020_12.test(schema.$schema);
}

export interface CompileOptions {
  /** maxLength/minLength count UTF-16 code units (zod's way), not code points (JSON Schema's). */
  lengthInCodeUnits?: boolean;
}

export function compileValidator(schema: z.ZodType | JsonSchema, options: CompileOptions = {}): ArgsValidator {
  if (schema instanceof z.ZodType) {
    const zodSchema = schema;
    return (args) => {
      const parsed = zodSchema.safeParse(args);
      if (parsed.success) return { ok: true, value: parsed.data };
      return {
        ok: false,
        issues: parsed.error.issues.map((issue) => ({ field: fieldName(issue.path), message: issue.message })),
      };
    };
  }
  const check = (isDraft2020(schema) ? ajv2020 : options.lengthInCodeUnits ? ajvCodeUnits : ajv).compile(schema);
  return (args) => {
    if (check(args)) return { ok: true, value: args };
    return { ok: false, issues: (check.errors ?? []).map(ajvIssue) };
  };
}

function ajvIssue(error: ErrorObject): ArgIssue {
  const base = error.instancePath.split("/").filter(Boolean);
  const params = error.params as Record<string, unknown>;
  if (error.keyword === "required" && typeof params.missingProperty === "string") {
    return { field: fieldName([...base, params.missingProperty]), message: "is required" };
  }
  if (error.keyword === "additionalProperties" && typeof params.additionalProperty === "string") {
    return { field: fieldName([...base, params.additionalProperty]), message: "is not a known parameter" };
  }
  return { field: fieldName(base), message: error.message ?? error.keyword };
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.length === 0 ? "(arguments)" : path.map(String).join(".");
}

/** The text the model sees for bad arguments: every bad field, by name, in one line. */
export function formatArgIssues(toolName: string, issues: readonly ArgIssue[]): string {
  const list = issues.map((i) => `${i.field}: ${i.message}`).join("; ");
  return `Invalid arguments for tool '${toolName}': ${list}. Fix these fields and call it again.`;
}
