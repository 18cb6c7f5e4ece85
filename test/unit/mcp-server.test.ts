// The pure parts of `toolfleet mcp`: tokens (file and signed), session ids, the Host/Origin check,
// and the mapping of fleet tools and results to MCP (src/mcp/auth.ts, origin.ts, content.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import { SessionIds, mintToken, tokenCheck, tokensFrom, verifySignedToken } from "../../src/mcp/auth.js";
import { annotationsTo, partToMcp, resultFromMcp, resultToMcp, toolToMcp } from "../../src/mcp/content.js";
import { surelyRequest } from "../../src/mcp/fast-call.js";
import { parseNotice } from "../../src/mcp/notices.js";
import { allowedHostNames, hostProblem, isLoopback } from "../../src/mcp/origin.js";
import { PIXEL_PNG } from "../support/fixtures/v11-tools.js";

const SECRET = "a-fleet-secret-of-at-least-32-characters";

test("a tokens file: users and tokens checked, every entry named when wrong", () => {
  const tokens = tokensFrom({ tokens: [{ user: "alice", token: "0123456789abcdef" }] }, "f");
  assert.equal(tokenCheck({ tokens })("0123456789abcdef"), "alice");
  assert.equal(tokenCheck({ tokens })("0123456789abcdeX"), null);
  assert.throws(() => tokensFrom({}, "f"), /f: expected \{ "tokens"/);
  assert.throws(() => tokensFrom({ tokens: [{ user: "a b", token: "0123456789abcdef" }] }, "f"), /tokens\[0\]\.user must be a user id/);
  assert.throws(() => tokensFrom({ tokens: [{ user: "a", token: "short" }] }, "f"), /tokens\[0\]\.token must be 16\+ characters/);
  const twice = {
    tokens: [
      { user: "a", token: "0123456789abcdef" },
      { user: "b", token: "0123456789abcdef" },
    ],
  };
  assert.throws(() => tokensFrom(twice, "f"), /tokens\[1\]\.token is given twice/);
});

test("signed tokens: their user until they expire; a changed user, secret or signature is refused", () => {
  const now = 1_800_000_000;
  const token = mintToken(SECRET, "carol", now + 60);
  assert.equal(verifySignedToken(SECRET, token, now), "carol");
  assert.equal(verifySignedToken(SECRET, token, now + 61), null, "expired");
  assert.equal(verifySignedToken(`${SECRET}x`, token, now), null, "another secret");
  assert.equal(verifySignedToken(SECRET, token.replace(".carol.", ".alice."), now), null, "another user");
  assert.equal(verifySignedToken(SECRET, `${token.slice(0, -1)}A`, now), null);
  assert.equal(tokenCheck({ fleetSecret: SECRET })(mintToken(SECRET, "dave", Date.now() / 1000 + 60)), "dave");
  assert.equal(tokenCheck({})(token), null, "no secret: no signed tokens");
  assert.throws(() => mintToken("short", "carol", now), /TOOLFLEET_FLEET_SECRET/);
  assert.throws(() => mintToken(SECRET, "car ol", now), /--user: a user id/);
});

test("session ids: any holder of the key checks them; each is its user's", () => {
  const a = new SessionIds("key-one-key-one-key-one-key-one!");
  const b = new SessionIds("key-one-key-one-key-one-key-one!");
  const id = a.mint("alice");
  assert.ok(b.valid(id, "alice"), "another replica with the key");
  assert.ok(!b.valid(id, "bob"), "an id found valid for alice is not bob's (nor is the one remembered)");
  assert.ok(b.valid(id, "alice"), "again, remembered");
  assert.ok(!b.valid(`${id.slice(0, -1)}${id.endsWith("A") ? "B" : "A"}`, "alice"), "a changed signature");
  assert.ok(!new SessionIds("another-key-another-key-another!").valid(id, "alice"));
  assert.ok(!a.valid(`${id}.x`, "alice"));
  assert.notEqual(a.mint("alice"), id);
});

test("Host and Origin: loopback names on a loopback address, the address and the allowed names otherwise", () => {
  assert.ok(isLoopback("127.0.0.1") && isLoopback("localhost") && isLoopback("::1") && !isLoopback("0.0.0.0") && !isLoopback("10.0.0.1"));
  const local = allowedHostNames("127.0.0.1");
  assert.equal(hostProblem(local, "localhost:8791", undefined), null);
  assert.equal(hostProblem(local, "[::1]:8791", "http://[::1]:8791"), null);
  assert.match(hostProblem(local, "evil.example.com", undefined) ?? "", /Host "evil\.example\.com"/);
  assert.match(hostProblem(local, "127.0.0.1:8791", "http://evil.example.com") ?? "", /Origin/);
  assert.match(hostProblem(local, undefined, undefined) ?? "", /Host ""/);
  const lb = allowedHostNames("0.0.0.0", ["mcp.example.com"]);
  assert.equal(hostProblem(lb, "mcp.example.com", "https://mcp.example.com"), null);
  assert.notEqual(hostProblem(lb, "0.0.0.0:8791", undefined), null);
});

test("fleet tools and results as MCP: hints, schemas, parts (audio back from its resource), files, isError", () => {
  assert.deepEqual(annotationsTo({ readOnly: true, idempotentHint: true, openWorldHint: false }), {
    readOnlyHint: true,
    idempotentHint: true,
    openWorldHint: false,
  });
  const schema = { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object" as const, additionalProperties: false };
  const tool = toolToMcp({ name: "t", description: "d", parameters: schema, annotations: {}, outputSchema: { type: "object" } });
  assert.deepEqual(tool, { name: "t", description: "d", inputSchema: schema, outputSchema: { type: "object" } });
  // Every MCP part toolfleet carries comes back as it was.
  const mcp = {
    content: [
      { type: "text" as const, text: "hi" },
      { type: "image" as const, data: PIXEL_PNG, mimeType: "image/png" },
      { type: "audio" as const, data: "UklGRg==", mimeType: "audio/wav" },
      { type: "resource" as const, resource: { uri: "test://r", mimeType: "text/plain", text: "body" } },
      { type: "resource" as const, resource: { uri: "test://b", blob: "AAEC" } },
    ],
    structuredContent: { a: 1 },
  };
  const fleet = resultFromMcp(mcp);
  assert.deepEqual(
    fleet.content.map((p) => partToMcp(p)),
    mcp.content,
  );
  const back = resultToMcp({ kind: "ok", text: "hi", route: "remote", durationMs: 1, result: fleet }, [
    { name: "a b.txt", contentType: "text/plain", data: new TextEncoder().encode("x") },
  ]);
  assert.equal(back.isError, undefined);
  assert.deepEqual(back.structuredContent, { a: 1 });
  assert.deepEqual(back.content.at(-1), { type: "resource", resource: { uri: "file:///a%20b.txt", mimeType: "text/plain", blob: "eA==" } });
  const denied = resultToMcp({ kind: "denied", text: "Permission denied: …", route: "local", durationMs: 0 });
  assert.deepEqual(denied, { content: [{ type: "text", text: "Permission denied: …" }], isError: true });
});

test("a replicas' notice is read only when it is one: a cancel or a level change, within its size", () => {
  assert.deepEqual(parseNotice('{"kind":"cancel","calls":[{"key":"s\\u0000number:3","reason":"stop"}]}'), {
    kind: "cancel",
    calls: [{ key: "s\u0000number:3", reason: "stop" }],
  });
  assert.equal(parseNotice('{"kind":"cancel","calls":[{"key":"k"}]}'), null);
  assert.deepEqual(parseNotice('{"kind":"level","session":"s","level":null}'), { kind: "level", session: "s", level: null });
  assert.equal(parseNotice('{"kind":"level","session":"s"}'), null);
  assert.equal(parseNotice('{"kind":"other"}'), null);
  assert.equal(parseNotice("not json"), null);
  assert.equal(parseNotice(JSON.stringify({ kind: "cancel", calls: [{ key: "k", reason: "x".repeat(100_000) }] })), null);
});

test("a signed token names any user id, one with a '.' too (ID_PATTERN allows it; mint accepts it)", () => {
  const now = 1_800_000_000;
  for (const user of ["alice.smith", "bob@example.com", "svc.bot.1"]) {
    const token = mintToken(SECRET, user, now + 60);
    assert.equal(verifySignedToken(SECRET, token, now), user, `${token} verifies as ${user}`);
  }
});

test("a tokens file refuses a token a client cannot send in an Authorization header (beyond latin1)", () => {
  // fetch() refuses a header value with a character over U+00FF (not a ByteString), and Node reads header
  // bytes as latin1 (curl's UTF-8 '€' arrives as 3 other characters): this token can never match.
  assert.throws(() => tokensFrom({ tokens: [{ user: "a", token: "0123456789abcde€" }] }, "f"), /tokens\[0\]\.token/);
});

test("every loopback address the server may listen on answers to its own name", () => {
  // --no-auth accepts --host 127.1.2.3 (isLoopback), and prints http://127.1.2.3:PORT/mcp, but refuses that Host.
  assert.equal(hostProblem(allowedHostNames("127.1.2.3"), "127.1.2.3:8791", undefined), null);
});

test("an Origin on another port of the same host is not this server's", () => {
  // A page served by any other local web app (http://localhost:3000) is another origin than http://localhost:8791.
  assert.notEqual(hostProblem(allowedHostNames("127.0.0.1"), "localhost:8791", "http://localhost:3000"), null);
});

test("Host names: --allowed-host is a bare name or address; a wildcard --host needs one", () => {
  for (const bad of ["http://mcp.example.com", "mcp.example.com:443", "mcp.example.com/mcp", "::1", ""])
    assert.throws(() => allowedHostNames("0.0.0.0", [bad]), /--allowed-host/, bad);
  assert.deepEqual([...allowedHostNames("::", ["[::1]", "MCP.example.com"])], ["[::1]", "mcp.example.com"]);
  assert.throws(() => allowedHostNames("0.0.0.0"), /listens on every address.*--allowed-host/);
  assert.throws(() => allowedHostNames("::"), /--allowed-host/);
  assert.equal(hostProblem(allowedHostNames("127.0.0.1"), "localhost:8791", "http://localhost:8791"), null);
  assert.equal(hostProblem(allowedHostNames("0.0.0.0", ["mcp.example.com"]), "mcp.example.com:443", "https://mcp.example.com"), null);
});

test("a message surelyRequest() passes is one the SDK's JSON-RPC schema accepts; ordinary calls pass it", () => {
  const ids = [1, 0, -7, "a", "", 1.5, 2 ** 60, null, undefined, [1], { x: 1 }];
  const metas = [
    undefined,
    {},
    { progressToken: 3 },
    { progressToken: "t" },
    { progressToken: 1.5 },
    { progressToken: null },
    { "io.modelcontextprotocol/related-task": { taskId: "t" } },
    { other: 1 },
    null,
    [],
    "x",
  ];
  const paramsList: unknown[] = [undefined, null, [], "x", {}, { name: "echo", arguments: { text: "x" } }, ...metas.map((_meta) => ({ name: "echo", _meta }))];
  const extras = [{}, { extra: 1 }, { result: {} }, { error: { code: 1, message: "m" } }];
  let passed = 0;
  let checked = 0;
  for (const jsonrpc of ["2.0", "1.0", 2, undefined])
    for (const id of ids)
      for (const method of ["tools/call", "ping", 3, undefined])
        for (const params of paramsList)
          for (const extra of extras) {
            const m: Record<string, unknown> = { jsonrpc, id, method, params, ...extra };
            for (const k of Object.keys(m)) if (m[k] === undefined) delete m[k];
            // As the server sees it: parsed from JSON.
            const parsed = JSON.parse(JSON.stringify(m)) as unknown;
            checked++;
            if (!surelyRequest(parsed)) continue;
            passed++;
            assert.ok(JSONRPCMessageSchema.safeParse(parsed).success, `surelyRequest() passed what the schema refuses: ${JSON.stringify(parsed)}`);
          }
  assert.ok(passed > 50 && passed < checked, `passed ${passed} of ${checked}`);
  assert.ok(surelyRequest({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "echo", arguments: { text: "hi" }, _meta: { progressToken: "p" } } }));
  assert.ok(!surelyRequest({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "echo" }, extra: true }), "a key the strict schema refuses");
});
