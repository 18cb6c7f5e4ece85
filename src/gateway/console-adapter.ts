import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import type { Readable } from "node:stream";
import type { ChatPlatform, IncomingMessage, OutgoingMessage } from "./platform.js";
import { formatBytes } from "../redis/entry-codec.js";

export interface ConsoleAdapterOptions {
  /** @defaultValue process.stdin */
  input?: Readable;
  /** @defaultValue console.log */
  output?: (line: string) => void;
  /** Who is typing. @defaultValue the OS user name */
  userId?: string;
  /** Where files the bot sends are saved. @defaultValue a new private folder under the temp dir */
  filesDir?: string;
}

/**
 * Chat in the terminal: each line typed is a message from the local user;
 * answers are printed, files saved to disk (their paths printed), reactions
 * shown. It owns the "platform client", so a gateway running it executes
 * gateway-pinned tools itself.
 */
export class ConsoleAdapter implements ChatPlatform {
  readonly platform = "console";
  readonly ownsPlatformClient = true;
  private readonly out: (line: string) => void;
  private readonly userId: string;
  private filesDir: string | undefined;
  private lines: Interface | undefined;
  private count = 0;
  /** Messages typed and not yet answered; and whether the input has ended. */
  private readonly unanswered = new Set<string>();
  private inputEnded = false;
  private endChat: () => void = () => undefined;
  /**
   * Resolves once the input has ended (Ctrl-D, or the end of a piped file) after at least one message, and
   * every message typed has had its answer: the chat is over, and `toolfleet gateway --adapter console` then
   * stops. An input that ends before any message (stdin of /dev/null) ends nothing.
   */
  readonly finished = new Promise<void>((resolve) => (this.endChat = resolve));

  constructor(private readonly options: ConsoleAdapterOptions = {}) {
    this.out = options.output ?? ((line) => console.log(line));
    this.userId = options.userId ?? (safeUserName() || "console-user");
    this.filesDir = options.filesDir;
  }

  start(onMessage: (message: IncomingMessage) => void): Promise<void> {
    if (this.lines) return Promise.resolve();
    this.lines = createInterface({ input: this.options.input ?? process.stdin, terminal: false });
    this.lines.on("line", (line) => {
      const text = line.trim();
      if (!text) return;
      const messageId = `console-${++this.count}`;
      this.unanswered.add(messageId);
      onMessage({ identity: { platform: this.platform, channelId: "console", userId: this.userId, userName: this.userId, guildId: "", messageId }, text });
    });
    this.lines.on("close", () => {
      this.inputEnded = true;
      this.endIfAnswered();
    });
    this.out(`console chat: type a message and press Enter (you are '${this.userId}'); /help lists the tools`);
    return Promise.resolve();
  }

  private endIfAnswered(): void {
    // An input that ends before any message (stdin of /dev/null, as under a process manager) ends no chat.
    if (this.inputEnded && this.count > 0 && this.unanswered.size === 0) this.endChat();
  }

  async send(_channelId: string, message: OutgoingMessage): Promise<void> {
    try {
      await this.print(message);
    } finally {
      // Each message gets one answer (or one apology): counted once it is out.
      if (message.inReplyTo !== undefined && this.unanswered.delete(message.inReplyTo)) this.endIfAnswered();
    }
  }

  private async print(message: OutgoingMessage): Promise<void> {
    this.out(`bot> ${message.text}`);
    // Which tier ran each tool, and how it went: one line a call.
    for (const c of message.toolCalls ?? []) this.out(`     [tool] ${c.nested ? "  " : ""}${c.name} route=${c.route} ${c.durationMs.toFixed(2)} ms ${c.kind}`);
    if (message.files.length === 0) return this.richLines(message);
    // A folder of its own (mode 0700), made on the first file: nobody else can plant or read files there.
    const dir = this.filesDir ?? (this.filesDir = await mkdtemp(join(tmpdir(), "toolfleet-files-")));
    await mkdir(dir, { recursive: true });
    for (const file of message.files) {
      const path = join(dir, `${Date.now()}-${file.name.replace(/[^A-Za-z0-9._-]/g, "_")}`);
      await writeFile(path, file.data);
      this.out(`     [file] ${path} (${file.contentType}, ${formatBytes(file.data.byteLength)})`);
    }
    this.richLines(message);
  }

  private richLines(message: OutgoingMessage): void {
    for (const rich of message.richMessages) this.out(`     [rich] ${JSON.stringify(rich)}`);
  }

  react(_channelId: string, messageId: string, emoji: string): Promise<void> {
    this.out(`     (reacted ${emoji} to message ${messageId})`);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.lines?.close();
    this.lines = undefined;
    return Promise.resolve();
  }
}

function safeUserName(): string {
  try {
    return userInfo().username.replace(/[^A-Za-z0-9_.@-]/g, "_");
  } catch {
    // No passwd entry (some containers): the caller falls back to a fixed name.
    return "";
  }
}
