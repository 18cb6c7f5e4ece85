import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { SentFile } from "../core/context.js";
import { COMMON_HEADERS, json } from "./http-util.js";

/** Files a browser may show in the page; anything else is a download, so a tool cannot serve script from the chat's origin. */
const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/**
 * The files the web chat's answers carried, kept for download by the channel
 * they were sent to: at most `maxFiles` and `maxBytes` (the oldest dropped
 * first; the newest stays, even alone over the byte cap).
 */
export class WebFiles {
  private readonly files = new Map<string, { channelId: string; file: SentFile }>();
  private bytes = 0;

  constructor(
    private readonly maxFiles: number,
    private readonly maxBytes: number,
  ) {}

  /** Keeps a file under `named` (an answer's file keeps its name across reloads), or a new random id. */
  store(channelId: string, file: SentFile, named?: string): { name: string; contentType: string; size: number; url: string } {
    const id = named ?? randomBytes(12).toString("base64url");
    const before = this.files.get(id);
    if (before) {
      this.files.delete(id);
      this.bytes -= before.file.data.byteLength;
    }
    this.files.set(id, { channelId, file });
    this.bytes += file.data.byteLength;
    for (const [key, old] of this.files) {
      if (this.files.size <= this.maxFiles && this.bytes <= this.maxBytes) break;
      if (key === id) break; // the newest stays, even alone over the byte cap
      this.files.delete(key);
      this.bytes -= old.file.data.byteLength;
    }
    return { name: file.name, contentType: file.contentType, size: file.data.byteLength, url: `/files/${id}` };
  }

  /** Sends a kept file to its own channel's user; another user's file is as absent as a dropped one. */
  serve(res: ServerResponse, channelId: string, id: string): void {
    const stored = this.files.get(id);
    if (!stored || stored.channelId !== channelId) return json(res, 404, { error: "no such file (files are kept for a while, then dropped)" });
    const { file } = stored;
    const inline = INLINE_TYPES.has(file.contentType);
    res.writeHead(200, {
      "content-type": inline ? file.contentType : "application/octet-stream",
      "content-length": file.data.byteLength,
      "content-disposition": `${inline ? "inline" : "attachment"}; filename="${file.name.replace(/[^A-Za-z0-9._-]/g, "_")}"`,
      ...COMMON_HEADERS,
      "content-security-policy": "default-src 'none'; sandbox",
      "cache-control": "private, max-age=3600",
    });
    res.end(file.data);
  }
}
