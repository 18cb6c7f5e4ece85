/**
 * A concurrency limit that several StreamWorkers share: a tools worker that reads K shard streams
 * (`tools --shards K`) runs at most its one `concurrency` of entries over all of them, not K times it.
 */
export class SharedSlots {
  private held = 0;
  private waiters: (() => void)[] = [];

  /** How many workers share the slots: each read asks for its share of the free ones. */
  private readers = 0;

  constructor(readonly size: number) {}

  /** Counts one more worker sharing the slots. */
  join(): void {
    this.readers++;
  }

  /**
   * How many entries one worker's next read may bring: its share of the free slots (all of them when it reads
   * alone). The K readers block at once, so each asking for every free slot could bring K times the limit;
   * asking for a share bounds that to the limit plus K.
   */
  get share(): number {
    return Math.max(1, Math.ceil(this.free / Math.max(1, this.readers)));
  }

  /** Slots not held now (may be negative for a moment: a reclaim may run a little over the limit). */
  get free(): number {
    return this.size - this.held;
  }

  take(): void {
    this.held++;
  }

  /** Frees a slot and wakes every waiter (each checks again: another may have taken it first). */
  release(): void {
    this.held--;
    this.wake();
  }

  /** Resolves at the next release or wake. */
  next(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  wake(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
