import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { WebChatClient } from "../../src/cli/web-client.js";
import { closeRedis } from "../../src/redis/client.js";
import { startScriptedLLM } from "../support/fixtures/scripted-llm.js";
import { eventually } from "../support/helpers.js";
import { CLI, REDIS_URL, connect, dropNamespace, exited, startFleet, startToolsProcess, testKeys } from "../support/redis-helpers.js";
import { fleetStatus, type FleetStatus } from "../../src/fleet/status.js";

const run = promisify(execFile);

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: no such process
    return false;
  }
};

test(
  "toolfleet up: a chat needing a remote, a gateway-pinned and an inference-pinned tool is answered, and a killed tools worker is survived",
  { timeout: 150_000 },
  async (t) => {
    const k = testKeys();
    // The model: the first message asks for one tool of each tier in one turn; "once more" asks for a remote one.
    const llm = await startScriptedLLM((req) => {
      const last = req.messages.at(-1);
      if (last?.role === "tool") {
        return {
          content: `done: ${req.messages
            .filter((m) => m.role === "tool")
            .map((m) => String(m.content))
            .join(" | ")}`,
        };
      }
      const text = typeof last?.content === "string" ? last.content : "";
      if (text.includes("three tiers")) {
        return {
          calls: [
            { name: "echo", args: { text: "from the tools service" } },
            { name: "discord_react", args: { emoji: "🎉" } },
            { name: "extend_tool_loop", args: { turns: 2 } },
          ],
        };
      }
      if (text.includes("once more")) return { calls: [{ name: "echo", args: { text: "after the kill" } }] };
      return { content: "?" };
    });
    const env = {
      TOOLFLEET_NAMESPACE: k.namespace,
      TOOLFLEET_REDIS_URL: REDIS_URL,
      TOOLFLEET_LLM_API_KEY: "test-key",
      TOOLFLEET_LLM_BASE_URL: llm.baseURL,
      TOOLFLEET_LLM_MODEL: "scripted",
    };
    const fleet = await startFleet(["--tools-workers", "2"], env);
    const redis = await connect();
    let pids: number[] = [];
    let code: number | null = null;
    try {
      const chat = await WebChatClient.open(fleet.url);
      try {
        const started = performance.now();
        const first = await chat.ask("use the three tiers please");
        t.diagnostic(`chat answered through the fleet in ${(performance.now() - started).toFixed(1)} ms`);
        assert.equal(first.answer.text, "done: from the tools service | Reacted with 🎉 on web. | The tool loop now allows 10 turns (was 8).");
        // The reaction reached the page from the gateway's live adapter, on the message that asked for it.
        await eventually(() => assert.deepEqual(chat.reactions, [{ messageId: first.messageId, emoji: "🎉" }]));
        const offered = llm.received[0]?.tools?.map((x) => x.function.name) ?? [];
        for (const name of ["echo", "discord_react", "extend_tool_loop", "call_subagent"])
          assert.ok(offered.includes(name), `the model was offered ${name}: ${offered.join(", ")}`);

        // Where each call ran, from the workers' own heartbeats: echo on a tools worker, the reaction on the gateway.
        const processed = (s: FleetStatus, service: string): number => s.workers.filter((w) => w.service === service).reduce((n, w) => n + w.processed, 0);
        const status = await eventually(
          async () => {
            const s = await fleetStatus(redis, k);
            assert.equal(processed(s, "gateway"), 1);
            assert.equal(processed(s, "tools"), 1);
            assert.equal(processed(s, "inference"), 1);
            return s;
          },
          10_000,
          200,
        );
        pids = status.workers.map((w) => w.pid);
        assert.equal(pids.length, 4);

        // Kill one tools worker outright: the fleet carries on with the other.
        const [victim, survivor] = status.workers.filter((w) => w.service === "tools");
        assert.ok(victim && survivor);
        process.kill(victim.pid, "SIGKILL");
        await eventually(() => assert.match(fleet.output(), /tools-\d exited \(signal SIGKILL\); 1 of 2 tools workers left/), 10_000, 50);
        const again = await chat.ask("once more");
        assert.equal(again.answer.text, "done: after the kill");
        // `toolfleet status` shows the dead worker gone once its heartbeat lapses.
        await eventually(
          async () => {
            const { stdout } = await run(process.execPath, [CLI, "status", "--json"], { env: { ...process.env, ...env } });
            const tools = (JSON.parse(stdout) as FleetStatus).workers.filter((w) => w.service === "tools").map((w) => w.workerId);
            assert.deepEqual(tools, [survivor.workerId]);
          },
          20_000,
          500,
        );
      } finally {
        chat.close();
      }
    } finally {
      fleet.kill("SIGTERM");
      code = await exited(fleet);
      await dropNamespace(redis, k);
      await closeRedis(redis);
      await llm.close();
    }
    assert.equal(code, 0, fleet.output());
    assert.match(fleet.output(), /\[up\] fleet stopped/);
    for (const pid of pids) assert.equal(alive(pid), false, `fleet process ${pid} outlived the fleet`);
  },
);

test("toolfleet up without Redis runs the fleet in one process, says so, and walks through it", { timeout: 60_000 }, async () => {
  const { stdout } = await run(process.execPath, [CLI, "up", "--port", "0", "--exit-after-walkthrough"], {
    env: { ...process.env, TOOLFLEET_REDIS_URL: "redis://127.0.0.1:1", TOOLFLEET_LOG_LEVEL: "warn", TOOLFLEET_LLM_API_KEY: "" },
  });
  assert.match(stdout, /does not answer .*so the whole fleet runs in this one process \(in_process mode, no Redis\)/);
  assert.match(stdout, /• tools service +echo +route=local .* hello, fleet/);
  assert.match(stdout, /bot> echo → through every tier/);
  assert.match(stdout, /discord_react → Reacted with 🚀 on web\./);
  assert.match(stdout, /\[file\] gradient\.png image\/png \d+ bytes/);
  assert.match(stdout, /\[reaction on your message\] 🚀/);
});

test("toolfleet up --exit-after-walkthrough: every call routed to its tier and printed with its route", { timeout: 90_000 }, async () => {
  const k = testKeys();
  const redis = await connect();
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, "up", "--port", "0", "--tools-workers", "1", "--exit-after-walkthrough"], {
      env: { ...process.env, TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_LOG_LEVEL: "warn", TOOLFLEET_LLM_API_KEY: "" },
    });
    assert.match(stdout, /a distributed fleet on redis:\/\/127\.0\.0\.1:6379/);
    assert.match(stdout, /• tools service +echo +route=remote .* hello, fleet/);
    assert.match(stdout, /• a file comes back +send_image +route=remote .* Sent gradient\.png/);
    assert.match(stdout, /• gateway-pinned +discord_react +route=gateway .* Reacted with 👍 on web\./);
    assert.match(stdout, /• permission denied +admin_stats +route=local .* Permission denied: user 'alice'/);
    assert.match(stdout, /bot> echo → through every tier/);
    assert.match(stdout, /extend_tool_loop → The tool loop now allows 10 turns/);
    assert.match(stdout, /no LLM key .*TOOLFLEET_LLM_API_KEY/);
    assert.match(stdout, /\[up\] fleet stopped/);
    // Stopped in the reverse of the start: the inference worker is gone before the tools workers leave, and does not warn of it.
    assert.doesNotMatch(stdout + stderr, /no live tools worker publishes a catalog any more/);
  } finally {
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("an inference worker killed mid-answer: another answers the chat after the lease", { timeout: 90_000 }, async () => {
  const k = testKeys();
  let requests = 0;
  // The first model request hangs long enough to kill the worker that made it; the retry answers at once.
  const llm = await startScriptedLLM(() => (++requests === 1 ? { delayMs: 20_000, content: "never seen" } : { content: "answered by the survivor" }));
  const env = {
    TOOLFLEET_NAMESPACE: k.namespace,
    TOOLFLEET_REDIS_URL: REDIS_URL,
    TOOLFLEET_TOOLS_SERVICE_MODE: "remote",
    TOOLFLEET_LLM_API_KEY: "test-key",
    TOOLFLEET_LLM_BASE_URL: llm.baseURL,
  };
  const redis = await connect();
  const procs = [
    await startToolsProcess(["--worker-id", "tools-1"], env),
    await startToolsProcess(["--worker-id", "gw-1", "--adapter", "http", "--port", "0"], env, "gateway"),
    await startToolsProcess(["--worker-id", "inf-a", "--lease-ms", "1000"], env, "inference"),
    await startToolsProcess(["--worker-id", "inf-b", "--lease-ms", "1000"], env, "inference"),
  ];
  try {
    const url = /web chat at (\S+),/.exec(procs[1]?.output() ?? "")?.[1] ?? "";
    const chat = await WebChatClient.open(url);
    try {
      const asked = chat.ask("hello?", 30_000);
      // Whichever inference worker took the message is the one whose model request hangs: kill it.
      const busy = await eventually(
        async () => {
          const s = await fleetStatus(redis, k);
          const w = s.workers.find((x) => x.service === "inference" && x.inFlight === 1);
          assert.ok(w);
          return w;
        },
        10_000,
        100,
      );
      process.kill(busy.pid, "SIGKILL");
      const { answer } = await asked;
      assert.equal(answer.text, "answered by the survivor");
      assert.equal(requests, 2);
    } finally {
      chat.close();
    }
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => exited(p)));
    await dropNamespace(redis, k);
    await closeRedis(redis);
    await llm.close();
  }
});
