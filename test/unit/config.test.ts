import assert from "node:assert/strict";
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LiveConfig, ToolfleetError, defineConfig, loadConfig } from "../../src/index.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { redactRedisUrl } from "../../src/protocol.js";

const tmp = (): string => mkdtempSync(join(tmpdir(), "toolfleet-config-"));

test("defaults", () => {
  const cfg = loadConfig({ env: {} });
  assert.equal(cfg.toolsServiceMode, "in_process");
  assert.equal(cfg.toolsExecTimeout, 120);
  assert.equal(cfg.toolsLocalFallback, true);
  assert.equal(cfg.toolsForceInProcess.size, 0);
  assert.equal(cfg.redisUrl, "redis://127.0.0.1:6379");
  assert.equal(cfg.namespace, "sg");
  assert.equal(cfg.gatewayPinned.size, 28);
  assert.equal(cfg.inferencePinned.size, 7);
  assert.equal(cfg.backgroundThreshold, 30);
  assert.ok(Object.isFrozen(cfg));
});

test("environment variables are parsed by kind", () => {
  const cfg = loadConfig({
    env: {
      TOOLFLEET_TOOLS_SERVICE_MODE: "shadow",
      TOOLFLEET_TOOLS_FORCE_IN_PROCESS: "echo, calculator",
      TOOLFLEET_TOOLS_EXEC_TIMEOUT: "2.5",
      TOOLFLEET_TOOLS_LOCAL_FALLBACK: "false",
      TOOLFLEET_REDIS_URL: "rediss://user:pw@redis.example:6380/2",
      TOOLFLEET_NAMESPACE: "prod",
    },
  });
  assert.equal(cfg.toolsServiceMode, "shadow");
  assert.deepEqual([...cfg.toolsForceInProcess], ["echo", "calculator"]);
  assert.equal(cfg.toolsExecTimeout, 2.5);
  assert.equal(cfg.toolsLocalFallback, false);
  assert.equal(cfg.redisUrl, "rediss://user:pw@redis.example:6380/2");
  assert.equal(cfg.namespace, "prod");
});

test("a variable that is empty or only blanks counts as unset, not as 0 or an empty list", () => {
  const cfg = loadConfig({
    env: { TOOLFLEET_BACKGROUND_THRESHOLD: " ", TOOLFLEET_GATEWAY_PINNED: "  ", TOOLFLEET_TOOLS_EXEC_TIMEOUT: "\t", TOOLFLEET_TOOLS_SERVICE_MODE: "" },
  });
  const defaults = loadConfig({ env: {} });
  assert.equal(cfg.backgroundThreshold, defaults.backgroundThreshold);
  assert.equal(cfg.gatewayPinned.size, 28);
  assert.equal(cfg.toolsExecTimeout, 120);
  assert.equal(cfg.toolsServiceMode, "in_process");
});

test("a bad value fails at startup naming the setting, its source, what was expected and what was found", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ TOOLFLEET_TOOLS_EXEC_TIMEOUT: "soon" }, /toolsExecTimeout \(from TOOLFLEET_TOOLS_EXEC_TIMEOUT\): expected a number of seconds > 0, got "soon"/],
    [{ TOOLFLEET_TOOLS_EXEC_TIMEOUT: "-1" }, /toolsExecTimeout \(from TOOLFLEET_TOOLS_EXEC_TIMEOUT\): expected a number of seconds > 0, got -1/],
    [
      { TOOLFLEET_TOOLS_SERVICE_MODE: "cloud" },
      /toolsServiceMode \(from TOOLFLEET_TOOLS_SERVICE_MODE\): expected one of in_process, remote, shadow, got "cloud"/,
    ],
    [{ TOOLFLEET_TOOLS_LOCAL_FALLBACK: "maybe" }, /toolsLocalFallback .*expected true or false, got "maybe"/],
    [{ TOOLFLEET_REDIS_URL: "http://x" }, /redisUrl .*expected a redis:\/\/ or rediss:\/\/ URL, got "http:\/\/x"/],
    [{ TOOLFLEET_NAMESPACE: "a:b" }, /namespace .*got "a:b"/],
    [
      { TOOLFLEET_REDIS_CLUSTER_NODES: "10.0.0.1:6379,redis://10.0.0.2:6379" },
      /redisClusterNodes\.1 \(from TOOLFLEET_REDIS_CLUSTER_NODES\): expected a list of cluster nodes \(host:port\), got "redis:\/\/10\.0\.0\.2:6379"/,
    ],
    [{ TOOLFLEET_REDIS_CLUSTER_NODES: "10.0.0.1" }, /redisClusterNodes\.0 .*expected a list of cluster nodes \(host:port\), got "10\.0\.0\.1"/],
    [{ TOOLFLEET_REDIS_CLUSTER_NODES: "10.0.0.1:0" }, /redisClusterNodes\.0 .*expected a port 1-65535, got "10\.0\.0\.1:0"/],
    [{ TOOLFLEET_REDIS_CLUSTER_NODES: "10.0.0.1:65536" }, /redisClusterNodes\.0 .*expected a port 1-65535, got "10\.0\.0\.1:65536"/],
    [{ TOOLFLEET_REDIS_CLUSTER_NODES: "10.0.0.1:7000,10.0.0.1:7000" }, /redisClusterNodes .*expected a list of cluster nodes, each once/],
    // Braces other than one whole {tag} would give keys written together different cluster slots.
    [{ TOOLFLEET_NAMESPACE: "a}b" }, /namespace .*with at most one \{tag\} \(no other brace\), got "a}b"/],
    [{ TOOLFLEET_NAMESPACE: "{}sg" }, /namespace .*got "\{}sg"/],
    [{ TOOLFLEET_NAMESPACE: "x}{y" }, /namespace .*got "x}\{y"/],
    [{ TOOLFLEET_NAMESPACE: "{a}{b}" }, /namespace .*got "\{a}\{b}"/],
    [{ TOOLFLEET_TOOLS_FORCE_IN_PROCESS: "ok,bad name" }, /toolsForceInProcess\.1 .*expected a tool name/],
    [{ TOOLFLEET_TASK_MAX_RUNNING: "1.5" }, /taskMaxRunning .*expected an integer >= 1, got 1.5/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig({ env }),
      (err: unknown) => err instanceof ToolfleetError && err.code === "CONFIG_INVALID" && message.test(err.message),
      JSON.stringify(env),
    );
  }
});

test("the config file is read, the environment wins over it, and a bad file is refused clearly", () => {
  const dir = tmp();
  const file = join(dir, "toolfleet.json");
  writeFileSync(file, JSON.stringify({ toolsExecTimeout: 9, toolsServiceMode: "remote" }));
  const cfg = loadConfig({ env: { TOOLFLEET_CONFIG: file, TOOLFLEET_TOOLS_SERVICE_MODE: "shadow" } });
  assert.equal(cfg.toolsExecTimeout, 9);
  assert.equal(cfg.toolsServiceMode, "shadow");

  writeFileSync(file, JSON.stringify({ toolsExecTimeout: "9" }));
  assert.throws(() => loadConfig({ env: {}, file }), new RegExp(`toolsExecTimeout \\(from ${file}\\): expected a number of seconds > 0, got "9"`));
  writeFileSync(file, JSON.stringify({ toolsExecTimout: 9 }));
  assert.throws(() => loadConfig({ env: {}, file }), /unknown setting\(s\) 'toolsExecTimout'/);
  writeFileSync(file, "{ not json");
  assert.throws(() => loadConfig({ env: {}, file }), /is not valid JSON/);
  writeFileSync(file, "[1]");
  assert.throws(() => loadConfig({ env: {}, file }), /must hold a JSON object/);
  assert.throws(() => loadConfig({ env: {}, file: join(dir, "missing.json") }), /cannot read config file/);
});

test("defineConfig validates code-given values the same way", () => {
  assert.throws(() => defineConfig({ toolsExecTimeout: 0 }), /toolsExecTimeout \(from code\): expected a number of seconds > 0, got 0/);
});

test("live: a file change reloads without a restart; a bad reload keeps the old config and logs why", async () => {
  const dir = tmp();
  const file = join(dir, "toolfleet.json");
  writeFileSync(file, JSON.stringify({ toolsExecTimeout: 5 }));
  const logger = new RecordingLogger();
  const live = new LiveConfig(logger, { env: {}, file }).watch();
  const changes: number[] = [];
  live.on("change", (cfg) => changes.push(cfg.toolsExecTimeout));
  try {
    assert.equal(live.get().toolsExecTimeout, 5);
    writeFileSync(file, JSON.stringify({ toolsExecTimeout: 7 }));
    await eventually(() => assert.equal(live.get().toolsExecTimeout, 7));

    writeFileSync(file, JSON.stringify({ toolsExecTimeout: "never" }));
    await eventually(() => assert.ok(logger.at("error").some((r) => /keeping the previous config/.test(r.msg))));
    assert.equal(live.get().toolsExecTimeout, 7);
    const logged = logger.at("error")[0]?.fields.err as { message: string };
    assert.match(logged.message, /toolsExecTimeout .*got "never"/);

    // Replaced by rename, as editors do: still seen.
    writeFileSync(join(dir, "next.json"), JSON.stringify({ toolsExecTimeout: 11 }));
    renameSync(join(dir, "next.json"), file);
    await eventually(() => assert.equal(live.get().toolsExecTimeout, 11));
    assert.deepEqual(changes.at(-1), 11);
  } finally {
    live.close();
  }
});

test("live: SIGHUP reloads", async () => {
  const dir = tmp();
  const file = join(dir, "toolfleet.json");
  writeFileSync(file, JSON.stringify({ backgroundThreshold: 1 }));
  const live = new LiveConfig(new RecordingLogger(), { env: {}, file });
  live.watch();
  try {
    live.close(); // no file watcher: only the signal can tell it now
    live.watch();
    writeFileSync(file, JSON.stringify({ backgroundThreshold: 2 }));
    process.kill(process.pid, "SIGHUP");
    await eventually(() => assert.equal(live.get().backgroundThreshold, 2));
  } finally {
    live.close();
  }
  assert.equal(process.listenerCount("SIGHUP"), 0);
});

test("a bad Redis URL is never echoed with its password", () => {
  assert.throws(
    () => loadConfig({ env: { TOOLFLEET_REDIS_URL: "rediss//default:S3cret@h:6380" } }),
    (err: unknown) => err instanceof ToolfleetError && /redisUrl .*got "\(unparseable redis url\)"/.test(err.message) && !err.message.includes("S3cret"),
  );
  assert.throws(
    () => loadConfig({ env: { TOOLFLEET_REDIS_URL: "http://u:S3cret@h:1" } }),
    (err: unknown) => err instanceof ToolfleetError && err.message.includes("http://u:***@h:1/") && !err.message.includes("S3cret"),
  );
});

test("a password in the Redis URL is redacted for logs", () => {
  assert.equal(redactRedisUrl("redis://app:s3cret@db:6379/0"), "redis://app:***@db:6379/0");
  assert.equal(redactRedisUrl("not a url"), "(unparseable redis url)");
});

test("the Discord settings: the token is a secret never echoed, the channels a list of ids", () => {
  const cfg = loadConfig({ env: { TOOLFLEET_DISCORD_TOKEN: "tok", TOOLFLEET_DISCORD_CHANNELS: "123, 456" } });
  assert.equal(cfg.discordToken, "tok");
  assert.deepEqual(cfg.discordChannels, ["123", "456"]);
  assert.equal(cfg.discordApiUrl, "https://discord.com/api");
  const long = `S3cret${"x".repeat(300)}`;
  assert.throws(
    () => loadConfig({ env: { TOOLFLEET_DISCORD_TOKEN: long } }),
    (err: unknown) =>
      err instanceof ToolfleetError && /discordToken \(from TOOLFLEET_DISCORD_TOKEN\): .*got "\*\*\*"/.test(err.message) && !err.message.includes("S3cret"),
  );
  assert.throws(
    () => loadConfig({ env: { TOOLFLEET_DISCORD_CHANNELS: "general" } }),
    /discordChannels\.0 \(from TOOLFLEET_DISCORD_CHANNELS\): expected a list of Discord channel ids \(digits\), got "general"/,
  );
});

test("TOOLFLEET_REDIS_CLUSTER_NODES lists a cluster's nodes (host:port, an IPv6 host in brackets); unset means one node", () => {
  assert.deepEqual(loadConfig({ env: {} }).redisClusterNodes, []);
  const env = { TOOLFLEET_REDIS_CLUSTER_NODES: " 10.0.0.1:6379, redis-2.internal:7000,[::1]:7001 " };
  assert.deepEqual(loadConfig({ env }).redisClusterNodes, ["10.0.0.1:6379", "redis-2.internal:7000", "[::1]:7001"]);
});
