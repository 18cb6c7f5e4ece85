/**
 * Runs `fn` every `ms` until the returned function is called, never
 * overlapping itself (the next run is scheduled when this one ends). A failed
 * run goes to `onError` and the next one still comes. Timers are unref'd:
 * periodic upkeep never keeps a process alive.
 */
export function repeatEvery(ms: number, fn: () => Promise<void>, onError: (err: unknown) => void): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    timer = setTimeout(() => {
      fn()
        .catch(onError)
        .finally(() => {
          if (!stopped) schedule();
        });
    }, ms).unref();
  };
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
