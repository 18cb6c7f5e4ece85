import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { defineTool } from "../../src/core/tool.js";
import { buildCatalog } from "../../src/tool-exec/catalog.js";
import { mergeCatalog, type CatalogPart } from "../../src/tool-exec/catalog-merge.js";

const tool = (name: string, description = `the ${name} tool`) => defineTool({ name, description, parameters: z.object({}), handler: () => name });

function part(pool: string, workerId: string, tools: ReturnType<typeof tool>[], permissions: Record<string, string[]>, publishedAt: number): CatalogPart {
  return { pool, workerId, catalog: buildCatalog(tools, permissions, publishedAt) };
}

test("merge: no part is no catalog; one part is that part's catalog, hash included", () => {
  assert.equal(mergeCatalog([]), null);
  const only = part("default", "w1", [tool("a"), tool("b")], { a: ["ada"] }, 1000);
  const merged = mergeCatalog([only]);
  assert.deepEqual(merged?.tools, only.catalog.tools);
  assert.deepEqual(merged?.permissions, only.catalog.permissions);
  assert.equal(merged?.schemaHash, only.catalog.schemaHash);
  assert.deepEqual(merged?.conflicts, []);
});

test("merge: the union of pools' tools, each permission from the part that runs the tool", () => {
  const gpu = part("gpu", "g1", [tool("render")], { render: ["ada"] }, 2000);
  const cpu = part("cpu", "c1", [tool("hash")], { hash: ["bob"], render: ["mallory"] }, 3000);
  const merged = mergeCatalog([cpu, gpu]);
  assert.deepEqual(
    merged?.tools.map((t) => t.name),
    ["hash", "render"],
  );
  // cpu is newer, but its entry for `render` (a tool it does not run) does not override the runner's.
  assert.deepEqual(merged?.permissions, { hash: ["bob"], render: ["ada"] });
  assert.deepEqual(
    merged?.publishers.map((p) => `${p.pool}/${p.workerId}`),
    ["cpu/c1", "gpu/g1"],
  );
  assert.equal(merged?.publishedAt, 3000);
  // The same parts in any order give the same catalog.
  assert.deepEqual(mergeCatalog([gpu, cpu]), merged);
});

test("merge: one tool with two schemas is shown once, as the newest part offers it, and listed as a conflict", () => {
  const old1 = part("default", "old-1", [tool("hash", "v1")], {}, 1000);
  const old2 = part("default", "old-2", [tool("hash", "v1")], {}, 1500);
  const fresh = part("default", "new-1", [tool("hash", "v2")], { hash: ["ada"] }, 2000);
  const merged = mergeCatalog([old1, fresh, old2]);
  assert.equal(merged?.tools.length, 1);
  assert.equal(merged?.tools[0]?.description, "v2");
  assert.deepEqual(merged?.permissions, { hash: ["ada"] });
  assert.deepEqual(merged?.conflicts, [
    {
      tool: "hash",
      offers: [
        { schemaHash: fresh.catalog.tools[0]!.schemaHash, publishers: ["default/new-1"] },
        { schemaHash: old1.catalog.tools[0]!.schemaHash, publishers: ["default/old-1", "default/old-2"] },
      ],
    },
  ]);
  // Once the old workers are gone, no conflict is left.
  assert.deepEqual(mergeCatalog([fresh])?.conflicts, []);
});

test("merge: a permission key from Redis named __proto__ is data, not a prototype", () => {
  const evil = part("default", "w1", [tool("a")], JSON.parse('{"__proto__": ["x"]}') as Record<string, string[]>, 1000);
  const merged = mergeCatalog([evil]);
  assert.deepEqual(Object.getPrototypeOf(merged?.permissions), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyNames(merged?.permissions), ["__proto__"]);
});
