import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { listen } from "../../src/core/listen.js";
import { isToolfleetError } from "../../src/core/errors.js";
import { RecordingLogger } from "../support/helpers.js";

// The one listen() of every HTTP server toolfleet runs (web chat, dashboard, metrics, MCP).

test("a port in use is ADDRESS_IN_USE with the message given; a server error after listening is logged and the server carries on", async () => {
  const logger = new RecordingLogger();
  const first = createServer((_req, res) => res.end("up"));
  const second = createServer();
  await listen(first, 0, "127.0.0.1", { inUse: "unused", what: "the first server", logger });
  const { port } = first.address() as AddressInfo;
  try {
    await assert.rejects(
      listen(second, port, "127.0.0.1", { inUse: `port ${port} is taken: pick another`, what: "the second server", logger }),
      (err: unknown) => isToolfleetError(err, "ADDRESS_IN_USE") && err.message === `port ${port} is taken: pick another`,
    );
    // With no listener left, this 'error' would throw out of emit() and end the process.
    first.emit("error", Object.assign(new Error("accept EMFILE"), { code: "EMFILE" }));
    assert.deepEqual(
      logger.at("error").map((r) => [r.msg, (r.fields.err as { message: string }).message]),
      [["the first server reported an error", "accept EMFILE"]],
    );
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "up");
  } finally {
    await new Promise((resolve) => first.close(resolve));
  }
});
