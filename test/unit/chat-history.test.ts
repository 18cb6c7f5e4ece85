import assert from "node:assert/strict";
import { test } from "node:test";
import { WebChatClient } from "../../src/cli/web-client.js";
import { MAX_CHAT_TEXT, MAX_HISTORY, type ChatReply, type InboundChat } from "../../src/chat/codec.js";
import { staticConfig } from "../../src/config/live.js";
import { defineConfig } from "../../src/config/schema.js";
import { ChatBridge } from "../../src/gateway/bridge.js";
import { MAX_HISTORY_ENTRIES, MemoryChatHistory, modelTurns, type HistoryEntry } from "../../src/gateway/chat-history.js";
import { HttpChatAdapter } from "../../src/gateway/http-adapter.js";
import { localResponder } from "../support/chat.js";
import { RecordingLogger, eventually } from "../support/helpers.js";

const user = (messageId: string, text: string): HistoryEntry => ({ role: "user", text, messageId, atMs: 1 });
const bot = (messageId: string, text: string, failed = false): HistoryEntry => ({ role: "assistant", text, messageId, atMs: 2, ...(failed ? { failed } : {}) });

test("the model is shown each answered question followed by its answer, whatever order the answers came in", () => {
  const entries = [
    user("m1", "slow question"),
    user("m2", "quick question"),
    bot("m2", "quick answer"),
    bot("m1", "slow answer"),
    user("m3", "timed out"),
    bot("m3", "Sorry — no answer came back", true),
    user("m4", "still waiting"),
    // A console's message ids start again after a restart: each question takes the first answer after it.
    user("m1", "again"),
    bot("m1", "again answered"),
  ];
  assert.deepEqual(modelTurns(entries), [
    { role: "user", text: "slow question" },
    { role: "assistant", text: "slow answer" },
    { role: "user", text: "quick question" },
    { role: "assistant", text: "quick answer" },
    { role: "user", text: "again" },
    { role: "assistant", text: "again answered" },
  ]);
  // At most MAX_HISTORY turns, the latest, in whole pairs.
  const long = Array.from({ length: 60 }, (_, i) => [user(`q${i}`, `q${i}`), bot(`q${i}`, `a${i}`)]).flat();
  const turns = modelTurns(long);
  assert.equal(turns.length, MAX_HISTORY);
  assert.deepEqual(turns[0], { role: "user", text: `q${60 - MAX_HISTORY / 2}` });
  assert.deepEqual(turns.at(-1), { role: "assistant", text: "a59" });
});

test("the in-memory history keeps the last entries of each channel, cut to size, and forgets the least recently used channel", async () => {
  const store = new MemoryChatHistory(2, 5);
  for (let i = 0; i < 8; i++) await store.append("a", user(`m${i}`, `text ${i}`));
  assert.deepEqual(
    (await store.read("a")).map((e) => e.messageId),
    ["m3", "m4", "m5", "m6", "m7"],
  );
  await store.append("b", {
    ...bot("m1", "x".repeat(MAX_CHAT_TEXT + 10)),
    toolCalls: [{ name: "echo", route: "remote", kind: "ok", durationMs: 1, args: "y".repeat(10_000), result: "" }],
  });
  const [kept] = await store.read("b");
  assert.equal(kept?.text.length, MAX_CHAT_TEXT);
  assert.equal(kept?.toolCalls?.[0]?.truncated, true);
  // "a" was used after "b" was made; a third channel pushes out the least recently used one, "a".
  await store.read("a");
  await store.append("c", user("m1", "hi"));
  assert.equal((await store.read("a")).length, 0);
  assert.equal((await store.read("b")).length, 1);
  assert.ok(MAX_HISTORY_ENTRIES >= MAX_HISTORY);
});

test("the web chat in one process: a reloaded page reads the conversation back, files and tool calls included, and the question still waiting", async () => {
  const logger = new RecordingLogger();
  const config = staticConfig(defineConfig({ backgroundThreshold: 0, chatTimeout: 30 }));
  const responder = localResponder(logger);
  // The second message waits until the test lets it go, so the page can be "reloaded" while it waits.
  let release: (() => void) | undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const respond = async (chat: InboundChat, signal: AbortSignal): Promise<ChatReply> => {
    if (chat.text.startsWith("/slow_task")) await held;
    return responder.answer(chat, web, signal);
  };
  const web = new HttpChatAdapter({ logger, port: 0 });
  const bridge = new ChatBridge({ config, logger, platform: web, respond });
  await bridge.start();
  const page = await WebChatClient.open(web.url);
  try {
    const first = await page.ask('/send_image {"width":4,"height":4}; /echo {"text":"hi"}; /discord_react {"emoji":"🎉"}');
    const live = first.answer as unknown as { id: string; toolCalls: { name: string; route: string; kind: string }[] };
    assert.match(live.id, /^chat-/);
    assert.deepEqual(
      live.toolCalls.map((c) => [c.name, c.route, c.kind]),
      [
        ["send_image", "local", "ok"],
        ["echo", "local", "ok"],
        ["discord_react", "local", "ok"],
      ],
    );
    const slow = page.ask('/slow_task {"seconds":0}');
    slow.catch(() => undefined); // awaited below; a failure before then is the test's, not an unhandled rejection

    // The "reload": the same cookie reads the history.
    const history = async () => {
      const res = await fetch(new URL("api/history", web.url), { headers: { cookie: page.sessionCookie } });
      assert.equal(res.status, 200);
      return ((await res.json()) as { entries: Record<string, unknown>[] }).entries;
    };
    const waiting = await eventually(async () => {
      const entries = await history();
      assert.equal(entries.length, 3);
      return entries;
    });
    // The reaction the gateway-pinned tool made is on the message it reacted to.
    assert.deepEqual(waiting[0], {
      role: "user",
      id: first.messageId,
      text: '/send_image {"width":4,"height":4}; /echo {"text":"hi"}; /discord_react {"emoji":"🎉"}',
      waiting: false,
      reactions: "🎉",
    });
    const answer = waiting[1] as { id: string; inReplyTo: string; text: string; files: { url: string }[]; toolCalls: unknown[]; failed: boolean };
    assert.equal(answer.id, live.id);
    assert.equal(answer.inReplyTo, first.messageId);
    assert.equal(answer.text, first.answer.text);
    assert.deepEqual(answer.toolCalls, live.toolCalls);
    assert.equal(answer.failed, false);
    // The file is where the live answer said it was, and still downloads.
    assert.equal(answer.files[0]?.url, first.answer.files[0]?.url);
    assert.equal((await page.file(answer.files[0]?.url ?? "")).subarray(1, 4).toString(), "PNG");
    assert.equal(waiting[2]?.waiting, true);

    release?.();
    await slow;
    const after = await history();
    assert.equal(after.length, 4);
    assert.equal(after[2]?.waiting, false);
    assert.match(String(after[3]?.text), /^slow_task → /);
    // Another user reads only their own conversation.
    const other = await WebChatClient.open(web.url);
    const theirs = await fetch(new URL("api/history", web.url), { headers: { cookie: other.sessionCookie } });
    assert.deepEqual(await theirs.json(), { entries: [] });
    other.close();
  } finally {
    release?.();
    page.close();
    await bridge.stop();
  }
});
