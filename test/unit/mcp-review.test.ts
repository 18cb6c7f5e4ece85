// Review of `toolfleet mcp` (issue 21): failing tests that show bugs in the pure parts (src/mcp/auth.ts,
// src/mcp/origin.ts). Each test names the finding it shows.
import assert from "node:assert/strict";
import { test } from "node:test";
import { mintToken, tokensFrom, verifySignedToken } from "../../src/mcp/auth.js";
import { allowedHostNames, hostProblem } from "../../src/mcp/origin.js";

const SECRET = "a-fleet-secret-of-at-least-32-characters";

test("review: a signed token names any user id, one with a '.' too (ID_PATTERN allows it; mint accepts it)", () => {
  const now = 1_800_000_000;
  for (const user of ["alice.smith", "bob@example.com", "svc.bot.1"]) {
    const token = mintToken(SECRET, user, now + 60);
    assert.equal(verifySignedToken(SECRET, token, now), user, `${token} verifies as ${user}`);
  }
});

test("review: a tokens file refuses a token a client cannot send in an Authorization header (beyond latin1)", () => {
  // fetch() refuses a header value with a character over U+00FF (not a ByteString), and Node reads header
  // bytes as latin1 (curl's UTF-8 '€' arrives as 3 other characters): this token can never match.
  assert.throws(() => tokensFrom({ tokens: [{ user: "a", token: "0123456789abcde€" }] }, "f"), /tokens\[0\]\.token/);
});

test("review: every loopback address the server may listen on answers to its own name", () => {
  // --no-auth accepts --host 127.1.2.3 (isLoopback), and prints http://127.1.2.3:PORT/mcp, but refuses that Host.
  assert.equal(hostProblem(allowedHostNames("127.1.2.3"), "127.1.2.3:8791", undefined), null);
});

test("review: an Origin on another port of the same host is not this server's", () => {
  // A page served by any other local web app (http://localhost:3000) is another origin than http://localhost:8791.
  assert.notEqual(hostProblem(allowedHostNames("127.0.0.1"), "localhost:8791", "http://localhost:3000"), null);
});
