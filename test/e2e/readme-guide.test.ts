import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../..", import.meta.url));

// The README's "Defining a tool" is a sequence a newcomer pastes; its two files must run as written.
// The project here stands in for `npm install toolfleet zod`: node_modules links to this build and its zod.
test("the README's Defining a tool guide: tools.js and run.js run as written in an ESM project", async () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const block = (name: string): string => {
    const found = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1] ?? "").find((b) => b.startsWith(`// ${name}\n`));
    assert.ok(found, `README.md has a js block starting // ${name}`);
    return found;
  };
  const dir = mkdtempSync(join(tmpdir(), "toolfleet-guide-"));
  try {
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "my-bot", type: "module" }));
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(ROOT, join(dir, "node_modules", "toolfleet"), "dir");
    symlinkSync(join(ROOT, "node_modules", "zod"), join(dir, "node_modules", "zod"), "dir");
    writeFileSync(join(dir, "tools.js"), block("tools.js"));
    writeFileSync(join(dir, "run.js"), block("run.js"));
    const { stdout } = await run(process.execPath, ["run.js"], { cwd: dir, timeout: 20_000 });
    const [rolled = "", refused = ""] = stdout.trim().split("\n");
    const result = JSON.parse(rolled) as { rolls: number[]; total: number };
    assert.equal(result.rolls.length, 3);
    assert.ok(
      result.rolls.every((r) => Number.isInteger(r) && r >= 1 && r <= 6),
      rolled,
    );
    assert.equal(
      result.total,
      result.rolls.reduce((a, b) => a + b, 0),
    );
    assert.match(refused, /^Invalid arguments for tool 'roll_dice': count: Too small/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
