/**
 * The web chat's "the user left": a channel whose every page has closed, and
 * stays closed for `graceMs` (a reload reopens one at once), has its awaited
 * answers cancelled, so their running tools stop instead of working for nobody.
 */
export class AbandonWatch {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly graceMs: number,
    private readonly onAbandoned: (channelId: string) => void,
  ) {}

  /** A page of the channel opened: it is not abandoned. */
  opened(channelId: string): void {
    clearTimeout(this.timers.get(channelId));
    this.timers.delete(channelId);
  }

  /** The channel's last page closed. */
  allClosed(channelId: string): void {
    this.opened(channelId);
    // The adapter stopping closes every page: that is not users leaving.
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(channelId);
      this.onAbandoned(channelId);
    }, this.graceMs);
    timer.unref();
    this.timers.set(channelId, timer);
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
