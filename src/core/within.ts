/**
 * Waits for `work` at most `ms`; past that, rejects with a message naming
 * `what`. For clean-up on the way out (stop()), which must end even when
 * Redis is away: the work itself is left to finish or fail on its own.
 */
export async function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    // Ref'd on purpose: the wait itself is work in progress, and it is cleared as soon as the work ends.
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  // If the work fails after we stopped waiting, that failure has already been reported as the timeout.
  work.catch(() => undefined);
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
