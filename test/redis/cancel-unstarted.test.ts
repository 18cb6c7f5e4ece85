import assert from "node:assert/strict";
import { test } from "node:test";
import { ToolfleetError } from "../../src/core/errors.js";
import { closeRedis } from "../../src/redis/client.js";
import { ensureGroup } from "../../src/redis/streams.js";
import { cancelUnstarted, readRequestState, type PublishedRequest } from "../../src/tool-exec/idempotency.js";
import { connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

// Requirement: a caller may run a non-idempotent tool itself only when Redis proves no worker ever
// took its request: the same Redis (run_id) still holds the entry, no consumer holds it, the group
// never read it. Each way that proof fails has its own answer, and only a proven one is cancelled.

test("cancelUnstarted cancels only a request the group never read, on the Redis that took it", async () => {
  const redis = await connect();
  const k = testKeys();
  try {
    const stream = k.toolsStream;
    const group = k.group(stream);
    await ensureGroup(redis, stream, group);
    const runId = /^run_id:([0-9a-f]+)/m.exec(await redis.sendCommand<string>(["INFO", "server"]))?.[1] ?? "";
    const add = async (): Promise<PublishedRequest> => ({
      stream,
      group,
      runId,
      entryId: await redis.sendCommand<string>(["XADD", stream, "*", "body", "{}"]),
    });

    const read = await add();
    const acked = await add();
    // The worker's steps: a read puts both in its pending list; the second is finished and acked.
    await redis.sendCommand(["XREADGROUP", "GROUP", group, "w1", "COUNT", "2", "STREAMS", stream, ">"]);
    await redis.sendCommand(["XACK", stream, group, acked.entryId]);
    const unread = await add();
    const deleted = await add();
    await redis.sendCommand(["XDEL", stream, deleted.entryId]);

    assert.equal(await cancelUnstarted(redis, k, read, "t:read", 60), "pending");
    assert.equal(await cancelUnstarted(redis, k, acked, "t:acked", 60), "delivered");
    assert.equal(await cancelUnstarted(redis, k, deleted, "t:deleted", 60), "gone");
    // Another Redis answered the XADD (a restart, a failover): nothing it says about this one counts.
    assert.equal(await cancelUnstarted(redis, k, { ...unread, runId: "0".repeat(40) }, "t:unread", 60), "restarted");
    for (const idem of ["t:read", "t:acked", "t:deleted", "t:unread"]) assert.equal(await readRequestState(redis, k, idem), null, `${idem}: no marker`);

    assert.equal(await cancelUnstarted(redis, k, unread, "t:unread", 60), "cancelled");
    assert.equal((await readRequestState(redis, k, "t:unread"))?.state, "cancelled");
    // The entry is withdrawn: no worker can read it now, whatever its tool (one that takes no claim included).
    assert.deepEqual(await redis.xRange(unread.stream, unread.entryId, unread.entryId), []);
    // A second cancel finds it gone: nothing more to prove.
    assert.equal(await cancelUnstarted(redis, k, unread, "t:unread", 60), "gone");

    // No group at all: nobody ever read the stream.
    const other = k.gatewayStream();
    const lone: PublishedRequest = {
      stream: other,
      group: k.group(other),
      runId,
      entryId: await redis.sendCommand<string>(["XADD", other, "*", "body", "{}"]),
    };
    assert.equal(await cancelUnstarted(redis, k, lone, "t:lone", 60), "cancelled");

    await assert.rejects(
      cancelUnstarted(redis, k, { ...unread, entryId: "nope" }, "t:bad", 60),
      (err: unknown) => err instanceof ToolfleetError && err.code === "ID_INVALID",
    );
  } finally {
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
