import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const DIST_SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");

// A fresh process imports `modules` with a loader hook that reports every module it loads,
// and prints the URLs that belong to the `openai` package.
function openaiModulesLoadedBy(modules: string[]): string[] {
  const hook = `data:text/javascript,${encodeURIComponent(
    "let port; export function initialize(data) { port = data.port; } export async function load(url, context, next) { port.postMessage(url); return next(url, context); }",
  )}`;
  const script = `
    import { register } from "node:module";
    import { MessageChannel } from "node:worker_threads";
    const { port1, port2 } = new MessageChannel();
    const loaded = [];
    port1.on("message", (url) => loaded.push(url));
    register(${JSON.stringify(hook)}, { data: { port: port2 }, transferList: [port2] });
    for (const m of ${JSON.stringify(modules)}) await import(m);
    await new Promise((r) => setTimeout(r, 200)); // the hook's last messages
    port1.close();
    if (!loaded.some((u) => u.includes("/src/index.js") || u.includes("/src/fleet/"))) throw new Error("the hook saw nothing: " + loaded.length);
    console.log(JSON.stringify(loaded.filter((u) => u.includes("/node_modules/openai/"))));
  `;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
  return JSON.parse(out) as string[];
}

test("importing the root package loads no LLM client", () => {
  assert.deepEqual(openaiModulesLoadedBy([resolve(DIST_SRC, "index.js")]), []);
});

test("a tools worker (its fleet module and the CLI that starts it) loads no LLM client", () => {
  assert.deepEqual(openaiModulesLoadedBy([resolve(DIST_SRC, "fleet/tools-worker.js"), resolve(DIST_SRC, "cli/serve.js")]), []);
});

test("the check sees the LLM client when it is loaded", () => {
  // Without this, an empty list could mean the hook saw nothing of openai at all.
  const seen = openaiModulesLoadedBy([resolve(DIST_SRC, "index.js"), "openai"]);
  assert.ok(seen.length > 0, "importing openai showed no module of it");
});
