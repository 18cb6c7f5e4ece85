import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const EMBED = ["greet", "in-process", "tools-worker", "inference", "long-tools"];

// The README's embedding programs are the files of examples/embed/, which the build compiles
// (strict, as every file of the project): the page shows them importing the published name.
test("the README's embedding examples are the compiled programs of examples/embed/, as written", () => {
  const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  for (const name of EMBED) {
    const source = readFileSync(resolve(ROOT, `examples/embed/${name}.ts`), "utf8").replaceAll('"../../src/index.js"', '"toolfleet"');
    assert.ok(blocks.includes(source), `README.md has no ts block equal to examples/embed/${name}.ts (with its import of "toolfleet")`);
  }
});

test("the embedding examples import only the package's root", () => {
  for (const name of EMBED) {
    const source = readFileSync(resolve(ROOT, `examples/embed/${name}.ts`), "utf8");
    const imports = [...source.matchAll(/from "([^"]+)"/g)].map((m) => m[1]);
    for (const spec of imports)
      assert.ok(spec === "../../src/index.js" || spec === "zod" || spec?.startsWith("./"), `examples/embed/${name}.ts imports ${spec}`);
  }
});
