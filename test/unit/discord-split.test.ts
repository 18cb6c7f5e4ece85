import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { messageRequest, reactionEmoji } from "../../src/gateway/discord/adapter.js";
import { discordShard } from "../../src/cli/serve.js";
import { MESSAGE_LIMIT, planMessages, splitText, toEmbed } from "../../src/gateway/discord/split.js";

test("splitText keeps every piece within Discord's 2,000 characters, cutting at line breaks, then spaces, then anywhere", () => {
  const lines = Array.from({ length: 60 }, (_, i) => `line ${i} `.padEnd(79, "x")).join("\n");
  const pieces = splitText(lines);
  assert.ok(pieces.length > 1);
  for (const p of pieces) assert.ok(p.length <= MESSAGE_LIMIT && p.length > 0);
  // Cut at line breaks: every piece is whole lines.
  assert.equal(pieces.join("\n"), lines);
  const words = Array.from({ length: 700 }, (_, i) => `w${i}`).join(" ");
  assert.equal(splitText(words).join(" "), words);
  const unbroken = "y".repeat(4500);
  assert.deepEqual(
    splitText(unbroken).map((p) => p.length),
    [2000, 2000, 500],
  );
  assert.deepEqual(splitText("short"), ["short"]);
  assert.deepEqual(splitText("   "), []);
});

test("splitText never cuts an emoji (a surrogate pair) in two", () => {
  const text = "a".repeat(1999) + "😀" + "b".repeat(10);
  const pieces = splitText(text);
  assert.equal(pieces.join(""), text);
  for (const p of pieces) assert.ok(!/[\ud800-\udbff]$/.test(p), "a piece ends in half an emoji");
});

test("planMessages puts files and embeds on the last piece, ten of each a message, and leaves reactions out", () => {
  const file = (i: number) => ({ name: `f${i}.txt`, contentType: "text/plain", data: new Uint8Array([i]) });
  const plan = planMessages({
    text: "z".repeat(4100),
    files: Array.from({ length: 12 }, (_, i) => file(i)),
    richMessages: [{ title: "T" }, { kind: "reaction", emoji: "👍", messageId: "1" }],
  });
  assert.deepEqual(
    plan.map((p) => [p.content.length, p.embeds.length, p.files.length]),
    [
      [2000, 0, 0],
      [2000, 0, 0],
      [100, 1, 10],
      [0, 0, 2],
    ],
  );
  assert.deepEqual(planMessages({ text: "", files: [], richMessages: [{ description: "only an embed" }] }), [
    { content: "", embeds: [{ description: "only an embed" }], files: [] },
  ]);
});

test("toEmbed takes an embed's fields within Discord's limits, and shows any other shape as JSON", () => {
  const embed = toEmbed({
    title: "t".repeat(300),
    description: "d",
    color: 0x5865f2,
    url: "javascript:alert(1)",
    fields: [{ name: "n", value: "v", inline: true }, { name: 3 }],
  });
  assert.equal(embed.title?.length, 256);
  assert.equal(embed.url, undefined);
  assert.deepEqual(embed.fields, [{ name: "n", value: "v", inline: true }]);
  assert.match(toEmbed({ kind: "card", n: 1 }).description ?? "", /^```json\n[\s\S]*"kind": "card"[\s\S]*```$/);
});

test("messageRequest: a reply reference on the first message, files named in attachments, nobody pinged", () => {
  const plain = messageRequest({ content: "hi", embeds: [], files: [] }, "42");
  assert.deepEqual(plain, {
    body: { content: "hi", message_reference: { message_id: "42", fail_if_not_exists: false }, allowed_mentions: { parse: [], replied_user: true } },
  });
  const withFile = messageRequest({ content: "", embeds: [], files: [{ name: "a.png", contentType: "image/png", data: new Uint8Array([1, 2]) }] });
  assert.deepEqual((withFile.body as { attachments: unknown }).attachments, [{ id: 0, filename: "a.png" }]);
  assert.equal(withFile.files?.[0]?.data.length, 2);
  assert.equal(reactionEmoji("<:fleet:7000000000000000001>"), "fleet:7000000000000000001");
  assert.equal(reactionEmoji(" 👍 "), "👍");
});

test("discord.js is loaded only when a Discord adapter starts: the library, the CLI and the tools do not load it", async () => {
  await import("../../src/index.js");
  await import("../../src/cli/serve.js");
  await import("../../src/cli/up.js");
  await import("../../examples/tools.js");
  // discord.js is CommonJS: once loaded, by import() or require, its files are in the CommonJS cache.
  const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes("/node_modules/discord.js/"));
  assert.deepEqual(loaded, []);
});

test("--shard I --shard-count N: a Discord shard, checked", () => {
  assert.equal(discordShard(undefined, undefined), undefined);
  assert.deepEqual(discordShard("1", "4"), { id: 1, count: 4 });
  assert.throws(() => discordShard("4", "4"), /--shard: with --adapter discord, a Discord shard id from 0 to 3, got '4'/);
  assert.throws(() => discordShard("eu", "2"), /a Discord shard id from 0 to 1, got 'eu'/);
  assert.throws(() => discordShard("0", undefined), /give --shard and --shard-count together/);
  assert.throws(() => discordShard("0", "0"), /--shard-count: expected a positive integer/);
});
