// The official MCP conformance suite (@modelcontextprotocol/conformance 0.1.13, its server scenarios)
// against `toolfleet mcp` over HTTP, backed by a real tools worker that runs the suite's fixture tools
// (test/support/fixtures/mcp-conformance-tools.ts). Every scenario is run: those toolfleet passes must
// pass, those it does not support must still fail (docs/mcp.md lists both, with the reasons), so the
// list there stays true.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { REDIS_URL, connect, dropNamespace, exited, startMcpProcess, startToolsProcess, testKeys, type CliChild } from "../support/redis-helpers.js";

const TOOLS = fileURLToPath(new URL("../support/fixtures/mcp-conformance-tools.js", import.meta.url));
const SUITE = fileURLToPath(new URL("../../../node_modules/@modelcontextprotocol/conformance/dist/index.js", import.meta.url));
const run = promisify(execFile);

const PASSING = [
  "server-initialize",
  "ping",
  "logging-set-level",
  "tools-list",
  "tools-call-simple-text",
  "tools-call-image",
  "tools-call-audio",
  "tools-call-embedded-resource",
  "tools-call-mixed-content",
  "tools-call-with-logging",
  "tools-call-error",
  "tools-call-with-progress",
  "json-schema-2020-12",
  "server-sse-multiple-streams",
  "dns-rebinding-protection",
];

/** Scenarios toolfleet does not support; why is in docs/mcp.md ("Conformance"). */
const FAILING = [
  "completion-complete",
  "tools-call-sampling",
  "tools-call-elicitation",
  "elicitation-sep1034-defaults",
  "elicitation-sep1330-enums",
  "resources-list",
  "resources-read-text",
  "resources-read-binary",
  "resources-templates-read",
  "resources-subscribe",
  "resources-unsubscribe",
  "prompts-list",
  "prompts-get-simple",
  "prompts-get-with-args",
  "prompts-get-embedded-resource",
  "prompts-get-with-image",
];

/** Runs one scenario; its "Passed: p/n, f failed, w warnings" line as numbers, and the output. */
async function scenario(url: string, name: string): Promise<{ passed: number; total: number; failed: number; warnings: number; output: string }> {
  const { stdout, stderr } = await run(process.execPath, [SUITE, "server", "--url", url, "--scenario", name], { timeout: 60_000 }).catch(
    (err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? "", stderr: err.stderr ?? "" }),
  );
  const output = `${stdout}\n${stderr}`;
  const m = /Passed: (\d+)\/(\d+), (\d+) failed, (\d+) warnings/.exec(output);
  assert.ok(m, `no result line for ${name}:\n${output}`);
  return { passed: Number(m[1]), total: Number(m[2]), failed: Number(m[3]), warnings: Number(m[4]), output };
}

describe("the MCP conformance suite against toolfleet mcp", () => {
  let k: Keys;
  let redis: RedisNode;
  const children: CliChild[] = [];
  let url = "";

  before(async () => {
    k = testKeys();
    redis = await connect();
    const env = { TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_TOOLS_SERVICE_MODE: "remote" };
    children.push(await startToolsProcess(["--worker-id", "conformance-tools", "--tools", TOOLS], env));
    // The suite sends no token: a loopback server with --no-auth, as a local desktop client would use it.
    const server = await startMcpProcess(["--worker-id", "conformance-mcp", "--no-auth", "--port", "0"], env);
    children.push(server);
    url = server.url;
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
    await dropNamespace(redis, k);
    await closeRedis(redis);
  });

  for (const name of PASSING)
    test(`${name} passes`, async () => {
      const r = await scenario(url, name);
      assert.ok(r.total > 0 && r.passed === r.total && r.failed === 0 && r.warnings === 0, r.output);
    });

  test("the scenarios toolfleet does not support fail (resources, prompts, completion, sampling, elicitation)", async () => {
    for (const name of FAILING) {
      const r = await scenario(url, name);
      assert.ok(r.failed > 0, `${name} passed: move it to PASSING and to docs/mcp.md\n${r.output}`);
    }
  });

  test("server-sse-polling runs no check (it needs resumable SSE streams)", async () => {
    const r = await scenario(url, "server-sse-polling");
    assert.equal(r.failed, 0, r.output);
    assert.equal(r.passed, 0, `it now checks something: record it in docs/mcp.md\n${r.output}`);
  });
});
