// The catalog watch's reconnect, on a redis-server of the test's own: the test
// finds the watcher's connection by its name in CLIENT LIST, and that name
// ("catalog-watch") carries no namespace, so on the shared Redis it would also
// count the watchers of every other fleet and test running there.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { calculator, echo } from "../../examples/tools.js";
import { buildCatalog } from "../../src/tool-exec/catalog.js";
import { publishCatalog, watchCatalog } from "../../src/tool-exec/catalog-parts.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { OwnRedis, connect, dropNamespace, testKeys } from "../support/redis-helpers.js";

describe("catalog", () => {
  describe("in a Redis of its own", () => {
    let own: OwnRedis;
    let redis: RedisNode;
    const k = testKeys();
    before(async () => {
      own = await OwnRedis.start();
      redis = await connect(own.url);
    });
    after(async () => {
      await dropNamespace(redis, k);
      await closeRedis(redis);
      await own.stop();
    });

    test("watch reloads on each notice, and again after its connection comes back", async () => {
      const logger = new RecordingLogger();
      let reloads = 0;
      const watch = await watchCatalog(redis, k, { url: own.url, logger, onChange: () => void reloads++ });
      try {
        await publishCatalog(redis, k, buildCatalog([echo], {}), { pool: "default", workerId: "w1" });
        await eventually(() => assert.equal(reloads, 1));
        await publishCatalog(redis, k, buildCatalog([echo, calculator], {}), { pool: "default", workerId: "w1" });
        await eventually(() => assert.equal(reloads, 2));

        // Cut the subscriber's connection, as a network blip or a Redis failover would.
        const clients = (await redis.sendCommand<string>(["CLIENT", "LIST", "TYPE", "pubsub"])).split("\n");
        const ids = clients.filter((l) => l.includes("name=catalog-watch ")).map((l) => /id=(\d+)/.exec(l)?.[1]);
        assert.equal(ids.length, 1, clients.join("\n"));
        await redis.sendCommand(["CLIENT", "KILL", "ID", ids[0] as string]);
        // The reconnect itself triggers a reload (a notice may have been missed) …
        await eventually(() => assert.ok(reloads >= 3), 5000);
        const afterReconnect = reloads;
        // … and the subscription is back: a new notice arrives.
        await publishCatalog(redis, k, buildCatalog([calculator], {}), { pool: "default", workerId: "w1" });
        await eventually(() => assert.equal(reloads, afterReconnect + 1), 5000);
      } finally {
        await watch.close();
      }
    });
  });
});
