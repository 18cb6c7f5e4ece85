import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const OWN_TOOLS = fileURLToPath(new URL("../support/fixtures/own-tools.js", import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;

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

  // A call longer than the background threshold is still waited for: a task left in the background would die with the command.
  const slow = await cli(["call", "slow_task", '{"seconds":1}'], { TOOLFLEET_BACKGROUND_THRESHOLD: "0.2" });
  assert.equal(slow.code, 0, slow.stderr);
  assert.equal(slow.stdout, "work finished after 1s.\n");
});

test("toolfleet call: bad JSON, missing tool, bad config and unknown command are clear errors", async () => {
  const badJson = await cli(["call", "echo", "{text"]);
  assert.equal(badJson.code, 2);
  assert.match(badJson.stderr, /the arguments are not valid JSON/);
  assert.equal((await cli(["call"])).code, 2);
  const badConfig = await cli(["call", "echo", '{"text":"x"}'], { TOOLFLEET_TOOLS_EXEC_TIMEOUT: "later" });
  assert.equal(badConfig.code, 1);
  assert.match(badConfig.stderr, /^toolfleet: Invalid config: toolsExecTimeout \(from TOOLFLEET_TOOLS_EXEC_TIMEOUT\)/);
  const walkthroughOfOtherTools = await cli(["up", "--tools", "./my-tools.js", "--exit-after-walkthrough"]);
  assert.equal(walkthroughOfOtherTools.code, 2);
  assert.match(walkthroughOfOtherTools.stderr, /the walk-through calls the example tools: leave out --tools/);
  const unknown = await cli(["fly"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'fly'/);
  const extra = await cli(["call", "echo", "{}", "more"]);
  assert.equal(extra.code, 2);
  assert.match(extra.stderr, /^toolfleet call: unexpected argument 'more' \(it takes at most 2\)\nRun 'toolfleet call --help' for its usage\.\n$/);
  const noUser = await cli(["call", "echo", '{"text":"x"}', "--user", ""]);
  assert.equal(noUser.code, 2);
  assert.match(noUser.stderr, /--user: expected a user id, got an empty one/);
});

// What each command's --help must list, written out here rather than read from the tables, so a
// table that loses or gains an option fails this test.
const COMMON = ["log-format", "help", "version"];
const SERVE = ["redis", "worker-id", "concurrency", "tools", "permissions", "metrics-port", "metrics-host", "lease-ms"];
const EXPECTED_OPTIONS: Record<string, string[]> = {
  demo: [],
  call: ["user", "mode", "tools"],
  tools: [...SERVE, "pool", "shards", "mcp", "mcp-url", "mcp-prefix"],
  gateway: [...SERVE, "adapter", "host", "port", "shard", "shard-count"],
  inference: SERVE,
  up: ["tools-workers", "adapter", "host", "port", "tools", "in-process", "walkthrough", "exit-after-walkthrough"],
  status: ["redis", "json"],
  catalog: ["redis", "json"],
  dashboard: ["redis", "host", "port"],
  mcp: [
    "redis",
    "worker-id",
    "host",
    "port",
    "stdio",
    "tokens",
    "no-auth",
    "user",
    "allowed-host",
    "tools",
    "permissions",
    "metrics-port",
    "metrics-host",
    "days",
  ],
};

test("every command answers --help with its own options only, and --version with the package version", async () => {
  const top = await cli(["--help"]);
  assert.equal(top.code, 0);
  for (const name of Object.keys(EXPECTED_OPTIONS)) assert.match(top.stdout, new RegExp(`^  ${name}\\b`, "m"), `${name} in toolfleet --help`);
  assert.deepEqual(await cli(["--version"]), { code: 0, stdout: `${VERSION}\n`, stderr: "" });

  await Promise.all(
    Object.entries(EXPECTED_OPTIONS).map(async ([name, options]) => {
      const help = await cli([name, "--help"]);
      assert.equal(help.code, 0, `${name} --help: ${help.stderr}`);
      assert.match(help.stdout, new RegExp(`^Usage: toolfleet ${name}[ \\n]`), name);
      const listed = [...help.stdout.matchAll(/^ {2}(?:-\w, )?--([\w-]+)/gm)].map((m) => m[1]);
      assert.deepEqual(listed, [...options, ...COMMON], `${name} --help lists its options`);
      // `help <command>` is the same page.
      assert.equal((await cli(["help", name])).stdout, help.stdout);
      assert.deepEqual(await cli([name, "--version"]), { code: 0, stdout: `${VERSION}\n`, stderr: "" }, `${name} --version`);
    }),
  );
  // --help answers before anything runs: the demo does not start, a worker does not look for Redis.
  const demo = await cli(["demo", "--help"]);
  assert.doesNotMatch(demo.stdout, /route=/);
});

test("a misspelt command or option is a usage error that suggests the right one (exit 2)", async () => {
  const command = await cli(["stauts"]);
  assert.equal(command.code, 2);
  assert.match(command.stderr, /^toolfleet: unknown command 'stauts' \(did you mean 'status'\?\)/);
  const option = await cli(["status", "--jsno"]);
  assert.equal(option.code, 2);
  assert.match(option.stderr, /^toolfleet status: unknown option '--jsno' \(did you mean '--json'\?\)/);
  const gatewayOnly = await cli(["tools", "--port", "8080"]);
  assert.equal(gatewayOnly.code, 2);
  assert.match(gatewayOnly.stderr, /^toolfleet tools: unknown option '--port'/);
  const mode = await cli(["call", "echo", "--mode", "remot"]);
  assert.equal(mode.code, 2);
  assert.match(mode.stderr, /--mode: expected in_process, remote or shadow, got 'remot' \(did you mean 'remote'\?\)/);
});

test("toolfleet call suggests the closest tool names for one it does not have", async () => {
  const example = await cli(["call", "calculater", "{}"]);
  assert.equal(example.code, 1);
  assert.equal(example.stdout, "Unknown tool 'calculater': no tool of that name is registered.\n");
  assert.match(example.stderr, /^toolfleet call: unknown tool 'calculater' \(did you mean 'calculator'\?\)$/m);
  const own = await cli(["call", "whoami_shot", "{}", "--tools", OWN_TOOLS]);
  assert.match(own.stderr, /unknown tool 'whoami_shot' \(did you mean 'whoami_shout'\?\)/);
});

test("toolfleet call --tools runs a tool of your own module in this process, as the OS user by default", async () => {
  const ok = await cli(["call", "whoami_shout", '{"text":"hi"}', "--tools", OWN_TOOLS]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `HI (user ${userInfo().username || "cli"})\n`);
  assert.match(ok.stderr, /mode=in_process route=local/);
  const named = await cli(["call", "whoami_shout", '{"text":"hi"}', "--tools", OWN_TOOLS, "--user", "ada"]);
  assert.equal(named.stdout, "HI (user ada)\n");
  // The module replaces the examples: their tools are not there.
  assert.equal((await cli(["call", "echo", '{"text":"x"}', "--tools", OWN_TOOLS])).code, 1);
});

test("a tools module that does not parse is named with its file, line and column", async () => {
  const dir = mkdtempSync(join(tmpdir(), "toolfleet-cli-"));
  try {
    const bad = join(dir, "broken.mjs");
    writeFileSync(bad, 'export const tools = [];\nexport const permissions = {\n  echo: ["*"] oops,\n};\n');
    const importer = join(dir, "imports-broken.mjs");
    writeFileSync(importer, 'export { tools } from "./broken.mjs";\n');
    const call = await cli(["call", "echo", "{}", "--tools", bad]);
    assert.equal(call.code, 1);
    assert.match(
      call.stderr,
      new RegExp(`^toolfleet: cannot load the tools module .*broken\\.mjs: ${escape(bad)}:3:15: SyntaxError: Unexpected identifier 'oops'`),
    );
    // The file at fault is named even when it is not the module given, and a worker reports it the same way.
    const worker = await cli(["tools", "--tools", importer]);
    assert.equal(worker.code, 1);
    assert.match(worker.stderr, new RegExp(`${escape(bad)}:3:15: SyntaxError`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--log-format and TOOLFLEET_LOG_FORMAT switch log lines between JSON and short pretty lines", async () => {
  const failing = ["call", "always_fails", "{}", "--tools", OWN_TOOLS];
  const isJson = (line: string): boolean => line.startsWith("{") && (JSON.parse(line) as { msg?: unknown }).msg === "tool handler failed";
  const prettyLine = /^\d\d:\d\d:\d\d\.\d{3} ERROR toolfleet\.call: tool handler failed tool=always_fails err="this tool always fails"$/m;

  // Not a terminal (a pipe, as here): JSON.
  const piped = await cli(failing);
  assert.equal(piped.code, 1);
  assert.ok(piped.stderr.split("\n").some(isJson), piped.stderr);

  const pretty = await cli([...failing, "--log-format", "pretty"]);
  assert.match(pretty.stderr, prettyLine);
  assert.ok(!pretty.stderr.includes("{"), pretty.stderr);
  assert.match((await cli(failing, { TOOLFLEET_LOG_FORMAT: "pretty" })).stderr, prettyLine);

  // The flag wins over the environment.
  const json = await cli([...failing, "--log-format", "json"], { TOOLFLEET_LOG_FORMAT: "pretty" });
  assert.ok(json.stderr.split("\n").some(isJson), json.stderr);

  const bad = await cli(failing, { TOOLFLEET_LOG_FORMAT: "xml" });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /TOOLFLEET_LOG_FORMAT: expected json or pretty, got 'xml'/);
});

test("on a terminal, log lines are pretty by default (the CLI run under a pseudo-terminal)", async (t) => {
  // util-linux's script(1) gives the CLI a terminal for stdout and stderr, as a person's shell would.
  const hasScript = await run("script", ["--version"]).then(
    () => true,
    () => false,
  );
  if (!hasScript) return t.skip("script(1) is not installed");
  const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
  const line = [process.execPath, CLI, "call", "always_fails", "{}", "--tools", OWN_TOOLS].map(quote).join(" ");
  const shown = await run("script", ["-qec", line, "/dev/null"], { env: { PATH: process.env.PATH, TERM: "dumb" }, timeout: 30_000 }).then(
    (r) => r.stdout,
    (err: { stdout?: string }) => err.stdout ?? "",
  );
  // The level is coloured on a terminal (ESC [31m … ESC [0m); without the colour, the line is as in the pretty format.
  const plain = shown
    .split("\u001b")
    .join("")
    .replace(/\[\d+m/g, "");
  assert.match(shown, /\[31mERROR/);
  assert.match(plain, /^\d\d:\d\d:\d\d\.\d{3} ERROR toolfleet\.call: tool handler failed tool=always_fails/m);
  assert.ok(!shown.includes('{"level"'), shown);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

test("toolfleet demo prints each call with its route, duration and result", async () => {
  const { code, stdout } = await cli(["demo"]);
  assert.equal(code, 0);
  assert.match(stdout, /echo\s+route=local\s+[\d.]+ ms\s+\[ok\] hello, fleet/);
  assert.match(stdout, /discord_react\s+route=gateway\s+[\d.]+ ms\s+\[ok\] Reacted with/);
  assert.match(stdout, /slow_task\s+route=local→background/);
  assert.match(stdout, /get_task_result .*\[ok\] Task .* finished: report finished after 1s\./);
  assert.match(stdout, /\[denied\] Permission denied: user 'alice' is not allowed to run tool 'admin_stats'\./);
});
