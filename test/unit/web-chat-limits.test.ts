import assert from "node:assert/strict";
import { request, type IncomingMessage as HttpResponse } from "node:http";
import { connect } from "node:net";
import { once } from "node:events";
import { test } from "node:test";
import { HttpChatAdapter } from "../../src/gateway/http-adapter.js";
import { RecordingLogger, eventually } from "../support/helpers.js";

// Real HTTP against the web chat's adapter: what one client (one session, one address) can take.

interface Reply {
  status: number;
  headers: HttpResponse["headers"];
  res: HttpResponse;
}

/** A request from `localAddress` (another loopback address is another client). The body of the reply is left to the caller. */
function send(url: string, path: string, options: { method?: string; cookie?: string; body?: string; localAddress?: string } = {}): Promise<Reply> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: options.method ?? "GET",
        localAddress: options.localAddress ?? "127.0.0.1",
        agent: false,
        headers: { ...(options.cookie ? { cookie: options.cookie } : {}), ...(options.body !== undefined ? { "content-type": "application/json" } : {}) },
        timeout: 5000,
      },
      (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, res }),
    );
    req.on("timeout", () => req.destroy(new Error(`no answer to ${path} in 5 s`)));
    req.on("error", reject);
    req.end(options.body);
  });
}

async function newSession(url: string, localAddress = "127.0.0.1"): Promise<string> {
  const page = await send(url, "/", { localAddress });
  page.res.resume();
  assert.equal(page.status, 200);
  const cookie = (page.headers["set-cookie"]?.[0] ?? "").split(";")[0] ?? "";
  assert.match(cookie, /^tf_user=/);
  return cookie;
}

/** An open event stream: its status, everything it sent, and whether the server ended it. */
async function openStream(url: string, cookie: string, localAddress = "127.0.0.1") {
  const reply = await send(url, "/api/events", { cookie, localAddress });
  const stream = { status: reply.status, text: "", ended: false, close: () => reply.res.destroy() };
  reply.res.setEncoding("utf8");
  reply.res.on("data", (chunk: string) => (stream.text += chunk));
  reply.res.on("end", () => (stream.ended = true));
  reply.res.on("error", () => (stream.ended = true));
  return stream;
}

async function withAdapter(options: Partial<ConstructorParameters<typeof HttpChatAdapter>[0]>, body: (url: string) => Promise<void>): Promise<void> {
  const web = new HttpChatAdapter({ logger: new RecordingLogger(), port: 0, ...options });
  await web.start(() => undefined);
  try {
    await body(web.url);
  } finally {
    await web.stop();
  }
}

test("web chat: a user past the per-user cap of event streams has their own oldest ended, and nobody else is refused", async () => {
  await withAdapter({}, async (url) => {
    const alice = await newSession(url);
    const bob = await newSession(url);
    const bobs = await openStream(url, bob);
    assert.equal(bobs.status, 200);
    const alices = [];
    // The default cap is 8 a user: the ninth page replaces the first.
    for (let i = 0; i < 9; i++) alices.push(await openStream(url, alice));
    assert.deepEqual(
      alices.map((s) => s.status),
      Array<number>(9).fill(200),
    );
    const first = alices[0];
    assert.ok(first);
    await eventually(() => assert.ok(first.ended, "the oldest stream of alice is ended"));
    assert.match(first.text, /event: replaced/);
    assert.deepEqual(
      alices.slice(1).map((s) => s.ended),
      Array<boolean>(8).fill(false),
    );
    assert.equal(bobs.ended, false);
    // Another user still gets a stream.
    const carol = await openStream(url, await newSession(url));
    assert.equal(carol.status, 200);
    for (const s of [...alices, bobs, carol]) s.close();
  });
});

test("web chat: one address flooding new sessions and streams is limited (429 + Retry-After) while another address still gets in", async () => {
  await withAdapter({ newUserBurst: 5, maxStreamsPerAddress: 4 }, async (url) => {
    const cookies: string[] = [];
    let refused: Reply | undefined;
    for (let i = 0; i < 20 && !refused; i++) {
      const page = await send(url, "/");
      page.res.resume();
      if (page.status === 429) refused = page;
      else cookies.push((page.headers["set-cookie"]?.[0] ?? "").split(";")[0] ?? "");
    }
    assert.equal(cookies.length, 5, "the burst of new sessions from one address, then no more");
    assert.ok(refused);
    assert.ok(Number(refused.headers["retry-after"]) >= 1, "a refusal says when to try again");
    // The sessions it did get hold at most 4 streams from this address.
    const streams = [];
    for (const cookie of cookies) streams.push(await openStream(url, cookie));
    assert.deepEqual(
      streams.map((s) => s.status),
      [200, 200, 200, 200, 429],
    );
    // Another address gets a session and a stream.
    const other = await newSession(url, "127.0.0.2");
    const theirs = await openStream(url, other, "127.0.0.2");
    assert.equal(theirs.status, 200);
    for (const s of [...streams, theirs]) s.close();
  });
});

test("web chat: messages of one user are rate-limited with 429 and Retry-After; another user is not held up", async () => {
  const got: string[] = [];
  const web = new HttpChatAdapter({ logger: new RecordingLogger(), port: 0 });
  await web.start((m) => got.push(m.text));
  try {
    const alice = await newSession(web.url);
    const statuses: number[] = [];
    let retryAfter = "";
    for (let i = 0; i < 12; i++) {
      const r = await send(web.url, "/api/messages", { method: "POST", cookie: alice, body: JSON.stringify({ text: `m${i}` }) });
      r.res.resume();
      statuses.push(r.status);
      if (r.status === 429) retryAfter = String(r.headers["retry-after"] ?? "");
    }
    // The default burst is 10 messages.
    assert.deepEqual(statuses, [...Array<number>(10).fill(202), 429, 429]);
    assert.ok(Number(retryAfter) >= 1, `Retry-After: ${retryAfter}`);
    assert.equal(got.length, 10, "a refused message is not passed on");
    const bob = await newSession(web.url);
    const r = await send(web.url, "/api/messages", { method: "POST", cookie: bob, body: '{"text":"hi"}' });
    r.res.resume();
    assert.equal(r.status, 202);
  } finally {
    await web.stop();
  }
});

/** Sends a POST of `total` bytes of body, chunked, as fast as the server takes it; returns what the server answered and how much it took. */
async function streamBody(url: string, cookie: string, total: number): Promise<{ written: number; answer: string }> {
  const { port } = new URL(url);
  const socket = connect({ host: "127.0.0.1", port: Number(port) });
  await once(socket, "connect");
  let answer = "";
  let closed = false;
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (answer += chunk));
  const gone = new Promise<void>((resolve) => socket.on("close", () => ((closed = true), resolve())));
  socket.on("error", () => undefined);
  socket.write(
    `POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${cookie}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
  );
  const chunk = Buffer.alloc(64 * 1024, "x");
  const framed = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]);
  let written = 0;
  const deadline = Date.now() + 60_000;
  while (written < total && !closed) {
    assert.ok(Date.now() < deadline, "the body was neither taken nor refused in 60 s");
    // Not events.once: it rejects on the reset that is the expected end here.
    if (!socket.write(framed)) await Promise.race([new Promise((resolve) => socket.once("drain", resolve)), gone]);
    written += chunk.length;
  }
  if (!closed) socket.write("0\r\n\r\n");
  // Either way the server answers; the fixed code also closes the connection.
  await eventually(() => assert.ok(closed || /^HTTP\/1.1 \d+/.test(answer), "neither an answer nor a closed connection"), 10_000);
  socket.destroy();
  return { written, answer };
}

test("web chat: a 200 MiB message is refused at the limit: the server stops reading there, whether the size is declared or not", async () => {
  await withAdapter({}, async (url) => {
    const cookie = await newSession(url);
    // Chunked, no size declared: the connection is closed once past the limit. What the client got
    // to write is the limit plus what the kernel's socket buffers hold, far from 200 MiB.
    const { written, answer } = await streamBody(url, cookie, 200 * 1024 * 1024);
    assert.ok(written < 16 * 1024 * 1024, `the client wrote ${written} bytes before the server stopped reading`);
    if (answer !== "") assert.match(answer, /^HTTP\/1.1 413/);

    // A declared size over the limit is refused before any of the body is sent.
    const { port } = new URL(url);
    const socket = connect({ host: "127.0.0.1", port: Number(port) });
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => (text += c));
    let closed = false;
    socket.on("close", () => (closed = true));
    socket.write(
      `POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${cookie}\r\nContent-Type: application/json\r\nContent-Length: ${200 * 1024 * 1024}\r\n\r\n`,
    );
    await eventually(() => assert.match(text, /^HTTP\/1.1 413[^]*over 65536 bytes/), 5000);
    await eventually(() => assert.ok(closed, "the connection is closed"), 5000);
    socket.destroy();
  });
});
