import assert from "node:assert/strict";
import { test } from "node:test";
import { defineConfig } from "../../src/config/schema.js";
import { MAX_SHARDS, checkedShards, keys, shardOf } from "../../src/redis/keys.js";
import { slotOf } from "../../src/redis/slots.js";
import { mergeCatalog, poolShards, shardConflicts, type CatalogPart } from "../../src/tool-exec/catalog-merge.js";
import { buildCatalog } from "../../src/tool-exec/catalog.js";

test("shard streams: shard 0 is the pool's stream; the others have no hash tag, each its own slot; dead letters stay in each shard's slot", () => {
  const k = keys("sg");
  assert.equal(k.poolShardStream("default", 0), "sg:stream:tools");
  assert.equal(k.poolShardStream("default", 1), "sg:stream:tools:shard:1");
  assert.equal(k.poolShardStream("gpu", 0), k.poolStream("gpu"));
  assert.equal(k.poolShardStream("gpu", 63), "sg:stream:tools:pool:gpu:shard:63");
  for (const pool of ["default", "gpu", "cpu"]) {
    const names = Array.from({ length: 8 }, (_, i) => k.poolShardStream(pool, i));
    assert.equal(new Set(names.map(slotOf)).size, 8, `${pool}: 8 shards on 8 slots`);
    for (const s of names) {
      assert.ok(!s.includes("{"), s);
      assert.equal(k.deadLetter(s), `{${s}}:dead`);
      assert.equal(slotOf(k.deadLetter(s)), slotOf(s));
    }
  }
  assert.throws(() => k.poolShardStream("gpu", 64), /invalid shard/);
  assert.throws(() => k.poolShardStream("gpu", -1), /invalid shard/);
  assert.throws(() => k.poolShardStream("gpu", 1.5), /invalid shard/);
});

test("shardOf: stable, in range, and spread for keys whose trace id is their call id", () => {
  assert.equal(shardOf("t:c-1", 7), shardOf("t:c-1", 7));
  assert.equal(shardOf("anything", 1), 0);
  for (const k of [2, 3, 8]) {
    const counts = new Array<number>(k).fill(0);
    for (let i = 0; i < 1200; i++) counts[shardOf(`w-${i}:w-${i}`, k)]!++;
    for (const n of counts) assert.ok(n > 1200 / k / 2, `k=${k}: ${counts.join(",")}`);
  }
});

test("shard counts are validated: 1..64 from code, config and env", () => {
  assert.equal(checkedShards(1), 1);
  assert.equal(checkedShards(MAX_SHARDS), 64);
  for (const bad of [0, 65, 2.5, Number.NaN]) assert.throws(() => checkedShards(bad), /use an integer from 1 to 64/);
  assert.equal(defineConfig().toolsShards, 1);
  assert.equal(defineConfig({ toolsShards: 8 }).toolsShards, 8);
  assert.throws(() => defineConfig({ toolsShards: 0 }), /toolsShards.*an integer from 1 to 64/);
  assert.throws(() => defineConfig({ toolsShards: 65 }), /toolsShards.*an integer from 1 to 64/);
});

test("a pool's shard count is the fewest its workers read; a mismatch is a conflict", () => {
  const catalog = buildCatalog([], {});
  const part = (pool: string, workerId: string, shards?: number): CatalogPart => ({ pool, workerId, catalog, ...(shards ? { shards } : {}) });
  const parts = [part("cpu", "a", 4), part("cpu", "b", 2), part("gpu", "g", 3), part("default", "d")];
  assert.deepEqual([...poolShards(parts)].sort(), [
    ["cpu", 2],
    ["default", 1],
    ["gpu", 3],
  ]);
  assert.deepEqual(shardConflicts(parts), [
    {
      pool: "cpu",
      used: 2,
      publishers: [
        { publisher: "cpu/a", shards: 4 },
        { publisher: "cpu/b", shards: 2 },
      ],
    },
  ]);
  const merged = mergeCatalog(parts);
  assert.equal(merged?.shardConflicts.length, 1);
  assert.deepEqual(
    merged?.publishers.map((p) => p.shards),
    [4, 2, undefined, 3],
  );
});
