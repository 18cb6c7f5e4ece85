// The HTTP plumbing of the web chat (src/gateway/http-adapter.ts): response helpers, bounded body
// reading, and the checks on where a request comes from.
import type { IncomingMessage as HttpRequest, ServerResponse } from "node:http";

/** Sent with every response: the declared type is the type, and nothing here may be framed. */
export const COMMON_HEADERS = { "x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer" } as const;
export const LOOPBACK: ReadonlySet<string> = new Set(["127.0.0.1", "::1", "localhost"]);

export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  return LOOPBACK.has(name);
}

export function sse(e: { id: number; event: string; data: string }): string {
  return `id: ${e.id}\nevent: ${e.event}\ndata: ${e.data}\n\n`;
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { ...COMMON_HEADERS, "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

export function tooMany(res: ServerResponse, retryAfterSeconds: number, error: string): void {
  res.setHeader("retry-after", String(Math.max(1, Math.ceil(retryAfterSeconds))));
  json(res, 429, { error });
}

/**
 * 413, then the connection is closed: the rest of the body is never read. (Node would otherwise
 * read it to the end, to keep the connection for the next request.)
 */
export function refuseBody(req: HttpRequest, res: ServerResponse, max: number): void {
  req.pause();
  res.setHeader("connection", "close");
  res.once("finish", () => req.socket.destroy());
  json(res, 413, { error: `the request body is over ${max} bytes` });
}

/** The body as text, or null as soon as it passes `max` bytes (reading stops there). */
export function readBody(req: HttpRequest, max: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength;
      if (size <= max) return void chunks.push(chunk);
      req.off("data", onData);
      req.pause();
      resolve(null);
    };
    req.on("data", onData);
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** The remote address of a request's connection; not a header, which a client could set to anything. */
export function remoteOf(req: HttpRequest): string {
  return req.socket.remoteAddress ?? "unknown";
}
