/** An answer as the web chat page receives it. */
export interface WebAnswer {
  inReplyTo: string | null;
  text: string;
  files: { name: string; contentType: string; size: number; url: string }[];
  rich: unknown[];
}

interface Waiter {
  resolve: (answer: WebAnswer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A user of the web chat, in code: takes a session cookie from the page,
 * listens on the page's event stream, posts messages and waits for their
 * answers. The walk-through speaks to the fleet this way, as a browser would.
 */
export class WebChatClient {
  readonly reactions: { messageId: string; emoji: string }[] = [];
  /** The most recent answers pushed to this page (the last 100), whoever they answer. */
  readonly received: WebAnswer[] = [];
  private readonly answers = new Map<string, WebAnswer>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly abort = new AbortController();
  private cookie = "";

  private constructor(readonly baseUrl: string) {}

  static async open(url: string, timeoutMs = 5000): Promise<WebChatClient> {
    const client = new WebChatClient(url.endsWith("/") ? url : `${url}/`);
    const page = await fetch(client.baseUrl, { signal: AbortSignal.timeout(timeoutMs) });
    await page.text();
    client.cookie = (page.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    if (!client.cookie) throw new Error(`the chat page at ${url} gave no session cookie`);
    const events = await fetch(new URL("api/events", client.baseUrl), { headers: { cookie: client.cookie }, signal: client.abort.signal });
    if (!events.ok || !events.body) throw new Error(`the chat's event stream answered HTTP ${events.status}`);
    client.read(events.body).catch((err: unknown) => client.failAll(err instanceof Error ? err : new Error(String(err))));
    return client;
  }

  /** Sends a message and resolves with its answer. */
  async ask(text: string, timeoutMs = 30_000): Promise<{ messageId: string; answer: WebAnswer }> {
    const res = await fetch(new URL("api/messages", this.baseUrl), {
      method: "POST",
      headers: { cookie: this.cookie, "content-type": "application/json" },
      body: JSON.stringify({ text }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.json()) as { messageId?: string; error?: string };
    if (!res.ok || !body.messageId) throw new Error(`the chat refused the message: HTTP ${res.status} ${body.error ?? ""}`);
    const messageId = body.messageId;
    const early = this.answers.get(messageId);
    if (early) {
      this.answers.delete(messageId);
      return { messageId, answer: early };
    }
    const answer = await new Promise<WebAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(messageId);
        reject(new Error(`no answer to '${text.slice(0, 60)}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(messageId, { resolve, reject, timer });
    });
    return { messageId, answer };
  }

  /** The session cookie the page gave this user (`name=value`). */
  get sessionCookie(): string {
    return this.cookie;
  }

  /** Downloads a file an answer linked to. */
  async file(path: string): Promise<Buffer> {
    const res = await fetch(new URL(path.replace(/^\//, ""), this.baseUrl), { headers: { cookie: this.cookie } });
    if (!res.ok) throw new Error(`file ${path}: HTTP ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }

  close(): void {
    this.abort.abort();
    this.failAll(new Error("the chat client closed"));
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          this.event(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (err) {
      if (!this.abort.signal.aborted) throw err;
    }
  }

  private event(block: string): void {
    let event = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (event === "reaction") this.reactions.push(JSON.parse(data) as { messageId: string; emoji: string });
    if (event !== "answer") return;
    const answer = JSON.parse(data) as WebAnswer;
    this.received.push(answer);
    if (this.received.length > 100) this.received.shift();
    const id = answer.inReplyTo ?? "";
    const waiter = this.waiters.get(id);
    if (!waiter) {
      if (id) this.answers.set(id, answer); // came before the POST returned (or after its wait ended)
      if (this.answers.size > 100) this.answers.delete(this.answers.keys().next().value ?? "");
      return;
    }
    clearTimeout(waiter.timer);
    this.waiters.delete(id);
    waiter.resolve(answer);
  }

  private failAll(err: Error): void {
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
  }
}
