import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ToolfleetError } from "../../src/index.js";
import { COMMON_OPTIONS, helpText, parseCommand, type CommandSpec } from "../../src/cli/args.js";
import { closest, didYouMean, editDistance } from "../../src/cli/suggest.js";
import { createLogger, formatPretty, logFormat } from "../../src/core/log.js";
import { syntaxErrorLocation } from "../../src/fleet/load-tools.js";

const SAMPLE = {
  name: "sample",
  summary: "a command for the tests",
  args: "<thing>",
  positionals: { min: 1, max: 1 },
  options: [
    { name: "count", type: "string", value: "N", default: "3", description: "how many" },
    { name: "mode", type: "string", choices: ["fast", "slow"], description: "how" },
    { name: "dry-run", type: "boolean", description: "change nothing" },
  ],
} as const satisfies CommandSpec;

const usage = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof ToolfleetError && err.code === "USAGE" && message.test(err.message));

describe("did you mean", () => {
  test("edit distance counts a swap of neighbours as one edit", () => {
    assert.equal(editDistance("status", "status"), 0);
    assert.equal(editDistance("stauts", "status"), 1);
    assert.equal(editDistance("calculater", "calculator"), 1);
    assert.equal(editDistance("", "abc"), 3);
    assert.equal(editDistance("kitten", "sitting"), 3);
  });

  test("suggests the close names, closest first, and nothing for a word that is far from all", () => {
    const commands = ["demo", "call", "tools", "gateway", "inference", "up", "status", "catalog"];
    assert.deepEqual(closest("stauts", commands), ["status"]);
    assert.deepEqual(closest("gatway", commands), ["gateway"]);
    assert.deepEqual(closest("infer", commands), ["inference"]);
    assert.deepEqual(closest("xyzzy", commands), []);
    assert.equal(didYouMean("calculater", ["calculator", "current_time"]), " (did you mean 'calculator'?)");
    assert.equal(didYouMean("zzz", ["calculator"]), "");
  });
});

describe("one option table: parsing and help", () => {
  test("parses the table's options, applies its defaults, and returns --log-format", () => {
    const parsed = parseCommand(SAMPLE, ["x", "--mode", "fast", "--log-format", "json"]);
    assert.equal(parsed.action, "run");
    if (parsed.action !== "run") return;
    assert.deepEqual(parsed.positionals, ["x"]);
    assert.equal(parsed.values.count, "3");
    assert.equal(parsed.values.mode, "fast");
    assert.equal(parsed.values["dry-run"], undefined);
    assert.equal(parsed.logFormat, "json");
  });

  test("--help and --version answer even next to a mistake", () => {
    assert.deepEqual(parseCommand(SAMPLE, ["--help"]), { action: "help" });
    assert.deepEqual(parseCommand(SAMPLE, ["-h", "--bogus"]), { action: "help" });
    assert.deepEqual(parseCommand(SAMPLE, ["--version"]), { action: "version" });
    assert.deepEqual(parseCommand(SAMPLE, ["--bogus", "--version"]), { action: "version" });
  });

  test("mistakes are usage errors that say what was wrong, with the closest name", () => {
    usage(() => parseCommand(SAMPLE, ["x", "--cuont", "2"]), /unknown option '--cuont' \(did you mean '--count'\?\)/);
    usage(() => parseCommand(SAMPLE, ["x", "--mode", "fats"]), /--mode: expected fast or slow, got 'fats' \(did you mean 'fast'\?\)/);
    usage(() => parseCommand(SAMPLE, ["x", "--log-format", "xml"]), /--log-format: expected json or pretty, got 'xml'/);
    usage(() => parseCommand(SAMPLE, ["x", "y"]), /unexpected argument 'y' \(it takes at most 1\)/);
    usage(() => parseCommand(SAMPLE, []), /missing arguments: <thing>/);
    usage(() => parseCommand(SAMPLE, ["x", "--count"]), /Option '--count <value>' argument missing/);
  });

  test("the help lists exactly the table's options and the common ones, with defaults and choices", () => {
    const help = helpText(SAMPLE);
    assert.match(help, /^Usage: toolfleet sample <thing> \[options\]\n/);
    const listed = [...help.matchAll(/^ {2}(?:-\w, )?--([\w-]+)/gm)].map((m) => m[1]);
    assert.deepEqual(
      listed,
      [...SAMPLE.options, ...COMMON_OPTIONS].map((o) => o.name),
    );
    assert.match(help, /--count N\s+how many \(default: 3\)/);
    assert.match(help, /--mode fast\|slow\s+how\n/);
    assert.match(help, /-h, --help\s+print this help and exit/);
  });
});

describe("log format", () => {
  test("TOOLFLEET_LOG_FORMAT wins; unset or blank, a terminal gets pretty and anything else JSON", () => {
    assert.equal(logFormat("json", true), "json");
    assert.equal(logFormat("pretty", false), "pretty");
    assert.equal(logFormat(undefined, true), "pretty");
    assert.equal(logFormat(undefined, false), "json");
    assert.equal(logFormat("  ", false), "json");
    assert.throws(() => logFormat("xml", true), /TOOLFLEET_LOG_FORMAT: expected json or pretty, got 'xml'/);
  });

  test("the same log call comes out as a JSON line or a short pretty line, never with a secret", () => {
    const lines: Record<"json" | "pretty", string[]> = { json: [], pretty: [] };
    for (const format of ["json", "pretty"] as const) {
      const logger = createLogger("toolfleet.test", "info", { format, write: (line) => lines[format].push(line) });
      logger.warn({ tool: "echo", attempt: 2, note: "two words", llmApiKey: "sk-secret-1", config: { webSecret: "s3cret-2" } }, "call retried");
      logger.debug({}, "below the level: not written");
    }
    assert.equal(lines.json.length, 1);
    const record = JSON.parse(lines.json[0] ?? "") as Record<string, unknown>;
    assert.equal(record.msg, "call retried");
    assert.equal(record.level, 40);
    assert.equal(record.tool, "echo");

    assert.equal(lines.pretty.length, 1);
    const pretty = lines.pretty[0] ?? "";
    assert.match(pretty, /^\d\d:\d\d:\d\d\.\d{3} WARN {2}toolfleet\.test: call retried tool=echo attempt=2 note="two words" /);
    assert.ok(pretty.endsWith("\n") && !pretty.slice(0, -1).includes("\n"), "one line");
    for (const line of [...lines.json, ...lines.pretty]) {
      assert.doesNotMatch(line, /sk-secret-1|s3cret-2/);
      assert.match(line, /\*\*\*/);
    }
  });

  test("a pretty line shows an error by its message, its stack only when asked, and cuts long fields", () => {
    const json = JSON.stringify({
      level: 50,
      time: Date.UTC(2025, 0, 1, 12, 0, 0, 5),
      name: "x",
      msg: "failed",
      err: { message: "boom", stack: "Error: boom\n    at here" },
      big: "y".repeat(200),
      ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, i])),
    });
    const short = formatPretty(json);
    assert.match(short, / ERROR x: failed err=boom big=y{79}… f0=0 /);
    assert.match(short, / f5=5 \(\+4 more\)\n$/);
    assert.doesNotMatch(short, /at here/);
    assert.match(formatPretty(json, { stacks: true }), /\n {4}Error: boom\n {8}at here\n$/);
    assert.ok(formatPretty(json, { color: true }).includes("\u001b[31mERROR\u001b[0m"));
    assert.equal(formatPretty("not json"), "not json\n");
  });
});

test("syntaxErrorLocation reads file, line and column from Node's printout of a syntax error", () => {
  const printout = "file:///tmp/mods/bad.js:3\n  { name: \"x\" oops },\n              ^^^^\n\nSyntaxError: Unexpected identifier 'oops'\n";
  assert.equal(syntaxErrorLocation(printout), "/tmp/mods/bad.js:3:15");
  assert.equal(syntaxErrorLocation("/tmp/mods/old.cjs:7\nbad\n\nSyntaxError: x"), "/tmp/mods/old.cjs:7");
  assert.equal(syntaxErrorLocation("Error: something else"), undefined);
});
