import { isIP } from "node:net";
import { ToolfleetError } from "../core/errors.js";

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

/** Whether `host` is a wildcard address (every interface): it names no host a request could name. */
export function isWildcard(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return h === "0.0.0.0" || h === "::";
}

/**
 * The host names a request may name: the loopback names (and the address itself) for a loopback
 * address, else the address itself; plus those given (`--allowed-host`: a bare name or address, no
 * scheme or port). A wildcard address names no host: it is refused without `--allowed-host`.
 */
export function allowedHostNames(listenHost: string, extra: readonly string[] = []): Set<string> {
  for (const name of extra)
    if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(name) && !(name.startsWith("[") && isIP(name.slice(1, -1)) === 6 && name.endsWith("]")))
      throw new ToolfleetError(
        "USAGE",
        `--allowed-host ${JSON.stringify(name)}: a host name or address as clients send it in Host (no scheme, no port; IPv6 in [ ])`,
      );
  if (isWildcard(listenHost) && extra.length === 0)
    throw new ToolfleetError(
      "USAGE",
      `--host ${listenHost} listens on every address but answers only the names it is given: add --allowed-host NAME (the name clients use, e.g. the load balancer's)`,
    );
  const self = isIP(listenHost) === 6 ? `[${listenHost}]` : listenHost;
  const own = isWildcard(listenHost) ? [] : isLoopback(listenHost) ? [...LOOPBACK_NAMES, self] : [self];
  return new Set([...own, ...extra].map((h) => h.toLowerCase()));
}

/** The host name and port of a Host header (`name:port`, `[v6]:port`), lower case; port "" when none is given. */
function hostOf(header: string): { name: string; port: string } {
  const h = header.trim().toLowerCase();
  const end = h.startsWith("[") ? h.indexOf("]") + 1 : h.includes(":") ? h.indexOf(":") : h.length;
  return { name: h.slice(0, end), port: h.slice(end).replace(/^:/, "") };
}

/**
 * Why a request's Host or Origin is refused, or null when both are allowed (a request with no Origin
 * is not from a browser page). An Origin is this server's only on the port the Host names: a page of
 * another local web app (http://localhost:3000) is another origin.
 */
export function hostProblem(allowed: ReadonlySet<string>, host: string | undefined, origin: string | undefined): string | null {
  const named = hostOf(host ?? "");
  if (!host || !allowed.has(named.name)) return `Host ${JSON.stringify(host ?? "")} is not one this server answers to`;
  if (origin === undefined) return null;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `Origin ${JSON.stringify(origin)} is not a URL`;
  }
  // URL.port is "" for the scheme's default port; a Host without a port is a default port too.
  const defaultPort = url.protocol === "https:" ? "443" : url.protocol === "http:" ? "80" : "";
  const samePort = named.port === "" ? url.port === "" : (url.port || defaultPort) === named.port;
  return allowed.has(url.hostname.toLowerCase()) && samePort ? null : `Origin ${JSON.stringify(origin)} is not allowed`;
}
