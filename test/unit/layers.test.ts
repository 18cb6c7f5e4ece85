import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

// The folders of src/, lowest first: a folder imports only from folders before it in this list
// (docs/architecture.md, "Layers"). Folders on one row do not import each other.
const LAYERS = [["core"], ["config"], ["redis"], ["tool-exec", "chat"], ["inference", "gateway"], ["mcp"], ["fleet"], ["cli"]];

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

test("each folder of src/ imports only from the layers below it", () => {
  const rank = new Map(LAYERS.flatMap((row, i) => row.map((name) => [name, i] as const)));
  const wrong: string[] = [];
  let checked = 0;
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file).split("/");
    if (from.length < 2) continue; // index.ts and protocol.ts sit on top and may import anything
    const own = from[0] ?? "";
    assert.ok(rank.has(own), `src/${own}/ is in no layer: add it to LAYERS`);
    for (const m of readFileSync(file, "utf8").matchAll(/from "(\.\.?\/[^"]+)"/g)) {
      const target = relative(SRC, resolve(dirname(file), m[1] ?? "")).split("/");
      const folder = target.length > 1 ? (target[0] ?? "") : "(top)";
      checked++;
      if (folder === own) continue;
      if (!((rank.get(folder) ?? Infinity) < (rank.get(own) ?? -1))) wrong.push(`src/${from.join("/")} imports ${m[1]}`);
    }
  }
  assert.ok(checked > 100, `only ${checked} imports found: is SRC right?`);
  assert.deepEqual(wrong, []);
});
