import { z } from "zod";
import type { SentFile } from "../core/context.js";
import { wireError, type WireError } from "../core/errors.js";

/**
 * How every toolfleet message is a stream entry (docs/protocol.md): a UTF-8
 * JSON document in the field `body`, and the bytes of each file a message
 * carries raw in a field of its own (`file.0`, `file.1`, …), so files cross
 * Redis byte-identical with no base64 cost. Decoders never throw.
 */
export const PROTOCOL_VERSION = 1;
export const BODY_FIELD = "body";
const fileField = (index: number): string => `file.${index}`;

/** @defaultValue 64 MiB: a reply may carry files. */
export const DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024;
/** Files one message may carry. */
export const MAX_REPLY_FILES = 100;

/** Stream entry fields: names to bytes (or text). */
export type EntryFields = Record<string, Buffer | string>;

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: WireError; correlationId?: string; replyTo?: string };

/** How a body names a file whose bytes are in another field. */
export const fileMeta = z.object({
  name: z.string().max(255).min(1),
  content_type: z.string().max(255).min(1),
  size: z.number().int().nonnegative(),
  field: z.string(),
});
export type FileMeta = z.infer<typeof fileMeta>;

/** The body's description of files sent as `file.N` fields. */
export function fileMetas(files: readonly SentFile[]): z.infer<typeof fileMeta>[] {
  return files.map((f, i) => ({ name: f.name, content_type: f.contentType, size: f.data.byteLength, field: fileField(i) }));
}

/** Each file's bytes as they are, in its own `file.N` field (no base64 copy), added to `fields`. */
export function fileFields(files: readonly SentFile[], fields: EntryFields = {}): EntryFields {
  files.forEach((f, i) => {
    fields[fileField(i)] = Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength);
  });
  return fields;
}

/** The files an entry's body describes, checked against their fields; an error text when one is missing or the wrong size. */
export function filesFromFields(fields: EntryFields, metas: readonly z.infer<typeof fileMeta>[]): SentFile[] | string {
  const files: SentFile[] = [];
  for (const meta of metas) {
    const data = fields[meta.field];
    if (data === undefined || typeof data === "string" || data.byteLength !== meta.size) return `file field ${meta.field} is missing or not ${meta.size} bytes`;
    files.push({ name: meta.name, contentType: meta.content_type, data });
  }
  return files;
}

/**
 * A text's size in UTF-8 bytes when that is over `maxBytes`, else null. A
 * text of at most a third of the limit in code units cannot be over (a code
 * unit is at most 3 bytes), so most need no pass: Buffer.byteLength flattens
 * the rope JSON.stringify returns, a copy of the whole body per call.
 */
export function utf8SizeIfOver(text: string, maxBytes: number): number | null {
  if (text.length * 3 <= maxBytes) return null;
  const size = Buffer.byteLength(text);
  return size > maxBytes ? size : null;
}

/** The entry's JSON body object, size-checked; never throws. */
export function parseBody(fields: EntryFields, maxBytes: number): Decoded<unknown> {
  const body = fields[BODY_FIELD];
  if (body === undefined) return { ok: false, error: wireError("INVALID_REQUEST", `entry has no '${BODY_FIELD}' field`) };
  const size = typeof body === "string" ? Buffer.byteLength(body) : body.byteLength;
  if (size > maxBytes) {
    return { ok: false, error: wireError("PAYLOAD_TOO_LARGE", `entry body is ${formatBytes(size)}, over the ${formatBytes(maxBytes)} limit`) };
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof body === "string" ? body : body.toString("utf8"));
  } catch (err) {
    return { ok: false, error: wireError("INVALID_REQUEST", `entry body is not JSON: ${(err as Error).message}`) };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, error: wireError("INVALID_REQUEST", "entry body is not a JSON object") };
  }
  return { ok: true, value };
}

/** A validation failure as one line naming each bad field (the first ten). */
export function describe(error: z.ZodError): string {
  return error.issues
    .slice(0, 10)
    .map((i) => `${i.path.map(String).join(".") || "(body)"}: ${i.message}`)
    .join("; ");
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}
