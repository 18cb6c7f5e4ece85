// A real third-party MCP server from npm (@modelcontextprotocol/server-everything) run by a real
// `toolfleet tools --mcp` process: its tools in `toolfleet catalog`, called with `toolfleet call --mode
// remote`, and the worker restarting it after it is killed (its tools leave the catalog meanwhile).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { loadCatalog } from "../../src/tool-exec/catalog-parts.js";
import { eventually } from "../support/helpers.js";
import { CLI, REDIS_URL, connect, dropNamespace, exited, startToolsProcess, testKeys, type CliChild } from "../support/redis-helpers.js";

const run = promisify(execFile);
const EVERYTHING = createRequire(import.meta.url).resolve("@modelcontextprotocol/server-everything/dist/index.js");

let k: Keys;
let redis: RedisNode;
let worker: CliChild;
let env: NodeJS.ProcessEnv;

/** `toolfleet <args>` against the test namespace; its stdout. */
async function toolfleet(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env, TOOLFLEET_LOG_LEVEL: "warn" }, timeout: 20_000 });
  return stdout;
}

/** The MCP server process: the worker's only child. */
function serverPid(): number {
  const children = readFileSync(`/proc/${worker.pid}/task/${worker.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  assert.equal(children.length, 1, `the worker's children: ${children.join(" ")}`);
  return children[0] ?? 0;
}

const everythingTools = async (): Promise<string[]> => ((await loadCatalog(redis, k))?.tools ?? []).map((t) => t.name).filter((n) => n.startsWith("ev_"));

before(async () => {
  k = testKeys();
  redis = await connect();
  env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL };
  worker = await startToolsProcess(["--worker-id", "mcp-ev", "--mcp", `${process.execPath} ${EVERYTHING} stdio`, "--mcp-prefix", "ev_"], env);
});

after(async () => {
  worker.kill("SIGTERM");
  assert.equal(await exited(worker), 0, worker.output());
  await dropNamespace(redis, k);
  await closeRedis(redis);
});

test("server-everything's tools are in `toolfleet catalog`, prefixed, with their MCP hints", async () => {
  const catalog = await toolfleet("catalog");
  assert.match(catalog, /^ {2}ev_echo +\w+ +read-only,idempotent +everyone$/m);
  assert.match(catalog, /^ {2}ev_get-structured-content +\w+ +read-only,idempotent,structured/m);
  assert.match(catalog, /^ {2}ev_gzip-file-as-resource +\w+ +idempotent,open-world/m);
  const json = JSON.parse(await toolfleet("catalog", "--json")) as { tools: { name: string; parameters: { properties: object } }[] };
  const sum = json.tools.find((t) => t.name === "ev_get-sum");
  assert.deepEqual(Object.keys(sum?.parameters.properties ?? {}), ["a", "b"]);
});

test("its tools run from `toolfleet call --mode remote`: text, structured content, an image, and bad arguments refused by its schema", async () => {
  assert.match(await toolfleet("call", "ev_get-sum", '{"a":2,"b":3}', "--mode", "remote"), /The sum of 2 and 3 is 5\./);
  assert.match(await toolfleet("call", "ev_get-structured-content", '{"location":"Chicago"}', "--mode", "remote"), /\[structured\] \{"temperature":/);
  assert.match(await toolfleet("call", "ev_get-tiny-image", "{}", "--mode", "remote"), /\[image\] image\/png, \d+ bytes/);
  const bad = await run(process.execPath, [CLI, "call", "ev_get-sum", '{"a":"two"}', "--mode", "remote"], { env: { ...process.env, ...env } }).catch(
    (err: { stdout: string }) => err,
  );
  assert.match(bad.stdout, /Invalid arguments for tool 'ev_get-sum': b: is required; a: must be number/);
});

test("the MCP server killed: its tools leave the catalog, the worker restarts it, they come back and answer", async (t) => {
  const before = (await everythingTools()).length;
  assert.ok(before >= 10, `only ${before} tools`);
  const first = serverPid();
  process.kill(first, "SIGKILL");
  // Gone from the catalog (the worker republished its part without them), while the worker's own tools stay.
  await eventually(async () => assert.deepEqual(await everythingTools(), []), 10_000, 5);
  assert.ok(((await loadCatalog(redis, k))?.tools.length ?? 0) > 0, "the worker's own tools are still published");
  const back = Date.now();
  await eventually(async () => assert.equal((await everythingTools()).length, before), 15_000, 20);
  t.diagnostic(`tools back ${Date.now() - back} ms after they left`);
  const second = serverPid();
  assert.notEqual(second, first);
  assert.match(await toolfleet("call", "ev_echo", '{"message":"after the restart"}', "--mode", "remote"), /Echo: after the restart/);
  assert.ok(worker.exitCode === null, "the worker is still running");
});
