import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { LRUCache } from "lru-cache";
import { ToolfleetError } from "../core/errors.js";
import { ID_PATTERN } from "../redis/keys.js";

/**
 * Who an MCP client is (docs/mcp.md, "Tokens"): a bearer token from a tokens file, or one signed
 * with the fleet secret (`toolfleet mcp token --user ID`), names a user id; permissions then apply
 * to that user as to a chat user.
 */

/** Tokens in a tokens file are at least this long, so a short guessable one is refused at start. */
export const MIN_TOKEN_LENGTH = 16;
const SIGNED_PREFIX = "tfm1";
/** Session ids one replica remembers as checked (the LRU ones beyond are checked again when they come back). */
const CHECKED_SESSIONS = 10_000;

/** A token's user, or null: not a token this server knows (or a signed one that expired or is mis-signed). */
export type TokenCheck = (token: string) => string | null;

const digest = (s: string): string => createHash("sha256").update(s).digest("hex");

/**
 * Reads a tokens file: JSON, `{ "tokens": [{ "user": "alice", "token": "…" }, …] }`; every user an id
 * (1-128 of letters, digits and _ . : @ -), every token 16+ characters and given once.
 */
export function loadTokensFile(path: string): Map<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ToolfleetError("CONFIG_INVALID", `--tokens ${path}: not a readable JSON file (${err instanceof Error ? err.message : String(err)})`);
  }
  return tokensFrom(parsed, `--tokens ${path}`);
}

/** The tokens of a parsed tokens file, by the SHA-256 of each token (so the lookup compares no secret byte by byte). */
export function tokensFrom(parsed: unknown, where: string): Map<string, string> {
  const list = (parsed as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list)) throw new ToolfleetError("CONFIG_INVALID", `${where}: expected { "tokens": [{ "user": "…", "token": "…" }] }`);
  const out = new Map<string, string>();
  for (const [i, entry] of list.entries()) {
    const { user, token } = (entry ?? {}) as { user?: unknown; token?: unknown };
    if (typeof user !== "string" || !ID_PATTERN.test(user))
      throw new ToolfleetError("CONFIG_INVALID", `${where}: tokens[${i}].user must be a user id (1-128 of letters, digits and _ . : @ -)`);
    // Only printable latin1 (as Node reads header bytes, and fetch() can send): another token could never match.
    if (typeof token !== "string" || token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e\xa1-\xff]+$/.test(token))
      throw new ToolfleetError(
        "CONFIG_INVALID",
        `${where}: tokens[${i}].token must be ${MIN_TOKEN_LENGTH}+ characters, without spaces or characters beyond U+00FF (it is sent in an HTTP header)`,
      );
    const key = digest(token);
    if (out.has(key)) throw new ToolfleetError("CONFIG_INVALID", `${where}: tokens[${i}].token is given twice`);
    out.set(key, user);
  }
  return out;
}

function sign(secret: string, ...parts: string[]): string {
  return createHmac("sha256", secret).update(parts.join("\0")).digest("base64url");
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A token for `user`, signed with the fleet secret, valid until `expiresAt` (Unix seconds). */
export function mintToken(secret: string, user: string, expiresAt: number): string {
  if (!ID_PATTERN.test(user)) throw new ToolfleetError("USAGE", `--user: a user id (1-128 of letters, digits and _ . : @ -), got '${user}'`);
  if (secret.length < 32) throw new ToolfleetError("CONFIG_INVALID", "signed MCP tokens need the fleet secret: set TOOLFLEET_FLEET_SECRET (32+ characters)");
  const exp = String(Math.floor(expiresAt));
  return `${SIGNED_PREFIX}.${user}.${exp}.${sign(secret, "toolfleet mcp token", user, exp)}`;
}

/** The user of a signed token, or null (not one, mis-signed, or expired at `nowSeconds`). */
export function verifySignedToken(secret: string, token: string, nowSeconds = Date.now() / 1000): string | null {
  // `tfm1.<user>.<exp>.<mac>`: a user id may hold '.', the expiry and the MAC never do, so both are read from the right.
  if (!token.startsWith(`${SIGNED_PREFIX}.`)) return null;
  const macAt = token.lastIndexOf(".");
  const expAt = token.lastIndexOf(".", macAt - 1);
  if (expAt <= SIGNED_PREFIX.length) return null;
  const user = token.slice(SIGNED_PREFIX.length + 1, expAt);
  const exp = token.slice(expAt + 1, macAt);
  const mac = token.slice(macAt + 1);
  if (!ID_PATTERN.test(user) || !/^\d{1,12}$/.test(exp)) return null;
  if (!sameText(mac, sign(secret, "toolfleet mcp token", user, exp))) return null;
  return Number(exp) > nowSeconds ? user : null;
}

/** The check of a server: the tokens file's tokens, then signed ones (with a fleet secret). */
export function tokenCheck(options: { tokens?: ReadonlyMap<string, string>; fleetSecret?: string }): TokenCheck {
  const { tokens, fleetSecret } = options;
  return (token) => tokens?.get(digest(token)) ?? (fleetSecret ? verifySignedToken(fleetSecret, token) : null);
}

/**
 * Session ids every replica can check without asking another: random, bound to the user, signed
 * with a key they share (the fleet secret, or a key kept in Redis). A session of one user is not
 * another's; a made-up one is refused.
 */
export class SessionIds {
  /** Ids found valid, and for whom: a session's every request carries its id, and an HMAC per request costs more than the lookup. */
  private readonly checked = new LRUCache<string, string>({ max: CHECKED_SESSIONS });

  constructor(private readonly key: string) {}

  mint(user: string): string {
    const nonce = randomBytes(12).toString("base64url");
    return `${nonce}.${sign(this.key, "toolfleet mcp session", nonce, user).slice(0, 32)}`;
  }

  valid(sessionId: string, user: string): boolean {
    if (this.checked.get(sessionId) === user) return true;
    const [nonce = "", mac = "", extra] = sessionId.split(".");
    if (extra !== undefined || !/^[A-Za-z0-9_-]{16}$/.test(nonce)) return false;
    if (!sameText(mac, sign(this.key, "toolfleet mcp session", nonce, user).slice(0, 32))) return false;
    this.checked.set(sessionId, user);
    return true;
  }
}

/** A new random session-signing key (kept in Redis for the replicas of a fleet without a secret). */
export function newSessionKey(): string {
  return randomBytes(32).toString("base64url");
}
