import type { Logger } from "../core/log.js";

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
export function untilStopSignal(logger: Logger, what: string): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal, what }, "stopping: finishing in-flight calls");
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.once("SIGINT", () => process.exit(130));
      process.once("SIGTERM", () => process.exit(143));
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

/**
 * For a worker that `toolfleet up` supervises (it has an IPC channel): the
 * supervisor decides when to stop. Ctrl-C in the terminal reaches every
 * process of the group, so SIGINT is left to the supervisor, which answers
 * with SIGTERM; a supervisor that dies (the channel closes) stops the worker
 * too, so no worker outlives its fleet.
 */
export function untilSupervisorStops(logger: Logger, what: string): Promise<string> {
  return new Promise((resolve) => {
    const ignoreInt = (): void => logger.debug({ what }, "SIGINT left to the supervisor");
    const done = (why: string): void => {
      logger.info({ why, what }, "stopping: finishing in-flight calls");
      process.off("SIGTERM", onTerm);
      process.off("disconnect", onDisconnect);
      process.once("SIGTERM", () => process.exit(143));
      resolve(why);
    };
    const onTerm = (): void => done("SIGTERM");
    const onDisconnect = (): void => done("supervisor gone");
    process.on("SIGINT", ignoreInt);
    process.on("SIGTERM", onTerm);
    process.on("disconnect", onDisconnect);
  });
}
