import type { CallOutcome, OutcomeKind } from "./outcome.js";
import { isToolResult, resultText, type StructuredResult } from "./result.js";
import type { ToolDefinition } from "./tool.js";

/** A handler's value as the call's result: its text for the model, and the structured result when it is one. */
export interface Rendered {
  ok: boolean;
  text: string;
  cancelled?: boolean;
  result?: StructuredResult;
}

/**
 * A string as it is; nothing as ""; a `toolResult()` as its text (and itself); with an `outputSchema`, a plain
 * object as the structured content, checked against it; anything else as JSON. `failure` words a value that
 * cannot be serialised (and logs it).
 */
export function render(def: ToolDefinition, value: unknown, failure: (name: string, err: unknown) => string): Rendered {
  const name = def.name;
  if (typeof value === "string") return { ok: true, text: value };
  if (value === undefined || value === null) return { ok: !def.validateOutput, text: def.validateOutput ? noStructured(name) : "" };
  try {
    let result: StructuredResult;
    if (isToolResult(value)) result = value;
    else if (def.validateOutput)
      result = { content: [{ type: "text", text: JSON.stringify(value) }], structuredContent: value as StructuredResult["structuredContent"] & object };
    else return { ok: true, text: JSON.stringify(value) };
    if (def.validateOutput && !result.isError) {
      if (result.structuredContent === undefined) return { ok: false, text: noStructured(name) };
      const checked = def.validateOutput(result.structuredContent);
      if (!checked.ok)
        return { ok: false, text: `Tool '${name}' returned structured content that does not match its outputSchema: ${formatIssues(checked.issues)}` };
      // What the schema made of it (defaults filled in, unknown keys dropped) is what goes out, not what the handler returned.
      const structured = checked.value as StructuredResult["structuredContent"] & object;
      const plain = !isToolResult(value);
      result = { ...result, structuredContent: structured, ...(plain ? { content: [{ type: "text" as const, text: JSON.stringify(structured) }] } : {}) };
    }
    return { ok: result.isError !== true, text: resultText(result), result };
  } catch (err) {
    return { ok: false, text: failure(name, err) };
  }
}

/** The outcome of a call that ended with `rendered`. */
export function withResult(outcome: (kind: OutcomeKind, text: string) => CallOutcome, rendered: Rendered): CallOutcome {
  const done = outcome(rendered.ok ? "ok" : "error", rendered.text);
  if (rendered.result) done.result = rendered.result;
  return done;
}

function noStructured(name: string): string {
  return `Tool '${name}' has an outputSchema but returned no structured content.`;
}

function formatIssues(issues: readonly { field: string; message: string }[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `${i.field}: ${i.message}`)
    .join("; ");
}
