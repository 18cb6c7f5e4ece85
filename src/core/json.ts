import type { z } from "zod";

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Parses JSON text from outside the process and validates it; a failure is a value saying what was wrong. */
export function parseJson<T>(schema: z.ZodType<T>, text: string): Parsed<T> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not JSON (${(err as Error).message})` };
  }
  const checked = schema.safeParse(data);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    return { ok: false, reason: `${issue?.path.map(String).join(".") || "(value)"}: ${issue?.message ?? "invalid"}` };
  }
  return { ok: true, value: checked.data };
}
