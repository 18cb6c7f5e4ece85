import assert from "node:assert/strict";
import { test } from "node:test";
import { WebChatClient } from "../../src/cli/web-client.js";
import { closeRedis } from "../../src/redis/client.js";
import { xaddArgs } from "../../src/redis/streams.js";
import { eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, exited, startFleet, testKeys } from "../support/redis-helpers.js";

// docs/security.md §2: every process of a fleet started with TOOLFLEET_FLEET_SECRET signs, and checks, what crosses Redis.

test(
  "toolfleet up with a fleet secret: calls to the tools and gateway tiers are signed and answered; an unsigned copy is dead-lettered",
  { timeout: 120_000 },
  async () => {
    const k = testKeys();
    const fleet = await startFleet(["--tools-workers", "1"], {
      TOOLFLEET_NAMESPACE: k.namespace,
      TOOLFLEET_REDIS_URL: REDIS_URL,
      TOOLFLEET_LLM_API_KEY: "",
      TOOLFLEET_FLEET_SECRET: "e2e-fleet-secret-0123456789abcdef",
    });
    const redis = await connect();
    let code: number | null = null;
    try {
      const chat = await WebChatClient.open(fleet.url);
      try {
        const { answer } = await chat.ask('/echo {"text":"signed"}; /discord_react {"emoji":"👍"}');
        assert.match(answer.text, /echo → signed/);
        assert.match(answer.text, /discord_react → Reacted with 👍/);
      } finally {
        chat.close();
      }
      const entries = async (stream: string) => redis.sendCommand<[string, string[]][]>(["XRANGE", stream, "-", "+"]);
      const tools = await entries(k.toolsStream);
      assert.equal(tools.length, 1);
      for (const [, flat] of [...tools, ...(await entries(k.gatewayStream()))]) assert.match(flat[flat.indexOf("sig") + 1] ?? "", /^v1\.\d+\.[0-9a-f]{64}$/);
      // The same request without its signature, as anyone able to XADD could send it.
      const [, flat] = tools[0]!;
      await redis.sendCommand(xaddArgs(k.toolsStream, { body: flat[flat.indexOf("body") + 1]! }, 1000));
      await eventually(async () => assert.equal(Number(await redis.sendCommand(["XLEN", k.deadLetter(k.toolsStream)])), 1), 15_000, 100);
    } finally {
      fleet.kill("SIGTERM");
      code = await exited(fleet);
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
    assert.equal(code, 0, fleet.output());
  },
);
