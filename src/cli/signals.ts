import type { Logger } from "../core/log.js";

/**
 * Resolves on the first SIGINT or SIGTERM; a second one exits at once.
 *
 * A worker that `toolfleet up` supervises leaves SIGINT to its supervisor:
 * Ctrl-C in the terminal reaches every process of the group, and the
 * supervisor answers it with SIGTERM to each. It also stops when the
 * supervisor goes away (its IPC channel closes), so no worker outlives its fleet.
 */
export function untilStopSignal(logger: Logger, what: string, options: { supervised?: boolean } = {}): Promise<string> {
  return new Promise((resolve) => {
    const stop = (why: string): void => {
      logger.info({ why, what }, "stopping: finishing in-flight calls");
      process.off("SIGTERM", onTerm);
      process.off("disconnect", onDisconnect);
      process.once("SIGTERM", () => process.exit(143));
      if (!options.supervised) {
        process.off("SIGINT", onInt);
        process.once("SIGINT", () => process.exit(130));
      }
      resolve(why);
    };
    const onTerm = (): void => stop("SIGTERM");
    const onInt = (): void => (options.supervised ? logger.debug({ what }, "SIGINT left to the supervisor") : stop("SIGINT"));
    const onDisconnect = (): void => stop("supervisor gone");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    if (options.supervised) process.on("disconnect", onDisconnect);
  });
}
