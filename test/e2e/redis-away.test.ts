import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { z } from "zod";
import {
  ConsoleAdapter,
  ToolfleetError,
  createCaller,
  createGateway,
  createInferenceWorker,
  createToolsWorker,
  defineConfig,
  defineTool,
  staticConfig,
} from "../../src/index.js";
import { noLiveWorker, unknownTool } from "../../src/core/outcome.js";
import { closeRedis } from "../../src/redis/client.js";
import { buildCatalog } from "../../src/tool-exec/catalog.js";
import { publishCatalog } from "../../src/tool-exec/catalog-parts.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { CLI, OwnRedis, REDIS_URL, connect, dropNamespace, exited, freePort, testKeys } from "../support/redis-helpers.js";

const run = promisify(execFile);

/** How long a one-shot command may take against a Redis that is not there (the bound). */
const ONE_SHOT_DEADLINE_MS = 5000;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Still running at the deadline, and killed. */
  killed: boolean;
}

/** Runs the CLI to its end, or kills it at `deadlineMs`. */
async function cli(args: string[], env: NodeJS.ProcessEnv, deadlineMs = ONE_SHOT_DEADLINE_MS): Promise<Ran> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, timeout: deadlineMs });
    return { code: 0, stdout, stderr, killed: false };
  } catch (err) {
    const e = err as { code: number | null; stdout: string; stderr: string; killed?: boolean };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr, killed: e.killed === true };
  }
}

test("one-shot commands against a Redis that is not there end non-zero within 5 s, with one line naming the URL (password hidden)", async () => {
  const port = await freePort(); // nobody listens there
  const url = `redis://:hunter2@127.0.0.1:${port}`;
  const shown = `redis://:***@127.0.0.1:${port}`;
  for (const args of [["status"], ["status", "--json"], ["catalog"], ["call", "echo", '{"text":"x"}', "--mode", "remote"]]) {
    const what = `toolfleet ${args.join(" ")}`;
    const ran = await cli(args, { TOOLFLEET_REDIS_URL: url });
    assert.equal(ran.killed, false, `${what} still ran after ${ONE_SHOT_DEADLINE_MS} ms: ${ran.stderr}`);
    assert.equal(ran.code, 1, `${what}: ${ran.stderr}`);
    assert.equal(ran.stdout, "", what);
    const lines = ran.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, `${what} printed:\n${ran.stderr}`);
    assert.equal(
      lines[0],
      `toolfleet: Redis at ${shown} does not answer (connect ECONNREFUSED 127.0.0.1:${port}): start Redis there, or set TOOLFLEET_REDIS_URL to one that runs`,
    );
    assert.doesNotMatch(ran.stderr, /hunter2/);
  }
  // --redis names the URL for status and catalog.
  const viaFlag = await cli(["status", "--redis", `redis://127.0.0.1:${port}`], {});
  assert.equal(viaFlag.code, 1);
  assert.match(viaFlag.stderr, new RegExp(`^toolfleet: Redis at redis://127\\.0\\.0\\.1:${port} does not answer`));
});

test("call --mode remote with no live tools worker: unavailable within 5 s, saying why; an unknown tool is unknown at once", async () => {
  const redis = await connect();
  const k = testKeys();
  const env = { TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_NAMESPACE: k.namespace };
  try {
    const none = await cli(["call", "echo", '{"text":"x"}', "--mode", "remote"], { ...env, TOOLFLEET_TOOLS_LOCAL_FALLBACK: "false" });
    assert.equal(none.killed, false, `still waiting after ${ONE_SHOT_DEADLINE_MS} ms`);
    assert.equal(none.code, 1);
    assert.equal(none.stdout, `${noLiveWorker("echo", "tools worker")}\n`);
    assert.equal(none.stdout, "Tool 'echo' is unavailable: no tools worker is running to serve it. Try again later.\n");
    // (Before it, a log line says no catalog is published: none is, in this namespace.)
    assert.match(none.stderr, /\nmode=remote route=remote [\d.]+ ms\n$/);
    assert.equal(await redis.exists(k.toolsStream), 0, "nothing was published");

    // With the fallback on (the default) the call was never sent, so running it here is safe.
    const fallback = await cli(["call", "echo", '{"text":"here"}', "--mode", "remote"], env);
    assert.equal(fallback.code, 0);
    assert.equal(fallback.stdout, "here\n");
    assert.match(fallback.stderr, /\nmode=remote route=fallback [\d.]+ ms\n$/);

    // A catalog (a fleet that was here) that does not list the tool, which the CLI's registry lacks too.
    await publishCatalog(
      redis,
      k,
      buildCatalog([defineTool({ name: "only_there", description: "", parameters: z.object({}), handler: () => "" })], {}),
      { pool: "default", workerId: "gone" },
      { ttlMs: 60_000 },
    );
    const unknown = await cli(["call", "nosuch", "{}", "--mode", "remote"], env);
    assert.equal(unknown.killed, false);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stdout, `${unknownTool("nosuch")}\n`);
    assert.equal(unknown.stdout, "Unknown tool 'nosuch': no tool of that name is registered.\n");
    assert.match(unknown.stderr, /^mode=remote route=local [\d.]+ ms\n$/);
  } finally {
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("a tools worker started before Redis says it waits, again every 5 s, then serves once Redis is there", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const k = testKeys();
  const child = spawn(process.execPath, [CLI, "tools", "--redis", url, "--worker-id", "waiter"], {
    env: { ...process.env, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const waitLines = (): string[] => output.split("\n").filter((l) => l.includes(`waiting for Redis at ${url}`));
  let own: OwnRedis | undefined;
  try {
    await eventually(() => assert.match(waitLines()[0] ?? "", /"msg":"waiting for Redis at redis:\/\/127\.0\.0\.1:\d+ \(connect ECONNREFUSED/), 5000, 50);
    const firstAt = Date.now();
    // The second line comes at the interval, not before it (its exact second depends on when a reconnect attempt fails).
    await eventually(() => assert.match(waitLines()[1] ?? "", /"msg":"still waiting for Redis at .* \(\d+ s;/), 10_000, 50);
    const downMs = Number(/"downMs":(\d+)/.exec(waitLines()[1] ?? "")?.[1]);
    assert.ok(downMs >= 5000 && downMs < 9000, `second line after ${downMs} ms`);
    // Several connect attempts a second, but one line per interval: not a flood.
    assert.ok(waitLines().length <= 2 + Math.ceil((Date.now() - firstAt) / 5000), output);
    assert.equal(child.exitCode, null, "still waiting, not gone");
    assert.doesNotMatch(output, /"stack"/, "no stack for a Redis that is not there");

    own = await OwnRedis.start(port);
    await eventually(() => assert.match(output, /tools worker waiter ready: \d+ tools in pool default on redis:\/\/127\.0\.0\.1:\d+/), 10_000, 50);
    assert.match(output, /"msg":"Redis at redis:\/\/127\.0\.0\.1:\d+ answers; carrying on"/);
    const caller = createCaller({
      config: staticConfig(defineConfig({ redisUrl: url, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false })),
      logger: new RecordingLogger(),
    });
    await caller.start();
    try {
      const outcome = await caller.registry.execute("echo", { text: "served" }, { userId: "u" });
      assert.deepEqual([outcome.kind, outcome.route, outcome.text], ["ok", "remote", "served"]);
    } finally {
      await caller.stop();
    }
  } finally {
    child.kill("SIGTERM");
    await exited(child);
    await own?.stop();
  }
});

test("fleet API: members wait for Redis and say so at their interval, stop() ends the wait; a caller fails at once", { timeout: 30_000 }, async () => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const config = staticConfig(defineConfig({ redisUrl: url, toolsServiceMode: "remote" }));
  const logger = new RecordingLogger();
  const waitForRedis = { logEveryMs: 200 };
  const members = [
    createToolsWorker({ config, logger, workerId: "t1", waitForRedis }),
    createInferenceWorker({ config, logger, workerId: "i1", waitForRedis }),
    createGateway({ config, logger, workerId: "g1", waitForRedis, platform: new ConsoleAdapter() }),
  ];
  const started = members.map((m) =>
    m.start().then(
      () => "started",
      (err: unknown) => err,
    ),
  );
  const began = Date.now();
  const lines = (): string[] =>
    logger
      .at("warn")
      .map((r) => r.msg)
      .filter((m) => m.includes(`waiting for Redis at ${url}`));
  // Each of the three says it waits, then says it again.
  await eventually(() => assert.ok(lines().filter((m) => m.startsWith("still waiting")).length >= 3, lines().join("\n")), 5000, 20);
  const elapsed = Date.now() - began;
  assert.ok(lines().length <= 3 * (2 + Math.ceil(elapsed / 200)), `${lines().length} lines in ${elapsed} ms:\n${lines().join("\n")}`);
  await Promise.all(members.map((m) => m.stop()));
  for (const outcome of await Promise.all(started)) {
    assert.ok(outcome instanceof ToolfleetError && outcome.code === "STOPPED", `start() ended with ${String(outcome)}`);
  }

  const caller = createCaller({ config, logger });
  await assert.rejects(
    caller.start(),
    (err: unknown) => err instanceof ToolfleetError && err.code === "REDIS_UNAVAILABLE" && err.message.startsWith(`Redis at ${url} does not answer`),
  );
  await caller.stop();
});
