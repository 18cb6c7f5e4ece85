import { createHmac, timingSafeEqual } from "node:crypto";
import type { EntryFields } from "../redis/entry-codec.js";

/**
 * Signing of tool-exec entries with the fleet secret (docs/protocol.md §2.5,
 * docs/security.md). Without a secret nothing here runs: a fleet that sets
 * none speaks the protocol exactly as before.
 *
 * The signature covers every other field of the entry, bytes as sent: the
 * body (which holds everything that decides what runs, for whom, and where
 * the answer goes, or the whole reply) and a reply's file fields. A kind
 * prefix keeps a signed request from passing as a reply and back.
 */
export const SIG_FIELD = "sig";
const SIG_VERSION = "v1";
const SIG_PATTERN = /^v1\.(\d{1,16})\.([0-9a-f]{64})$/;

export type SignedKind = "request" | "reply" | "progress";

function mac(secret: string, kind: SignedKind, timestamp: string, fields: EntryFields): Buffer {
  const h = createHmac("sha256", secret);
  h.update(`toolfleet-${kind}\n${timestamp}\n`);
  // Sorted names, each with its length: no two different entries feed the same bytes.
  for (const name of Object.keys(fields).sort()) {
    if (name === SIG_FIELD) continue;
    const value = fields[name]!;
    const bytes = typeof value === "string" ? Buffer.from(value) : value;
    h.update(`${name}\n${bytes.byteLength}\n`);
    h.update(bytes);
  }
  return h.digest();
}

/** Adds the `sig` field to `fields` (in place) and returns them. */
export function signEntry(secret: string, kind: SignedKind, fields: EntryFields, now = Date.now()): EntryFields {
  const timestamp = String(now);
  fields[SIG_FIELD] = `${SIG_VERSION}.${timestamp}.${mac(secret, kind, timestamp, fields).toString("hex")}`;
  return fields;
}

/** Why the entry's signature does not hold, or null when it does. */
export function signatureProblem(secret: string, kind: SignedKind, fields: EntryFields): string | null {
  const raw = fields[SIG_FIELD];
  if (raw === undefined) return `unsigned ${kind} (this fleet requires a signature)`;
  const match = SIG_PATTERN.exec(raw.toString());
  if (!match) return `malformed ${kind} signature`;
  const expected = mac(secret, kind, match[1]!, fields);
  const given = Buffer.from(match[2]!, "hex");
  return given.byteLength === expected.byteLength && timingSafeEqual(given, expected) ? null : `${kind} signature does not match`;
}
