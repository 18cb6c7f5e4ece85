import { isIP } from "node:net";

/**
 * DNS-rebinding protection for `toolfleet mcp` over HTTP (docs/mcp.md, "Security"): a page on
 * another site whose name resolves to this server sends its own name as Host and Origin; only the
 * names this server is meant to be reached by are served.
 */

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];

/** Whether `host` (an address to listen on) reaches only this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  return isIP(h) === 4 && h.startsWith("127.");
}

/** The host names a request may name: the loopback names for a loopback address, else the address itself; plus those given. */
export function allowedHostNames(listenHost: string, extra: readonly string[] = []): Set<string> {
  const own = isLoopback(listenHost) ? LOOPBACK_NAMES : [isIP(listenHost) === 6 ? `[${listenHost}]` : listenHost];
  // A wildcard address names no host: only the --allowed-host names then.
  const wildcard = listenHost === "0.0.0.0" || listenHost === "::";
  return new Set([...(wildcard ? [] : own), ...extra].map((h) => h.toLowerCase()));
}

/** The host name of a Host header (`name:port`, `[v6]:port`), lower case. */
function hostNameOf(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  return h.split(":")[0] ?? "";
}

/** Why a request's Host or Origin is refused, or null when both are allowed (a request with no Origin is not from a browser page). */
export function hostProblem(allowed: ReadonlySet<string>, host: string | undefined, origin: string | undefined): string | null {
  if (!host || !allowed.has(hostNameOf(host))) return `Host ${JSON.stringify(host ?? "")} is not one this server answers to`;
  if (origin === undefined) return null;
  let name: string;
  try {
    name = new URL(origin).hostname.toLowerCase();
  } catch {
    return `Origin ${JSON.stringify(origin)} is not a URL`;
  }
  return allowed.has(name) ? null : `Origin ${JSON.stringify(origin)} is not allowed`;
}
