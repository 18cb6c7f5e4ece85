import { z } from "zod";
import { MAX_CHAT_TEXT, MAX_HISTORY, boundCallDetails, type HistoryTurn, type ToolCallDetail } from "../chat/codec.js";
import type { RichMessage } from "../core/context.js";
import type { RedisClient } from "../redis/client.js";
import type { Keys } from "../redis/keys.js";

/**
 * One line of a channel's conversation as the gateway saw it: a user's
 * message, or what the bot said back to one (an answer, or an apology).
 * The model is shown the text of the answered questions; a web page that
 * reloads is shown all of it.
 */
export interface HistoryEntry {
  role: "user" | "assistant";
  text: string;
  /** The platform message id: the user's message, or, for the bot, the message it answers. */
  messageId: string;
  atMs: number;
  /** The bot's: the chat id of the answer (the web chat names the answer's files by it). */
  answerId?: string;
  /** The bot's: an apology (no answer in time, the queue unreachable …), never shown to the model. */
  failed?: boolean;
  /** The bot's: the files its tools sent (their bytes stay with the platform). */
  files?: { name: string; contentType: string; size: number }[];
  richMessages?: RichMessage[];
  toolCalls?: ToolCallDetail[];
  /** The inference worker that answered (absent in one process). */
  answeredBy?: string;
}

/** Where a gateway keeps its channels' conversations: in memory, or in Redis (shared by gateways, kept across restarts). */
export interface ChatHistoryStore {
  /** The channel's entries, oldest first. */
  read(channelId: string): Promise<HistoryEntry[]>;
  append(channelId: string, entry: HistoryEntry): Promise<void>;
}

/** Entries kept per channel, at most: enough for the model's MAX_HISTORY turns and a page's scrollback. */
export const MAX_HISTORY_ENTRIES = 100;
/** Bytes of rich messages one entry keeps, at most (a page shows them as JSON). */
const MAX_RICH_BYTES = 32 * 1024;

/** An entry cut to the bounds a store keeps: text, files, rich messages, tool calls. */
export function boundEntry(entry: HistoryEntry): HistoryEntry {
  const out: HistoryEntry = { ...entry, text: entry.text.slice(0, MAX_CHAT_TEXT) };
  if (entry.files) out.files = entry.files.slice(0, 100).map((f) => ({ name: f.name.slice(0, 200), contentType: f.contentType.slice(0, 200), size: f.size }));
  if (entry.toolCalls) out.toolCalls = boundCallDetails(entry.toolCalls);
  if (entry.richMessages) {
    let bytes = 0;
    out.richMessages = entry.richMessages.filter((r) => (bytes += JSON.stringify(r).length) <= MAX_RICH_BYTES);
  }
  return out;
}

/**
 * The turns the model is shown with a new message: each answered question
 * followed by its answer (answers can come back out of order), apologies and
 * unanswered questions left out, the last MAX_HISTORY.
 */
export function modelTurns(entries: readonly HistoryEntry[]): HistoryTurn[] {
  const turns: HistoryTurn[] = [];
  const used = new Set<number>();
  entries.forEach((entry, i) => {
    if (entry.role !== "user") return;
    // The first answer after the question: a console's message ids start again when it restarts.
    const j = entries.findIndex((a, k) => k > i && !used.has(k) && a.role === "assistant" && a.messageId === entry.messageId);
    if (j === -1) return;
    used.add(j);
    const answer = entries[j];
    if (!answer || answer.failed) return;
    turns.push({ role: "user", text: entry.text.slice(0, MAX_CHAT_TEXT) }, { role: "assistant", text: answer.text.slice(0, MAX_CHAT_TEXT) });
  });
  return turns.slice(-MAX_HISTORY);
}

/**
 * In memory: per channel, the last `maxEntries`; the least recently used
 * channels are forgotten past `maxChannels`. For one process, or a console.
 */
export class MemoryChatHistory implements ChatHistoryStore {
  private readonly channels = new Map<string, HistoryEntry[]>();

  constructor(
    private readonly maxChannels = 1000,
    private readonly maxEntries = MAX_HISTORY_ENTRIES,
  ) {}

  read(channelId: string): Promise<HistoryEntry[]> {
    return Promise.resolve([...(this.channels.get(channelId) ?? [])]);
  }

  append(channelId: string, entry: HistoryEntry): Promise<void> {
    const list = this.channels.get(channelId) ?? [];
    this.channels.delete(channelId); // re-inserted last: the map's order is least recently used first
    list.push(boundEntry(entry));
    if (list.length > this.maxEntries) list.splice(0, list.length - this.maxEntries);
    this.channels.set(channelId, list);
    if (this.channels.size > this.maxChannels) {
      const oldest = this.channels.keys().next().value;
      if (oldest !== undefined) this.channels.delete(oldest);
    }
    return Promise.resolve();
  }
}

export interface RedisChatHistoryOptions {
  redis: RedisClient;
  keys: Keys;
  /** Seconds a channel's conversation is kept after its last line. @defaultValue 86400 (a day) */
  ttlSeconds?: number;
  /** @defaultValue MAX_HISTORY_ENTRIES */
  maxEntries?: number;
}

const storedEntry = z.object({
  role: z.enum(["user", "assistant"]),
  text: z.string(),
  messageId: z.string(),
  atMs: z.number(),
  answerId: z.string().optional(),
  failed: z.boolean().optional(),
  files: z.array(z.object({ name: z.string(), contentType: z.string(), size: z.number() })).optional(),
  richMessages: z.array(z.record(z.string(), z.json())).optional(),
  toolCalls: z
    .array(
      z.object({
        name: z.string(),
        route: z.string(),
        kind: z.string(),
        durationMs: z.number(),
        args: z.string(),
        result: z.string(),
        nested: z.boolean().optional(),
        truncated: z.boolean().optional(),
      }),
    )
    .optional(),
  answeredBy: z.string().optional(),
});

/**
 * In Redis: a list per channel (`<ns>:chat:history:<channelId>`, one JSON
 * entry per element), trimmed to `maxEntries` and expiring `ttlSeconds`
 * after its last line. Gateways behind one load balancer share it, and a
 * restarted gateway still has it. An element that does not read back as an
 * entry is skipped.
 */
export class RedisChatHistory implements ChatHistoryStore {
  private readonly ttlSeconds: number;
  private readonly maxEntries: number;

  constructor(private readonly options: RedisChatHistoryOptions) {
    this.ttlSeconds = options.ttlSeconds ?? 86_400;
    this.maxEntries = options.maxEntries ?? MAX_HISTORY_ENTRIES;
  }

  async read(channelId: string): Promise<HistoryEntry[]> {
    const raw = await this.options.redis.lRange(this.options.keys.chatHistory(channelId), 0, -1);
    return raw.flatMap((text) => {
      try {
        const checked = storedEntry.safeParse(JSON.parse(text));
        return checked.success ? [checked.data] : [];
      } catch {
        // Not JSON: skipped like any other element that is not an entry.
        return [];
      }
    });
  }

  async append(channelId: string, entry: HistoryEntry): Promise<void> {
    const key = this.options.keys.chatHistory(channelId);
    await this.options.redis
      .multi()
      .addCommand(["RPUSH", key, JSON.stringify(boundEntry(entry))])
      .addCommand(["LTRIM", key, String(-this.maxEntries), "-1"])
      .addCommand(["EXPIRE", key, String(this.ttlSeconds)])
      .exec();
  }
}
