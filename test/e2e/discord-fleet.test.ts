// A Discord message through the whole fleet, over the real Redis: the gateway's Discord
// adapter (real discord.js, against the stand-in) → inference (scripted LLM) → tools
// worker and gateway-pinned Discord tools → the answer back on Discord.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { promisify } from "node:util";
import { z } from "zod";
import { exampleTools } from "../../examples/tools.js";
import { createGateway, createInferenceWorker, createToolsWorker, defineConfig, defineTool, staticConfig } from "../../src/index.js";
import { DiscordAdapter } from "../../src/gateway/discord/adapter.js";
import { withDiscordTools } from "../../src/gateway/discord/tools.js";
import { fleetStatus } from "../../src/fleet/status.js";
import { closeRedis } from "../../src/redis/client.js";
import { DiscordStandIn, GENERAL } from "../support/discord-standin.js";
import { startScriptedLLM } from "../support/fixtures/scripted-llm.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { CLI, REDIS_URL, connect, dropNamespace, exited, startFleet, testKeys } from "../support/redis-helpers.js";

const run = promisify(execFile);

// A tool of the tools worker that leaves a rich message: it reaches Discord as an embed of the answer.
const richCard = defineTool({
  name: "rich_card",
  description: "Shows a card.",
  parameters: z.object({ title: z.string() }),
  handler: ({ title }, ctx) => {
    ctx.sendRichMessage({ title, description: `made on ${ctx.platform} for ${ctx.userName}` });
    return "card shown";
  },
});

const LONG = Array.from({ length: 90 }, (_, i) => `Line ${i}: the fleet answered this part of the report.`).join("\n");

test(
  "a Discord message through the fleet: answered in three replies, with the image attached, the card as an embed and a reaction",
  { timeout: 90_000 },
  async () => {
    const k = testKeys();
    const standIn = await DiscordStandIn.start();
    const llm = await startScriptedLLM((req) => {
      if (req.messages.at(-1)?.role === "tool") return { content: LONG };
      return {
        calls: [
          { name: "send_image", args: { width: 4, height: 4 } },
          { name: "rich_card", args: { title: "Report" } },
          { name: "discord_react", args: { emoji: "👀" } },
        ],
      };
    });
    const config = staticConfig(
      defineConfig({
        redisUrl: REDIS_URL,
        namespace: k.namespace,
        toolsServiceMode: "remote",
        chatTimeout: 30,
        llmApiKey: "test-key",
        llmBaseUrl: llm.baseURL,
        llmModel: "scripted",
      }),
    );
    const logger = new RecordingLogger();
    const platform = new DiscordAdapter({ token: standIn.token, logger, apiUrl: standIn.api });
    const tools = createToolsWorker({ config, logger, tools: [...exampleTools, richCard], workerId: "tools-1" });
    const gateway = createGateway({ config, logger, platform, tools: withDiscordTools([]), workerId: "gateway-1" });
    const inference = createInferenceWorker({ config, logger, workerId: "inference-1" });
    const redis = await connect();
    try {
      await tools.start();
      await gateway.start();
      await inference.start();
      const question = standIn.userMessage("the report, please", { mentionsBot: true });
      const posts = await eventually(
        () => {
          const p = standIn.calls("POST", new RegExp(`^/channels/${GENERAL}/messages$`));
          assert.equal(p.length, 3);
          return p;
        },
        30_000,
        50,
      );
      // The text, split at line breaks within 2,000 characters, nothing lost.
      assert.equal(posts.map((p) => p.body?.content as string).join("\n"), LONG);
      for (const p of posts) assert.ok((p.body?.content as string).length <= 2000);
      assert.deepEqual(posts[0]?.body?.message_reference, { message_id: question.id, fail_if_not_exists: false });
      // The image the tools worker made, as an attachment; the card as an embed; both on the last reply.
      const last = posts[2];
      assert.deepEqual(
        last?.files.map((f) => [f.name, f.contentType, f.data.subarray(1, 4).toString()]),
        [["gradient.png", "image/png", "PNG"]],
      );
      assert.deepEqual(last?.body?.embeds, [{ title: "Report", description: "made on discord for alice" }]);
      // discord_react ran on the gateway, on the live client, on the user's message.
      assert.equal(
        standIn.calls("PUT", new RegExp(`^/channels/${GENERAL}/messages/${question.id as string}/reactions/${encodeURIComponent("👀")}/@me$`)).length,
        1,
      );
      assert.ok(standIn.calls("POST", new RegExp(`^/channels/${GENERAL}/typing$`)).length >= 1, "typing… was shown");
      // The model was offered the Discord tools from the catalog.
      const offered = llm.received[0]?.tools?.map((t) => t.function.name) ?? [];
      for (const name of ["discord_react", "discord_send_dm", "create_poll", "get_current_guild_count"]) assert.ok(offered.includes(name), name);
    } finally {
      await inference.stop();
      await gateway.stop();
      await tools.stop();
      await dropNamespace(redis, k);
      await closeRedis(redis);
      await llm.close();
      await standIn.close();
    }
    // The token never reached a log line.
    assert.ok(!JSON.stringify(logger.records).includes(standIn.token));
  },
);

test(
  "toolfleet up --adapter discord: the fleet's gateway is a Discord bot, and a mention is answered with a Discord tool's result",
  { timeout: 120_000 },
  async () => {
    const k = testKeys();
    const standIn = await DiscordStandIn.start();
    const llm = await startScriptedLLM((req) => {
      const last = req.messages.at(-1);
      if (last?.role === "tool") return { content: `server: ${String(last.content)}` };
      return { calls: [{ name: "discord_server_info", args: {} }] };
    });
    const env = {
      TOOLFLEET_NAMESPACE: k.namespace,
      TOOLFLEET_REDIS_URL: REDIS_URL,
      TOOLFLEET_LLM_API_KEY: "test-key",
      TOOLFLEET_LLM_BASE_URL: llm.baseURL,
      TOOLFLEET_LLM_MODEL: "scripted",
      TOOLFLEET_DISCORD_TOKEN: standIn.token,
      TOOLFLEET_DISCORD_API_URL: standIn.api,
    };
    const fleet = await startFleet(["--adapter", "discord", "--tools-workers", "1"], env, /^ {2}chat: (on Discord)/m);
    const redis = await connect();
    let code: number | null = null;
    try {
      assert.ok(standIn.liveSessions >= 1, "the gateway process identified");
      standIn.userMessage("about this server?", { mentionsBot: true });
      const answer = await eventually(
        () => {
          const post = standIn.calls("POST", new RegExp(`^/channels/${GENERAL}/messages$`)).at(-1);
          assert.ok(post);
          return post.body?.content as string;
        },
        30_000,
        50,
      );
      assert.match(answer, /^server: \{"id":"\d+","name":"Test Server",.*"members":3/);
      // Only the gateway process was given the token.
      const { workers } = await fleetStatus(redis, k);
      const hasToken = (pid: number): boolean => readFileSync(`/proc/${pid}/environ`, "utf8").includes(`TOOLFLEET_DISCORD_TOKEN=${standIn.token}`);
      assert.deepEqual(workers.map((w) => [w.service, hasToken(w.pid)]).sort(), [
        ["gateway", true],
        ["inference", false],
        ["tools", false],
      ]);
    } finally {
      fleet.kill("SIGTERM");
      code = await exited(fleet);
      await dropNamespace(redis, k);
      await closeRedis(redis);
      await llm.close();
      await standIn.close();
    }
    assert.equal(code, 0, fleet.output());
    assert.ok(!fleet.output().includes(standIn.token), "the token was printed");
  },
);

test("--adapter discord without a token: a clear error, before anything starts", { timeout: 30_000 }, async () => {
  const env = { ...process.env, TOOLFLEET_DISCORD_TOKEN: "", TOOLFLEET_REDIS_URL: "redis://127.0.0.1:1" };
  for (const args of [
    ["up", "--adapter", "discord"],
    ["gateway", "--adapter", "discord"],
  ]) {
    const failed = await run(process.execPath, [CLI, ...args], { env }).then(
      () => assert.fail(`toolfleet ${args.join(" ")} started without a token`),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    assert.notEqual(failed.code, 0);
    assert.match(failed.stdout + failed.stderr, /--adapter discord needs the bot's token: set TOOLFLEET_DISCORD_TOKEN/);
  }
});
