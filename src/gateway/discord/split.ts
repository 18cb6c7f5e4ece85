// How an answer becomes Discord messages: Discord's own limits (docs: "Create Message", "Embed Limits")
// decide the shape, so nothing the bot says is refused for its size.
import type { JsonValue, RichMessage, SentFile } from "../../core/context.js";
import type { OutgoingMessage } from "../platform.js";

/** Characters of `content` in one message. */
export const MESSAGE_LIMIT = 2000;
/** Attachments, and embeds, in one message. */
export const FILES_PER_MESSAGE = 10;
export const EMBEDS_PER_MESSAGE = 10;

/** An embed as Discord's REST API takes it (the fields toolfleet fills). */
export interface DiscordEmbed {
  title?: string;
  description?: string;
  url?: string;
  color?: number;
  footer?: { text: string };
  fields?: { name: string; value: string; inline?: boolean }[];
}

/** One message to post: its text, embeds and files (each within Discord's limits). */
export interface PlannedMessage {
  content: string;
  embeds: DiscordEmbed[];
  files: SentFile[];
}

/**
 * Splits text into pieces of at most `limit` characters, at a line break
 * when one is in the second half of a piece, else at a space, else anywhere
 * (a long word or URL). Nothing is dropped, and no piece is blank.
 */
export function splitText(text: string, limit = MESSAGE_LIMIT): string[] {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`splitText: limit must be a positive integer, got ${limit}`);
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > limit) {
    const window = rest.slice(0, limit + 1);
    let cut = window.lastIndexOf("\n");
    if (cut < limit / 2) cut = window.lastIndexOf(" ");
    if (cut < limit / 2) cut = limit;
    // Never split a surrogate pair (an emoji) in two.
    const code = rest.charCodeAt(cut - 1);
    if (cut === limit && code >= 0xd800 && code <= 0xdbff) cut--;
    const piece = rest.slice(0, cut).trimEnd();
    if (piece !== "") pieces.push(piece);
    rest = rest.slice(cut).replace(/^[\n ]/, "");
  }
  if (rest.trim() !== "") pieces.push(rest);
  return pieces;
}

const cap = (text: string, n: number): string => (text.length <= n ? text : `${text.slice(0, n - 1)}…`);
const str = (v: JsonValue | undefined): string | undefined => (typeof v === "string" && v.trim() !== "" ? v : undefined);

/**
 * A rich message as an embed: the fields it has that an embed has (title,
 * description, url, color, footer, fields), cut to Discord's limits; any
 * other shape is shown as its JSON, so nothing a tool sent goes missing.
 */
export function toEmbed(rich: RichMessage): DiscordEmbed {
  const embed: DiscordEmbed = {};
  const title = str(rich.title);
  const description = str(rich.description) ?? str(rich.text);
  if (title) embed.title = cap(title, 256);
  if (description) embed.description = cap(description, 4096);
  const url = str(rich.url);
  if (url && /^https?:\/\//.test(url)) embed.url = url;
  if (typeof rich.color === "number" && Number.isInteger(rich.color) && rich.color >= 0 && rich.color <= 0xffffff) embed.color = rich.color;
  const footer = str(rich.footer);
  if (footer) embed.footer = { text: cap(footer, 2048) };
  if (Array.isArray(rich.fields)) {
    embed.fields = rich.fields
      .flatMap((f) => {
        if (!f || typeof f !== "object" || Array.isArray(f)) return [];
        const name = str(f.name);
        const value = str(f.value);
        return name && value ? [{ name: cap(name, 256), value: cap(value, 1024), ...(f.inline === true ? { inline: true } : {}) }] : [];
      })
      .slice(0, 25);
    if (embed.fields.length === 0) delete embed.fields;
  }
  if (!embed.title && !embed.description && !embed.fields) embed.description = cap("```json\n" + JSON.stringify(rich, null, 1), 4092) + "\n```";
  return embed;
}

/** A rich message that asks for a reaction (what `discord_react` leaves when it ran away from the gateway). */
export function reactionOf(rich: RichMessage): { emoji: string; messageId: string } | null {
  const emoji = str(rich.emoji);
  const messageId = str(rich.messageId);
  return rich.kind === "reaction" && emoji && messageId ? { emoji, messageId } : null;
}

/**
 * The messages an answer becomes: its text in pieces of at most 2,000
 * characters, then its embeds and files on the last piece (more messages
 * when there are more than ten of either). Rich messages that ask for a
 * reaction are not embeds (the adapter reacts instead).
 */
export function planMessages(message: Pick<OutgoingMessage, "text" | "files" | "richMessages">): PlannedMessage[] {
  const embeds = message.richMessages.filter((r) => reactionOf(r) === null).map(toEmbed);
  const planned: PlannedMessage[] = splitText(message.text).map((content) => ({ content, embeds: [], files: [] }));
  const extras = Math.max(Math.ceil(embeds.length / EMBEDS_PER_MESSAGE), Math.ceil(message.files.length / FILES_PER_MESSAGE));
  for (let i = 0; i < extras; i++) {
    const part = {
      embeds: embeds.slice(i * EMBEDS_PER_MESSAGE, (i + 1) * EMBEDS_PER_MESSAGE),
      files: message.files.slice(i * FILES_PER_MESSAGE, (i + 1) * FILES_PER_MESSAGE),
    };
    const last = planned.at(-1);
    if (i === 0 && last) Object.assign(last, part);
    else planned.push({ content: "", ...part });
  }
  return planned;
}
