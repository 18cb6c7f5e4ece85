// The real discord.js client, driven by the Discord adapter and the Discord tools,
// against the Discord API stand-in on loopback (test/support/discord-standin.ts).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ToolContext, ToolRegistry, defineConfig, staticConfig } from "../../src/index.js";
import { DiscordAdapter } from "../../src/gateway/discord/adapter.js";
import { discordTools } from "../../src/gateway/discord/tools.js";
import type { IncomingMessage } from "../../src/gateway/platform.js";
import { ALICE, BOB, BOT_ID, DiscordStandIn, GENERAL, GUILD, LOCKED, OPEN_CHANNEL, OTHER_CHANNEL, OTHER_GUILD } from "../support/discord-standin.js";
import { RecordingLogger, eventually } from "../support/helpers.js";

describe("the Discord adapter on discord.js, against a Discord stand-in", () => {
  let standIn: DiscordStandIn;
  let adapter: DiscordAdapter;
  const logger = new RecordingLogger();
  const received: IncomingMessage[] = [];
  const registry = new ToolRegistry({ config: staticConfig(defineConfig()), logger }).register(...discordTools);

  before(async () => {
    standIn = await DiscordStandIn.start({ heartbeatMs: 500 });
    adapter = new DiscordAdapter({ token: standIn.token, logger, apiUrl: standIn.api, channels: [OPEN_CHANNEL], readyTimeoutMs: 15_000 });
    await adapter.start((m) => received.push(m));
  });

  after(async () => {
    await adapter.stop();
    await standIn.close();
  });

  /** A tool call as the gateway runs it: the live adapter and the identity of a message in `channelId`. */
  const call = (name: string, args: unknown, channelId = GENERAL, messageId = "") =>
    registry.execute(name, args, {
      userId: ALICE.id as string,
      ctx: new ToolContext({ platform: "discord", channelId, guildId: GUILD, userId: ALICE.id as string, userName: "alice", messageId, adapter }),
    });

  test("identifies with its intents, gets READY and the guild, and heartbeats are acknowledged", async () => {
    const identify = standIn.gatewayOps.find((o) => o.op === 2);
    assert.ok(identify, "IDENTIFY was sent");
    const live = adapter.discord();
    assert.equal(live.client.user.id, BOT_ID);
    assert.deepEqual([...live.client.guilds.cache.keys()].sort(), [GUILD, OTHER_GUILD].sort());
    // Heartbeats every 500 ms, each ACKed (an unacknowledged one would make discord.js reconnect).
    await eventually(() => assert.ok(standIn.gatewayOps.filter((o) => o.op === 1).length >= 2), 5000, 50);
  });

  test("takes DMs, mentions and the configured channel's messages with Discord's ids as the identity; ignores the rest", async () => {
    received.length = 0;
    standIn.userMessage("no mention, not for the bot");
    const mention = standIn.userMessage("what is 2+2?", { mentionsBot: true });
    const open = standIn.userMessage("hello channel", { channelId: OPEN_CHANNEL });
    const dm = standIn.userMessage("a private word", { channelId: "6000000000000000002", author: BOB });
    await eventually(() => assert.equal(received.length, 3), 5000, 20);
    assert.deepEqual(received[0], {
      identity: { platform: "discord", channelId: GENERAL, userId: ALICE.id, userName: "alice", guildId: GUILD, messageId: mention.id },
      text: "what is 2+2?",
    });
    assert.equal(received[1]?.identity.messageId, open.id);
    assert.deepEqual(received[2]?.identity, {
      platform: "discord",
      channelId: "6000000000000000002",
      userId: BOB.id,
      userName: "bob",
      guildId: "",
      messageId: dm.id,
    });
    // "typing…" shown in each channel a chat runs in.
    await eventually(() => assert.equal(standIn.calls("POST", /^\/channels\/\d+\/typing$/).length, 3), 5000, 20);
  });

  test("an answer goes out as replies split at 2,000 characters, the files attached and the rich messages as embeds", async () => {
    const question = standIn.userMessage("long one", { mentionsBot: true });
    const before = standIn.requests.length;
    await adapter.send(GENERAL, {
      text: `${"a".repeat(1500)}\n${"b".repeat(1500)}\n${"c".repeat(1200)}`,
      files: [{ name: "report.txt", contentType: "text/plain", data: Buffer.from("the report") }],
      richMessages: [
        { title: "Summary", description: "three parts", color: 0x5865f2 },
        { kind: "reaction", emoji: "✅", messageId: question.id as string },
      ],
      inReplyTo: question.id as string,
    });
    const posts = standIn.requests.slice(before).filter((r) => r.method === "POST" && r.path === `/channels/${GENERAL}/messages`);
    assert.deepEqual(
      posts.map((p) => (p.body?.content as string).length),
      [1500, 1500, 1200],
    );
    assert.deepEqual(posts[0]?.body?.message_reference, { message_id: question.id, fail_if_not_exists: false });
    assert.equal(posts[1]?.body?.message_reference, undefined);
    assert.deepEqual(posts[2]?.body?.embeds, [{ title: "Summary", description: "three parts", color: 0x5865f2 }]);
    assert.deepEqual(
      posts[2]?.files.map((f) => [f.name, f.contentType, f.data.toString()]),
      [["report.txt", "text/plain", "the report"]],
    );
    assert.equal(standIn.calls("PUT", new RegExp(`/messages/${question.id as string}/reactions/${encodeURIComponent("✅")}/@me$`)).length, 1);
  });

  test("a 429 is waited out as retry_after says, by discord.js's REST queue, and the message is sent once", async () => {
    standIn.rateLimitOnce("POST", new RegExp(`^/channels/${OPEN_CHANNEL}/messages$`), 0.6);
    const started = Date.now();
    await adapter.send(OPEN_CHANNEL, { text: "after the limit", files: [], richMessages: [] });
    const posts = standIn.calls("POST", new RegExp(`^/channels/${OPEN_CHANNEL}/messages$`)).filter((r) => r.atMs >= started);
    assert.deepEqual(
      posts.map((p) => p.status),
      [429, 200],
    );
    const [first, second] = posts;
    assert.ok(first && second && second.atMs - first.atMs >= 600, `retried ${second && first ? second.atMs - first.atMs : "?"} ms after the 429`);
    assert.ok(logger.records.some((r) => r.msg === "Discord rate limit: the request waits"));
  });

  test("each Discord tool makes its REST calls on the live client", async () => {
    const q = standIn.userMessage("react to me", { mentionsBot: true });
    const id = q.id as string;
    const ok = async (name: string, args: unknown, messageId = id) => {
      const out = await call(name, args, GENERAL, messageId);
      assert.equal(out.kind, "ok", `${name}: ${out.text}`);
      return out.text;
    };
    assert.equal(await ok("discord_react", { emoji: "<:fleet:7000000000000000001>" }), "Reacted with <:fleet:7000000000000000001> on discord.");
    assert.equal(standIn.calls("PUT", new RegExp(`^/channels/${GENERAL}/messages/${id}/reactions/fleet%3A7000000000000000001/@me$`)).length, 1);

    assert.match(await ok("discord_send_dm", { text: "psst" }), /^Sent a direct message to user \d+/);
    assert.deepEqual(standIn.calls("POST", /^\/users\/@me\/channels$/).at(-1)?.body, { recipient_id: ALICE.id });
    assert.equal(standIn.calls("POST", /^\/channels\/6\d+\/messages$/).at(-1)?.body?.content, "psst");

    await ok("discord_embed", { title: "Hi", fields: [{ name: "a", value: "b" }], channel_id: OPEN_CHANNEL });
    assert.deepEqual(standIn.calls("POST", new RegExp(`^/channels/${OPEN_CHANNEL}/messages$`)).at(-1)?.body?.embeds, [
      { title: "Hi", fields: [{ name: "a", value: "b" }] },
    ]);

    await ok("discord_upload_file", { filename: "notes.md", text: "# notes", message: "here" });
    const upload = standIn.calls("POST", new RegExp(`^/channels/${GENERAL}/messages$`)).at(-1);
    assert.deepEqual([upload?.body?.content, upload?.files[0]?.name, upload?.files[0]?.data.toString()], ["here", "notes.md", "# notes"]);

    const mine = [...standIn.messages.values()].filter((m) => (m.author as { id: string }).id === BOT_ID && m.channel_id === GENERAL).at(-1);
    const mineId = mine?.id as string;
    assert.equal(await ok("discord_edit_message", { message_id: mineId, text: "edited" }), `Edited message ${mineId}.`);
    assert.deepEqual(standIn.calls("PATCH", new RegExp(`^/channels/${GENERAL}/messages/${mineId}$`)).at(-1)?.body, {
      content: "edited",
      allowed_mentions: { parse: [] },
    });
    const notMine = await call("discord_edit_message", { message_id: id, text: "x" });
    assert.equal(notMine.kind, "error");
    assert.match(notMine.text, /is not the bot's; Discord lets a bot edit only its own messages/);

    const reactions = JSON.parse(await ok("discord_message_reactions", {})) as { reactions: { emoji: string; count: number }[] };
    assert.deepEqual(reactions.reactions, [{ emoji: "fleet:7000000000000000001", count: 1, by_bot: true }]);
    const who = JSON.parse(await ok("get_message_reactions", { emoji: "👍", limit: 1 })) as { users: { id: string }[] };
    assert.deepEqual(who.users, [{ id: ALICE.id, name: "alice" }]);
    assert.equal(
      standIn
        .calls("GET", new RegExp(`/messages/${id}/reactions/${encodeURIComponent("👍")}$`))
        .at(-1)
        ?.query.get("limit"),
      "1",
    );

    const info = JSON.parse(await ok("discord_server_info", {})) as { name: string; members: number; channels: number };
    assert.deepEqual([info.name, info.members, info.channels], ["Test Server", 3, 3]);
    assert.equal(
      standIn
        .calls("GET", new RegExp(`^/guilds/${GUILD}$`))
        .at(-1)
        ?.query.get("with_counts"),
      "true",
    );
    assert.deepEqual(JSON.parse(await ok("list_server_emojis", {})), { emojis: [{ name: "fleet", usage: "<:fleet:7000000000000000001>", available: true }] });
    assert.deepEqual(JSON.parse(await ok("get_current_guild_count", {})), { guilds: 2, on_this_gateway: 2 });
    assert.equal(
      standIn
        .calls("GET", /^\/users\/@me\/guilds$/)
        .at(-1)
        ?.query.get("limit"),
      "200",
    );

    assert.match(await ok("create_poll", { question: "Lunch?", answers: ["pizza", "soup"], duration_hours: 2 }), /^Started the poll "Lunch\?" with 2 answers/);
    assert.deepEqual(standIn.calls("POST", new RegExp(`^/channels/${GENERAL}/messages$`)).at(-1)?.body?.poll, {
      question: { text: "Lunch?" },
      answers: [{ poll_media: { text: "pizza" } }, { poll_media: { text: "soup" } }],
      duration: 2,
      allow_multiselect: false,
    });

    assert.equal(await ok("discord_delete_message", { message_id: mineId }), `Deleted message ${mineId}.`);
    assert.equal(standIn.calls("DELETE", new RegExp(`^/channels/${GENERAL}/messages/${mineId}$`)).length, 1);
    // Someone else's message needs Manage Messages, which the bot's role does not have.
    const theirs = await call("discord_delete_message", { message_id: id });
    assert.equal(
      theirs.text,
      `Tool 'discord_delete_message' failed: discord_delete_message: the bot lacks the Discord permission Manage Messages in channel ${GENERAL}; a server admin can grant it to the bot's role`,
    );
  });

  test("a tool refuses in words when the bot lacks the Discord permission, and sends nothing", async () => {
    const before = standIn.requests.length;
    const cases: [string, unknown, string][] = [
      ["discord_react", { emoji: "👍", message_id: "5000000000" }, "Add Reactions"],
      ["discord_embed", { title: "x" }, "Send Messages, Embed Links"],
      ["discord_upload_file", { filename: "a.txt", text: "a" }, "Send Messages, Attach Files"],
      ["create_poll", { question: "q", answers: ["a", "b"] }, "Send Messages, Send Polls"],
    ];
    for (const [name, args, missing] of cases) {
      const out = await call(name, args, LOCKED);
      assert.equal(out.kind, "error");
      assert.match(out.text, new RegExp(`the bot lacks the Discord permissions? ${missing} in channel ${LOCKED}`), out.text);
    }
    assert.equal(standIn.requests.length, before, "no request reached Discord");
    // Discord's own 403 (a permission the cache did not know of) is told in words too.
    await assert.rejects(adapter.send(LOCKED, { text: "x", files: [], richMessages: [] }), /Missing Permissions/);
  });

  test("tools refuse another server's channel, and say so when there is no Discord adapter", async () => {
    const elsewhere = await call("discord_embed", { title: "x", channel_id: OTHER_CHANNEL });
    assert.match(elsewhere.text, new RegExp(`channel ${OTHER_CHANNEL} is not a channel of this server`));
    const noDiscord = await registry.execute(
      "discord_server_info",
      {},
      { userId: "u", ctx: new ToolContext({ adapter: { platform: "web", ownsPlatformClient: true } }) },
    );
    assert.equal(noDiscord.kind, "error");
    assert.match(
      noDiscord.text,
      /discord_server_info needs a gateway running the Discord adapter \(toolfleet gateway --adapter discord\); this call ran on the web chat/,
    );
  });

  test("a dropped gateway connection is resumed, and messages flow again", async () => {
    const resumesBefore = standIn.gatewayOps.filter((o) => o.op === 6).length;
    standIn.dropGateway(4000);
    await eventually(() => assert.equal(standIn.gatewayOps.filter((o) => o.op === 6).length, resumesBefore + 1), 15_000, 50);
    await eventually(() => assert.equal(standIn.liveSessions, 1), 5000, 20);
    received.length = 0;
    const after = standIn.userMessage("still there?", { mentionsBot: true });
    await eventually(() => assert.equal(received[0]?.identity.messageId, after.id), 5000, 20);
    assert.equal(adapter.discord().client.guilds.cache.size, 2);
  });
});

test("--shard: each gateway process runs one Discord shard and gets only its shard's servers", { timeout: 60_000 }, async () => {
  const standIn = await DiscordStandIn.start();
  const logger = new RecordingLogger();
  const shards = [0, 1].map((id) => new DiscordAdapter({ token: standIn.token, logger, apiUrl: standIn.api, shard: { id, count: 2 }, readyTimeoutMs: 15_000 }));
  try {
    for (const s of shards) await s.start(() => undefined);
    assert.deepEqual(
      shards.map((s) => [...s.discord().client.guilds.cache.keys()]),
      [standIn.guildsOf(0, 2), standIn.guildsOf(1, 2)],
    );
    assert.deepEqual(standIn.guildsOf(0, 2).concat(standIn.guildsOf(1, 2)).sort(), [GUILD, OTHER_GUILD].sort());
  } finally {
    for (const s of shards) await s.stop();
    await standIn.close();
  }
  assert.throws(() => new DiscordAdapter({ token: "t", logger, shard: { id: 2, count: 2 } }), /a Discord shard must be 0 to count-1/);
  assert.throws(() => new DiscordAdapter({ token: " ", logger }), /set TOOLFLEET_DISCORD_TOKEN/);
});

test("a token Discord refuses is a clear error, and the token is not in it", { timeout: 30_000 }, async () => {
  const standIn = await DiscordStandIn.start();
  try {
    const adapter = new DiscordAdapter({ token: "wrong-secret-token", logger: new RecordingLogger(), apiUrl: standIn.api, readyTimeoutMs: 10_000 });
    await assert.rejects(
      adapter.start(() => undefined),
      (err: Error) => {
        assert.equal(err.message, "Discord refused the bot token (401): check TOOLFLEET_DISCORD_TOKEN");
        return true;
      },
    );
  } finally {
    await standIn.close();
  }
});
