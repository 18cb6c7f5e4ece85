import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { WebChatClient } from "../../src/cli/web-client.js";
import { ConsoleAdapter } from "../../src/gateway/console-adapter.js";
import { HttpChatAdapter, PAGE_CSP } from "../../src/gateway/http-adapter.js";
import type { IncomingMessage } from "../../src/gateway/platform.js";
import { MAX_CALL_DETAILS, MAX_CALL_DETAIL_TEXT, decodeAnswer, decodeInbound, encodeAnswer, encodeInbound, type InboundChat } from "../../src/chat/codec.js";
import { RecordingPlatform, identity, localResponder } from "../support/chat.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { BODY_FIELD } from "../../src/redis/entry-codec.js";

test("chat wire: a message is validated at the boundary, and an answer too big to carry goes without its files, saying so", () => {
  const m: InboundChat = {
    id: "chat-1",
    replyTo: "sg:stream:chat:reply:g1",
    identity,
    text: "hi",
    history: [{ role: "user", text: "before" }],
    sentAtMs: 1,
    deadlineMs: 2,
    gatewayShard: "gw-2",
  };
  const back = decodeInbound(encodeInbound(m));
  assert.ok(back.ok);
  assert.deepEqual(back.value, m);
  // v1.1 members travel when set, and only then (a v1 peer ignores them).
  const traced = { ...m, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", progress: true };
  assert.deepEqual((decodeInbound(encodeInbound(traced)) as { value: InboundChat }).value, traced);
  assert.doesNotMatch(String(encodeInbound(m)[BODY_FIELD]), /traceparent|progress/);
  // A member that is not a traceparent is dropped, not the message with it.
  assert.deepEqual((decodeInbound(encodeInbound({ ...m, traceparent: "not-a-traceparent" })) as { value: InboundChat }).value, m);
  const bad = decodeInbound({ [BODY_FIELD]: JSON.stringify({ v: 1, type: "chat_message", id: "x y", text: "" }) });
  assert.ok(!bad.ok);
  assert.match(bad.error.message, /invalid chat message: id: .*; reply_to/);
  assert.equal(decodeInbound({ [BODY_FIELD]: "not json" }).ok, false);

  const file = { name: "big.bin", contentType: "application/octet-stream", data: new Uint8Array(2048) };
  const fields = encodeAnswer(
    { inReplyTo: "chat-1", channelId: "c1", text: "here", files: [file], richMessages: [], ended: "answer", toolCalls: 1, workerId: "w", durationMs: 1 },
    1024,
  );
  const answer = decodeAnswer(fields);
  assert.ok(answer.ok);
  assert.equal(answer.value.files.length, 0);
  assert.match(answer.value.text, /^here\n\n\(1 file\(s\), 2\.0 KiB in all, were too large to deliver\.\)$/);
});

test("slash commands run through the loop without an LLM; unknown tools and bad JSON get clear answers", async () => {
  const responder = localResponder();
  const platform = new RecordingPlatform();
  const ask = (text: string) => responder.answer({ id: "chat-t", identity, text, history: [] }, platform);
  const ok = await ask('/calculator {"a":2,"op":"power","b":10}; /discord_react {"emoji":"👍"}');
  assert.equal(ok.text, 'calculator → {"result":1024}\ndiscord_react → Reacted with 👍 on test.');
  // The gateway-pinned tool acted on the live platform it found on the context.
  assert.deepEqual(platform.reactions, ["m1:👍"]);
  assert.match((await ask("/nope {}")).text, /^There is no tool 'nope' here\. Tools: admin_stats, calculator, .*\. \/help lists their arguments\.$/);
  // /help: every tool with its arguments (from its JSON Schema: required or not, type, range, default) and description.
  const help = (await ask("/help")).text.split("\n");
  assert.equal(help[0], "Run a tool with /name {json args}, several separated by ';'. Tools:");
  assert.ok(
    help.includes('/calculator {a: number, op: "add"|"subtract"|"multiply"|"divide"|"power", b: number} — Apply an arithmetic operation to two numbers.'),
  );
  assert.ok(
    help.includes("/send_image {width?: integer 1..2048 = 64, height?: integer 1..2048 = 64} — Draw a colour gradient and send it to the chat as a PNG image."),
  );
  assert.ok(help.includes("/current_time {timezone?: string} — The current date and time, in UTC or in a given IANA time zone."));
  assert.ok(help.includes("/admin_stats {} — Process statistics of the service running the tool (admins only)."));
  assert.equal((await ask('/echo {"text": oops')).text, "echo → Invalid arguments for tool 'echo': not valid JSON.");
  assert.match((await ask("/admin_stats")).text, /^admin_stats → Permission denied: user 'alice' is not allowed to run tool 'admin_stats'\.$/);
  const noLlm = await ask("what can you do?");
  assert.match(noLlm.text, /^No LLM is configured, so I only run slash commands\. For live chat, set TOOLFLEET_LLM_API_KEY.*\n\nRun a tool with /);
  assert.equal(noLlm.ended, "answer");
  // With slash commands off (a public bot), a command is just text for the model; here there is none.
  const off = await localResponder(new RecordingLogger(), false).answer({ id: "chat-t", identity, text: '/echo {"text":"hi"}', history: [] }, platform);
  assert.equal(off.toolCalls, 0);
  assert.match(off.text, /slash commands are off \(TOOLFLEET_CHAT_COMMANDS\)/);
});

test("the HTTP adapter: a signed cookie is the identity; forged cookies, other users' files and bad bodies are refused", async () => {
  const logger = new RecordingLogger();
  const web = new HttpChatAdapter({ logger, port: 0, maxFiles: 2 });
  const got: IncomingMessage[] = [];
  await web.start((m) => got.push(m));
  try {
    const alice = await WebChatClient.open(web.url);
    const bob = await WebChatClient.open(web.url);
    const post = (headers: Record<string, string>, body: string) => fetch(new URL("api/messages", web.url), { method: "POST", headers, body });

    assert.equal((await post({ "content-type": "application/json" }, '{"text":"hi"}')).status, 401);
    assert.equal((await post({ cookie: "tf_user=web-000000000000.forged", "content-type": "application/json" }, '{"text":"hi"}')).status, 401);
    const cookie = await fetch(web.url).then((r) => (r.headers.get("set-cookie") ?? "").split(";")[0] ?? "");
    assert.equal((await post({ cookie, "content-type": "text/plain" }, "hi")).status, 415);
    assert.equal((await post({ cookie, "content-type": "application/json" }, "{oops")).status, 400);
    assert.equal((await post({ cookie, "content-type": "application/json" }, '{"text":"  "}')).status, 400);
    const big = await post({ cookie, "content-type": "application/json" }, JSON.stringify({ text: "x".repeat(70_000) }));
    assert.equal(big.status, 413);
    assert.match(((await big.json()) as { error: string }).error, /over 65536 bytes/);

    // A message arrives with the identity from the cookie; the answer reaches only its user, with its file.
    const asked = alice.ask("hello");
    await eventually(() => assert.equal(got.length, 1));
    const m = got[0];
    assert.ok(m);
    assert.match(m.identity.userId, /^web-[0-9a-f]{12}$/);
    await web.send(m.identity.channelId, {
      text: "hi alice",
      files: [{ name: "a.txt", contentType: "text/plain", data: Buffer.from("for alice") }],
      richMessages: [],
      inReplyTo: m.identity.messageId,
    });
    const { answer } = await asked;
    assert.equal(answer.text, "hi alice");
    const url = answer.files[0]?.url ?? "";
    assert.equal((await alice.file(url)).toString(), "for alice");
    await assert.rejects(bob.file(url), /HTTP 404/);
    // A file a tool sent as HTML is a sandboxed download, never a page on the chat's origin.
    await web.send(m.identity.channelId, {
      text: "html",
      files: [{ name: "x.html", contentType: "text/html", data: Buffer.from("<script>alert(1)</script>") }],
      richMessages: [],
    });
    const htmlUrl = await eventually(() => {
      const url = /"url":"(\/files\/[^"]+)"/.exec(JSON.stringify(alice.received.at(-1) ?? {}))?.[1];
      assert.ok(url);
      return url;
    });
    const html = await fetch(new URL(htmlUrl.slice(1), web.url), { headers: { cookie: alice.sessionCookie } });
    assert.equal(html.headers.get("content-type"), "application/octet-stream");
    assert.match(html.headers.get("content-disposition") ?? "", /^attachment;/);
    assert.match(html.headers.get("content-security-policy") ?? "", /sandbox/);
    // On loopback, a request for another Host (DNS rebinding) is refused.
    const rebound = await new Promise<number>((resolve, reject) => {
      const { port } = new URL(web.url);
      request({ host: "127.0.0.1", port, path: "/", headers: { host: "evil.example" } }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    assert.equal(rebound, 421);
    // Only the newest two files are kept.
    for (const n of [1, 2])
      await web.send(m.identity.channelId, {
        text: `f${n}`,
        files: [{ name: `${n}.txt`, contentType: "text/plain", data: Buffer.from("x") }],
        richMessages: [],
      });
    await assert.rejects(alice.file(url), /HTTP 404/);
    alice.close();
    bob.close();
  } finally {
    await web.stop();
  }
});

test("the console adapter: typed lines are messages; answers print with their tool calls, files are saved, reactions shown", async () => {
  const dir = mkdtempSync(join(tmpdir(), "toolfleet-console-"));
  const input = new PassThrough();
  const lines: string[] = [];
  const adapter = new ConsoleAdapter({ input, output: (l) => lines.push(l), userId: "carol", filesDir: dir });
  const got: IncomingMessage[] = [];
  try {
    await adapter.start((m) => got.push(m));
    input.write("hello\n\n/echo {}\n");
    await eventually(() => assert.equal(got.length, 2));
    assert.deepEqual(
      got.map((m) => [m.identity.userId, m.identity.messageId, m.text]),
      [
        ["carol", "console-1", "hello"],
        ["carol", "console-2", "/echo {}"],
      ],
    );
    await adapter.send("console", {
      text: "hi carol",
      files: [{ name: "../x.txt", contentType: "text/plain", data: Buffer.from("saved") }],
      richMessages: [{ kind: "poll" }],
      toolCalls: [{ name: "make_file", route: "remote", kind: "ok", durationMs: 2.4149, args: "{}", result: "sent" }],
    });
    await adapter.react("console", "console-1", "👍");
    const saved = /\[file\] (\S+) \(text\/plain, 5 bytes\)/.exec(lines.join("\n"))?.[1] ?? "";
    assert.equal(dirname(saved), dir, `saved inside the files dir, whatever the name says: ${saved}`);
    assert.equal(readFileSync(saved, "utf8"), "saved");
    assert.ok(lines.includes("bot> hi carol") && lines.includes('     [rich] {"kind":"poll"}') && lines.includes("     (reacted 👍 to message console-1)"));
    // Each tool call, with the tier that ran it.
    assert.equal(lines[lines.indexOf("bot> hi carol") + 1], "     [tool] make_file route=remote 2.41 ms ok");
    // The input ends: the chat is over once each message typed has had its answer, not before.
    let finished = false;
    void adapter.finished.then(() => (finished = true));
    input.end();
    await adapter.send("console", { text: "to hello", files: [], richMessages: [], inReplyTo: "console-1" });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(finished, false, "console-2 has had no answer yet");
    await adapter.send("console", { text: "to /echo", files: [], richMessages: [], inReplyTo: "console-2" });
    await adapter.finished;
    // An input that ends before any message (stdin of /dev/null under a process manager) ends nothing.
    const nothing = new PassThrough();
    const quiet = new ConsoleAdapter({ input: nothing, output: () => undefined, filesDir: dir });
    let quietEnded = false;
    void quiet.finished.then(() => (quietEnded = true));
    await quiet.start(() => undefined);
    nothing.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(quietEnded, false);
    await quiet.stop();
  } finally {
    await adapter.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("chat wire: an answer carries its tool calls, cut to bounds; an older worker's answer without them still decodes", () => {
  const base = { inReplyTo: "chat-1", channelId: "c1", text: "done", files: [], richMessages: [], ended: "answer" as const, workerId: "i1", durationMs: 3 };
  const call = { name: "echo", route: "remote", kind: "ok", durationMs: 2.41234, args: '{"text":"hi"}', result: "hi" };
  const back = decodeAnswer(
    encodeAnswer({ ...base, toolCalls: 2, toolCallsDetail: [call, { ...call, name: "send_image", route: "gateway", kind: "timeout", nested: true }] }),
  );
  assert.ok(back.ok);
  assert.deepEqual(back.value.toolCallsDetail, [
    { ...call, durationMs: 2.412 },
    { ...call, name: "send_image", route: "gateway", kind: "timeout", durationMs: 2.412, nested: true },
  ]);

  // Bounds: at most MAX_CALL_DETAILS calls, long arguments and results cut and marked.
  const many = Array.from({ length: MAX_CALL_DETAILS + 5 }, (_, i) => ({ ...call, args: "a".repeat(5000), result: i === 0 ? "r".repeat(10_000) : "ok" }));
  const bounded = decodeAnswer(encodeAnswer({ ...base, toolCalls: many.length, toolCallsDetail: many }));
  assert.ok(bounded.ok);
  const first = bounded.value.toolCallsDetail?.[0];
  assert.equal(bounded.value.toolCallsDetail?.length, MAX_CALL_DETAILS);
  assert.equal(bounded.value.toolCalls, MAX_CALL_DETAILS + 5);
  assert.equal(first?.args.length, MAX_CALL_DETAIL_TEXT);
  assert.equal(first?.result.length, MAX_CALL_DETAIL_TEXT);
  assert.ok(first?.result.endsWith("…") && first.truncated === true);

  // An answer from a worker before this field: no detail, the rest as ever.
  const old = JSON.parse(encodeAnswer({ ...base, toolCalls: 0 })[BODY_FIELD] as string) as Record<string, unknown>;
  assert.equal("tool_calls_detail" in old, false);
  const decodedOld = decodeAnswer({ [BODY_FIELD]: JSON.stringify(old) });
  assert.ok(decodedOld.ok);
  assert.equal(decodedOld.value.text, "done");
  assert.equal(decodedOld.value.toolCallsDetail, undefined);

  // A detail past the bounds (or malformed) is checked and left out; the answer itself still reaches the user.
  for (const bad of [[{ ...call, duration_ms: 1, args: "x".repeat(MAX_CALL_DETAIL_TEXT + 1) }], [{ name: "" }], "nope"]) {
    const body = { ...old, tool_calls_detail: bad };
    const decoded = decodeAnswer({ [BODY_FIELD]: JSON.stringify(body) });
    assert.ok(decoded.ok);
    assert.equal(decoded.value.text, "done");
    assert.equal(decoded.value.toolCallsDetail, undefined);
  }
});

test("an answer says, for each tool call, its route, how it ended and how long it took (the loop's own calls too)", async () => {
  const responder = localResponder();
  const reply = await responder.answer(
    { id: "chat-t", identity, text: '/calculator {"a":2,"op":"power","b":10}; /admin_stats; /echo {oops; /extend_tool_loop {"turns":2}', history: [] },
    new RecordingPlatform(),
  );
  assert.deepEqual(
    reply.toolCallsDetail?.map((c) => [c.name, c.route, c.kind, c.args, c.result.slice(0, 24)]),
    [
      ["calculator", "local", "ok", '{"a":2,"op":"power","b":10}', '{"result":1024}'],
      ["admin_stats", "local", "denied", "{}", "Permission denied: user "],
      ["echo", "local", "invalid_args", "{oops", "Invalid arguments for to"],
      ["extend_tool_loop", "local", "ok", '{"turns":2}', "The tool loop now allows"],
    ],
  );
  for (const c of reply.toolCallsDetail ?? []) assert.ok(Number.isFinite(c.durationMs) && c.durationMs >= 0);
});

test("the web chat's page, script and icon are served with a Content-Security-Policy that forbids inline script and framing", async () => {
  const web = new HttpChatAdapter({ logger: new RecordingLogger(), port: 0 });
  await web.start(() => undefined);
  try {
    const page = await fetch(web.url);
    assert.equal(page.status, 200);
    const csp = page.headers.get("content-security-policy") ?? "";
    assert.equal(csp, PAGE_CSP);
    assert.match(csp, /(^|; )default-src 'none'(;|$)/);
    assert.match(csp, /(^|; )script-src 'self'(;|$)/);
    assert.match(csp, /(^|; )frame-ancestors 'none'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(page.headers.get("x-content-type-options"), "nosniff");
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    // Nothing inline for the policy to block: the script and style are files of the page's origin.
    const html = await page.text();
    assert.doesNotMatch(html, /<script>|<style>| style=| on[a-z]+=/);
    assert.match(html, /<script src="\/chat\.js" defer><\/script>/);
    assert.match(html, /<link rel="icon" href="\/favicon\.svg"/);
    for (const [path, type] of [
      ["chat.js", "text/javascript; charset=utf-8"],
      ["chat.css", "text/css; charset=utf-8"],
      ["favicon.svg", "image/svg+xml"],
      ["favicon.ico", "image/svg+xml"],
    ] as const) {
      const res = await fetch(new URL(path, web.url));
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-type"), type, path);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
      // Only the page hands out a session.
      assert.equal(res.headers.get("set-cookie"), null, path);
      assert.ok((await res.text()).length > 100, path);
    }
    // The API's answers are not pages either.
    const api = await fetch(new URL("api/history", web.url));
    assert.equal(api.status, 401);
    assert.equal(api.headers.get("x-content-type-options"), "nosniff");
  } finally {
    await web.stop();
  }
});
