import { MAX_CHAT_TEXT, MAX_HISTORY, type HistoryTurn } from "../chat/codec.js";

/**
 * Recent turns per channel, sent with each message to the stateless inference
 * tier: on a real platform the channel's history lives there, and a gateway
 * is where it is read. Bounded: MAX_HISTORY turns per channel, and the least
 * recently used channels are forgotten past `maxChannels`.
 */
export class ChatHistory {
  private readonly channels = new Map<string, HistoryTurn[]>();

  constructor(private readonly maxChannels = 1000) {}

  of(channelId: string): HistoryTurn[] {
    return this.channels.get(channelId) ?? [];
  }

  add(channelId: string, userText: string, answerText: string): void {
    const list = this.of(channelId);
    this.channels.delete(channelId); // re-inserted last: the map's order is least recently used first
    list.push({ role: "user", text: userText.slice(0, MAX_CHAT_TEXT) }, { role: "assistant", text: answerText.slice(0, MAX_CHAT_TEXT) });
    if (list.length > MAX_HISTORY) list.splice(0, list.length - MAX_HISTORY);
    this.channels.set(channelId, list);
    if (this.channels.size > this.maxChannels) {
      const oldest = this.channels.keys().next().value;
      if (oldest !== undefined) this.channels.delete(oldest);
    }
  }
}
