import type { RedisClient } from "./client.js";

/** How long an ack may wait for the next write to go out with; then it goes alone. */
const ACK_DELAY_MS = 5;

/**
 * Acks of entries whose replies Redis has taken, sent together as one `XACK`.
 * An ack goes out with the next entry's commands (`flush()` at each commit),
 * so calls that come one at a time cost one write each, not two; with no next
 * entry, after `ACK_DELAY_MS`. A failed `XACK` is logged: its entries stay
 * pending, are redelivered after the lease, and answered from the stored reply.
 */
export class AckBatch {
  private ids: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly sending = new Set<Promise<void>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly stream: string,
    private readonly group: string,
    private readonly onError: (err: unknown, ids: readonly string[]) => void,
  ) {}

  add(id: string): void {
    this.ids.push(id);
    this.timer ??= setTimeout(() => this.flush(), ACK_DELAY_MS);
  }

  /** Sends the acks gathered so far, in this turn's write. */
  flush(): void {
    if (this.ids.length === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const ids = this.ids;
    this.ids = [];
    // Forgotten in the same callbacks, not in a .finally(): two promises fewer per write, each of which an
    // installed OTel SDK pays a hook for on Node 20 (docs/observability.md, "What it costs").
    const sent: Promise<void> = this.redis.sendCommand(["XACK", this.stream, this.group, ...ids]).then(
      () => {
        this.sending.delete(sent);
      },
      (err: unknown) => {
        this.sending.delete(sent);
        this.onError(err, ids);
      },
    );
    this.sending.add(sent);
  }

  /** Sends what is gathered and waits for every XACK sent; for stop(). */
  async drain(): Promise<void> {
    this.flush();
    await Promise.all(this.sending);
  }
}
