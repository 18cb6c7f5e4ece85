/** Rate-limit buckets kept at most (per address, per user); full buckets are dropped first, as they limit nothing. */
const MAX_BUCKETS = 10_000;

/**
 * Token buckets by key: `burst` at once, then `perMinute`. A bucket that has filled up again
 * limits nothing and is dropped (`sweep`); at most MAX_BUCKETS are kept, the least recently used
 * (Map order) dropped first.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(
    private readonly burst: number,
    perMinute: number,
  ) {
    this.perMs = perMinute / 60_000;
  }

  /** Takes a token: 0 when there was one, else the seconds until there is. */
  take(key: string, now = Date.now()): number {
    const bucket = this.buckets.get(key);
    const tokens = bucket ? Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.perMs) : this.burst;
    if (tokens < 1) return (1 - tokens) / this.perMs / 1000;
    this.buckets.delete(key);
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    if (this.buckets.size > MAX_BUCKETS) this.sweep(now);
    if (this.buckets.size > MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value ?? "");
    return 0;
  }

  sweep(now = Date.now()): void {
    for (const [key, b] of this.buckets) if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(key);
  }
}
