import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { sendImage } from "../../examples/tools.js";
import { registryFor } from "../../src/fleet/local.js";
import { ToolContext, defineConfig, staticConfig } from "../../src/index.js";
import { ProxyPlatformAdapter } from "../../src/inference/proxy-adapter.js";
import { RemoteToolRegistry } from "../../src/inference/remote-registry.js";
import { closeRedis } from "../../src/redis/client.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { CLI, REDIS_URL, connect, dropNamespace, exited, startToolsProcess, testKeys } from "../support/redis-helpers.js";

const run = promisify(execFile);

test("end to end with real tools-service and gateway processes", { timeout: 90_000 }, async (t) => {
  const k = testKeys();
  const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL };
  const tools = await startToolsProcess(["--worker-id", "e2e-tools"], env);
  const gateway = await startToolsProcess(["--worker-id", "e2e-gateway"], env, "gateway");
  const logger = new RecordingLogger();
  const redis = await connect(REDIS_URL, logger);
  const config = staticConfig(defineConfig({ toolsServiceMode: "remote", namespace: k.namespace }));
  // The inference side holds no example tool: what it runs must come from the other processes.
  const local = registryFor({ tools: [], permissions: {} }, config, logger);
  const registry = new RemoteToolRegistry({ redis, redisUrl: REDIS_URL, keys: k, config, local, workerId: "e2e-inference", logger });
  try {
    await registry.start();
    assert.ok(registry.toolNames().has("send_image"), "the catalog published by the tools process");
    const adapter = new ProxyPlatformAdapter("discord", () => registry.toolsClient, k, config);
    const ctx = new ToolContext({ platform: "discord", channelId: "c", userId: "alice", userName: "Alice", guildId: "g", messageId: "m42", adapter });

    const image = await registry.execute("send_image", { width: 120, height: 80 }, { userId: "alice", ctx });
    assert.equal(image.route, "remote");
    const expected = new ToolContext();
    await (sendImage.handler as (a: unknown, c: ToolContext) => unknown)({ width: 120, height: 80 }, expected);
    assert.equal(ctx.sentFiles.length, 1);
    assert.ok(Buffer.from(ctx.sentFiles[0]?.data ?? []).equals(Buffer.from(expected.sentFiles[0]?.data ?? [])), "the PNG arrives byte-identical");
    t.diagnostic(`send_image remote round trip ${image.durationMs.toFixed(1)} ms, ${ctx.sentFiles[0]?.data.byteLength} bytes`);

    assert.equal(await registry.call("inject_tool", { tool: "calculator" }, { userId: "alice", ctx }), "Tool 'calculator' is now available.");
    assert.deepEqual(ctx.injectedTools, ["calculator"]);

    const reacted = await registry.execute("discord_react", { emoji: "🎉" }, { userId: "alice", ctx });
    assert.equal(reacted.route, "gateway");
    assert.equal(reacted.text, "Reacted with 🎉 on discord.");
    // The gateway's console platform reacted itself, on the message the call came from.
    await eventually(() => assert.match(gateway.output(), /\(reacted 🎉 to message m42\)/), 3000, 20);
    assert.deepEqual(ctx.sentRichMessages, []);
    // It ran in the gateway process: the gateway's heartbeat counts it, the tools worker's does not.
    await eventually(
      async () => {
        const beat = JSON.parse((await redis.get(k.heartbeat("gateway", "e2e-gateway"))) ?? "{}") as { processed?: number; pid?: number };
        assert.equal(beat.processed, 1);
        assert.equal(beat.pid, gateway.pid);
      },
      6000,
      100,
    );
    const toolsBeat = JSON.parse((await redis.get(k.heartbeat("tools", "e2e-tools"))) ?? "{}") as { processed?: number };
    assert.equal(toolsBeat.processed, 2);

    // The same through the CLI, as an operator would.
    const cli = await run(process.execPath, [CLI, "call", "calculator", '{"a":6,"op":"multiply","b":7}', "--user", "alice", "--mode", "remote"], {
      env: { ...process.env, ...env, TOOLFLEET_LOG_LEVEL: "warn" },
    });
    assert.equal(cli.stdout, '{"result":42}\n');
    assert.match(cli.stderr, /mode=remote route=remote/);
    const viaGateway = await run(process.execPath, [CLI, "call", "discord_react", '{"emoji":"👍"}', "--user", "alice", "--mode", "remote"], {
      env: { ...process.env, ...env, TOOLFLEET_LOG_LEVEL: "warn" },
    });
    assert.equal(viaGateway.stdout, "Reacted with 👍 on cli.\n");
    await eventually(() => assert.match(gateway.output(), /\(reacted 👍 to message /), 3000, 20);
    assert.match(viaGateway.stderr, /route=gateway/);
    // Shadow mode: the answer is this process's, and the command waits for the tools service's to compare it.
    const shadow = await run(process.execPath, [CLI, "call", "echo", '{"text":"twice"}', "--mode", "shadow"], {
      env: { ...process.env, ...env, TOOLFLEET_LOG_LEVEL: "warn" },
    });
    assert.equal(shadow.stdout, "twice\n");
    assert.match(shadow.stderr, /mode=shadow route=shadow [\d.]+ ms shadow=match\n$/);
    assert.doesNotMatch(shadow.stderr, /shadow call failed/);
  } finally {
    await registry.stop();
    await local.close();
    tools.kill("SIGTERM");
    gateway.kill("SIGTERM");
    assert.equal(await exited(tools), 0);
    assert.equal(await exited(gateway), 0);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
