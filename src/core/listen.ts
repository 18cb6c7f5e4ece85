import type { Server } from "node:net";
import { ToolfleetError } from "./errors.js";
import { errorFields, type Logger } from "./log.js";

/**
 * Starts `server` listening on `host:port`. A port in use rejects with ADDRESS_IN_USE and `inUse` as its
 * message (what to pass instead). Once listening, a server error (a failed accept, say) is logged as `what`'s
 * and the server carries on: the listen's own error listener is gone by then, and an 'error' event with no
 * listener would end the process.
 */
export async function listen(server: Server, port: number, host: string, options: { inUse: string; what: string; logger: Logger }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => reject(err.code === "EADDRINUSE" ? new ToolfleetError("ADDRESS_IN_USE", options.inUse) : err);
    server.once("error", failed);
    server.listen(port, host, () => {
      server.off("error", failed);
      resolve();
    });
  });
  server.on("error", (err) => options.logger.error({ ...errorFields(err) }, `${options.what} reported an error`));
}
