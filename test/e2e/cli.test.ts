import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test("toolfleet call runs one call in process and prints its result", async () => {
  const ok = await cli(["call", "calculator", '{"a":2,"op":"power","b":10}', "--user", "alice"]);
  assert.equal(ok.code, 0);
  assert.equal(ok.stdout, '{"result":1024}\n');
  assert.match(ok.stderr, /mode=in_process route=local [\d.]+ ms/);

  const denied = await cli(["call", "admin_stats", "{}", "--user", "alice"]);
  assert.equal(denied.code, 1);
  assert.equal(denied.stdout, "Permission denied: user 'alice' is not allowed to run tool 'admin_stats'.\n");

  const image = await cli(["call", "send_image", '{"width":8,"height":8}']);
  assert.match(image.stdout, /\[sent file\] gradient\.png \(image\/png, \d+ bytes\)/);
});

test("toolfleet call: bad JSON, missing tool, bad config and unknown command are clear errors", async () => {
  const badJson = await cli(["call", "echo", "{text"]);
  assert.equal(badJson.code, 2);
  assert.match(badJson.stderr, /the arguments are not valid JSON/);
  assert.equal((await cli(["call"])).code, 2);
  const badConfig = await cli(["call", "echo", '{"text":"x"}'], { TOOLFLEET_TOOLS_EXEC_TIMEOUT: "later" });
  assert.equal(badConfig.code, 1);
  assert.match(badConfig.stderr, /^toolfleet: Invalid config: toolsExecTimeout \(from TOOLFLEET_TOOLS_EXEC_TIMEOUT\)/);
  const unknown = await cli(["fly"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'fly'/);
});

test("toolfleet demo prints each call with its route, duration and result", async () => {
  const { code, stdout } = await cli(["demo"]);
  assert.equal(code, 0);
  assert.match(stdout, /echo\s+route=local\s+[\d.]+ ms\s+\[ok\] hello, fleet/);
  assert.match(stdout, /discord_react\s+route=gateway\s+[\d.]+ ms\s+\[ok\] Reacted with/);
  assert.match(stdout, /slow_task\s+route=local→background/);
  assert.match(stdout, /get_task_result .*\[ok\] Task .* finished: report finished after 1s\./);
  assert.match(stdout, /\[denied\] Permission denied: user 'alice' is not allowed to run tool 'admin_stats'\./);
});
