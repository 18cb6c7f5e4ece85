// The web chat page the HTTP adapter serves: a document, its script, its style
// and its icon, each served from the chat's own origin, so the page's
// Content-Security-Policy allows no inline script or style (PAGE_CSP in
// http-adapter.ts). No build step and nothing fetched from elsewhere. Text is
// always set with textContent, never parsed as HTML.

export const CHAT_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>toolfleet chat</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/chat.css">
<script src="/chat.js" defer></script>
</head>
<body>
<header><strong>toolfleet chat</strong><small id="who"></small></header>
<main id="log" data-testid="log" aria-live="polite"></main>
<form id="form">
  <input id="text" data-testid="input" autocomplete="off" placeholder="Message, or /help for tools" aria-label="Message" maxlength="16000">
  <button type="submit" data-testid="send">Send</button>
</form>
</body>
</html>
`;

export const CHAT_STYLE = `
:root { font-family: system-ui, sans-serif; color: #1d2330; background: #f4f5f8; }
body { margin: 0; display: flex; flex-direction: column; height: 100vh; height: 100dvh; }
header { padding: .6rem 1rem; background: #1d2330; color: #fff; display: flex; flex-wrap: wrap; column-gap: 1rem; align-items: baseline; }
header small { opacity: .7; }
#log { flex: 1; overflow-y: auto; padding: 1rem; display: flex; flex-direction: column; gap: .6rem; }
.msg { max-width: min(46rem, 88%); padding: .55rem .8rem; border-radius: .6rem; white-space: pre-wrap; word-break: break-word; box-sizing: border-box; }
.user { align-self: flex-end; background: #2f6fed; color: #fff; position: relative; }
.user.flash { outline: 3px solid #f5b400; }
.user.reacted { margin-bottom: .5rem; }
.status { align-self: flex-end; margin-top: -.4rem; color: #667; font-size: .8rem; font-style: italic; display: flex; gap: .5rem; align-items: center; }
.status .stop { font-size: .75rem; padding: .1rem .5rem; font-style: normal; }
.bot { align-self: flex-start; background: #fff; box-shadow: 0 1px 2px #0002; }
.bot.failed { background: #fff4e5; }
.error { align-self: center; background: #ffe3e3; color: #8a1c1c; }
.quote { display: block; width: 100%; margin: 0 0 .35rem; padding: 0 0 0 .5rem; border: 0; border-left: 3px solid #b9c6e8; border-radius: 0; background: none; color: #556; font: inherit; font-size: .8rem; text-align: left; cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.reactions { position: absolute; bottom: -.9rem; left: -.6rem; background: #fff; border-radius: 1rem; padding: 0 .3rem; box-shadow: 0 1px 2px #0003; }
.calls { margin: 0 0 .4rem; white-space: normal; }
.call { font-size: .8rem; border-radius: .3rem; }
.call.nested { margin-left: 1.2rem; }
.call summary { cursor: pointer; padding: .1rem .3rem; border-radius: .3rem; list-style-position: inside; overflow-wrap: anywhere; }
.call summary:hover { background: #f0f2f7; }
.call .mark { font-weight: bold; }
.call.ok .mark { color: #1b7f3b; }
.call.bad .mark, .call.bad .kind { color: #b3261e; }
.call .name { font-family: ui-monospace, monospace; font-weight: 600; }
.call .route { display: inline-block; padding: 0 .35rem; border-radius: .6rem; background: #e6ecfb; color: #24408e; }
.call .route.gateway { background: #fdebd3; color: #7a4300; }
.call .route.remote { background: #dff3e6; color: #14532d; }
.call .meta { color: #667; }
.call .when { white-space: nowrap; }
.call pre { margin: .2rem 0 .4rem .3rem; padding: .35rem .45rem; background: #f0f2f7; border-radius: .3rem; font-size: .75rem; white-space: pre-wrap; word-break: break-word; max-height: 16rem; overflow: auto; }
.call .label { margin: .2rem 0 0 .3rem; color: #667; font-size: .75rem; }
.bot img { display: block; min-width: 96px; max-width: min(320px, 100%); margin-top: .5rem; image-rendering: pixelated; border: 1px solid #ccd; }
.bot a.file, .bot .gone { display: block; margin-top: .4rem; }
.bot .gone { color: #667; font-style: italic; }
.bot pre.rich { background: #f0f2f7; padding: .4rem; border-radius: .3rem; font-size: .8rem; overflow-x: auto; }
.notice { align-self: center; color: #667; font-size: .8rem; }
form { display: flex; gap: .5rem; padding: .8rem 1rem; background: #fff; border-top: 1px solid #dde; }
input { flex: 1; min-width: 0; font: inherit; padding: .5rem .7rem; border: 1px solid #bbc; border-radius: .4rem; }
button { font: inherit; padding: .5rem 1rem; border: 0; border-radius: .4rem; background: #2f6fed; color: #fff; cursor: pointer; }
`;

// String.raw: the script's own backslashes reach the browser as written.
export const CHAT_SCRIPT = String.raw`"use strict";
(function () {
  const log = document.getElementById("log");
  const input = document.getElementById("text");
  /** The user's messages on the page, by message id. */
  const questions = new Map();
  /** "thinking…" under each message still waiting for its answer. */
  const waiting = new Map();
  /** Answers shown, by answer id: the history and the event stream may both bring one. */
  const shown = new Set();
  /** Message ids that have an answer on the page. */
  const answered = new Set();
  let loaded = false;
  const queued = [];

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function atBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 40; }
  function put(e, stick) { log.appendChild(e); if (stick) log.scrollTop = log.scrollHeight; }
  function excerpt(text) { return text.length > 80 ? text.slice(0, 79) + "…" : text; }

  function question(id, text, isWaiting, reactions) {
    if (questions.has(id)) return;
    const stick = atBottom();
    const q = el("div", "msg user");
    q.appendChild(el("span", "said", text));
    q.dataset.id = id;
    q.dataset.testid = "question";
    questions.set(id, q);
    put(q, stick);
    if (isWaiting && !answered.has(id)) {
      const s = el("div", "status");
      s.dataset.testid = "pending";
      const line = el("span", "line", "thinking…");
      line.dataset.testid = "progress";
      s.appendChild(line);
      // Stops this answer: the bot's loop ends and the tools running for it are cancelled.
      const stop = el("button", "stop", "Stop");
      stop.type = "button";
      stop.dataset.testid = "stop";
      stop.addEventListener("click", function () {
        stop.disabled = true;
        fetch("/api/cancel", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messageId: id }) }).catch(function () { stop.disabled = false; });
      });
      s.appendChild(stop);
      waiting.set(id, s);
      put(s, stick);
    }
    if (reactions) react(q, reactions);
  }

  function duration(ms) {
    if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
    return (ms >= 10 ? ms.toFixed(1) : ms.toFixed(2)) + " ms";
  }
  /** Where a route ran: the tier, as the fleet is laid out (docs/architecture.md). */
  function tier(route, answeredBy) {
    if (route === "remote") return "tools service";
    if (route === "gateway") return "gateway";
    if (route === "local") return answeredBy ? "inference (" + answeredBy + ")" : "this process";
    if (route === "fallback") return "inference, after the tools service failed";
    if (route === "shadow") return "inference, mirrored on the tools service";
    return route;
  }
  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }
  function toolCall(c, answeredBy) {
    const ok = c.kind === "ok" || c.kind === "background";
    const d = el("details", "call " + (ok ? "ok" : "bad") + (c.nested ? " nested" : ""));
    d.dataset.testid = "tool-call";
    const s = el("summary");
    s.append(el("span", "mark", ok ? "✓" : "✗"), " ", el("span", "name", c.name), " ");
    const where = tier(c.route, answeredBy);
    s.append(el("span", "route " + c.route, where === c.route ? c.route : c.route + " · " + where), " ");
    // Duration and outcome wrap together, never apart.
    const when = el("span", "when");
    when.append(el("span", "meta", duration(c.durationMs) + " · "), el("span", "kind", c.kind));
    s.appendChild(when);
    d.append(s, el("div", "label", "arguments"), el("pre", "", pretty(c.args)), el("div", "label", "result" + (c.truncated ? " (cut)" : "")), el("pre", "", c.result));
    return d;
  }

  function answer(m) {
    if (m.id) { if (shown.has(m.id)) return; shown.add(m.id); }
    const stick = atBottom();
    if (m.inReplyTo) answered.add(m.inReplyTo);
    const s = waiting.get(m.inReplyTo);
    if (s) { s.remove(); waiting.delete(m.inReplyTo); }
    const a = el("div", "msg bot" + (m.failed ? " failed" : ""));
    a.dataset.testid = "answer";
    const q = questions.get(m.inReplyTo);
    if (m.inReplyTo) {
      // Answers can come in any order: each says which message it answers.
      const quote = el("button", "quote", "↩ " + (q ? excerpt(q.firstChild.textContent) : "an earlier message"));
      quote.type = "button";
      quote.dataset.testid = "quote";
      quote.title = "Show the message this answers";
      quote.addEventListener("click", function () {
        const target = questions.get(m.inReplyTo);
        if (!target) return;
        target.scrollIntoView({ block: "center", behavior: "smooth" });
        target.classList.add("flash");
        setTimeout(function () { target.classList.remove("flash"); }, 1200);
      });
      a.appendChild(quote);
    }
    if (m.toolCalls && m.toolCalls.length > 0) {
      const calls = el("div", "calls");
      for (const c of m.toolCalls) calls.appendChild(toolCall(c, m.answeredBy));
      a.appendChild(calls);
    }
    a.appendChild(el("div", "text", m.text));
    for (const f of m.files) {
      if (!f.url) { a.appendChild(el("span", "gone", "📎 " + f.name + " (no longer kept)")); continue; }
      if (f.contentType.startsWith("image/")) {
        const img = el("img");
        img.src = f.url; img.alt = f.name; img.dataset.testid = "image";
        img.addEventListener("error", function () { img.replaceWith(el("span", "gone", "🖼 " + f.name + " (no longer kept)")); });
        a.appendChild(img);
      } else {
        const link = el("a", "file", "📎 " + f.name + " (" + f.size + " bytes)");
        link.href = f.url; link.download = f.name;
        a.appendChild(link);
      }
    }
    for (const r of m.rich) a.appendChild(el("pre", "rich", JSON.stringify(r, null, 2)));
    put(a, stick);
  }

  function react(target, emoji) {
    let badge = target.querySelector(".reactions");
    if (!badge) { badge = el("span", "reactions"); badge.dataset.testid = "reaction"; target.appendChild(badge); target.classList.add("reacted"); }
    badge.textContent += emoji;
  }
  function reaction(r) {
    const target = questions.get(r.messageId);
    if (target) react(target, r.emoji);
  }

  /** A tool running for a waiting question reports how far it got: the line under the question says so. */
  function progress(p) {
    const s = waiting.get(p.inReplyTo);
    const line = s && s.querySelector("[data-testid=progress]");
    if (line) line.textContent = "⏳ " + p.tool + ": " + p.line;
  }

  function handle(kind, data) {
    if (kind === "question") question(data.id, data.text, true);
    else if (kind === "progress") progress(data);
    else if (kind === "answer") answer(data);
    else if (kind === "reaction") reaction(data);
  }
  function on(kind) {
    return function (e) {
      const data = JSON.parse(e.data);
      if (loaded) handle(kind, data); else queued.push([kind, data]);
    };
  }

  async function loadHistory() {
    try {
      const res = await fetch("/api/history");
      const body = await res.json();
      if (!res.ok) { put(el("div", "notice", body.error || ("the conversation so far could not be read (HTTP " + res.status + ")")), true); return; }
      for (const e of body.entries) {
        if (e.role === "user") question(e.id, e.text, e.waiting, e.reactions); else answer(e);
      }
    } catch (err) {
      put(el("div", "notice", "the conversation so far could not be read: " + err.message), true);
    } finally {
      loaded = true;
      for (const [kind, data] of queued.splice(0)) handle(kind, data);
      log.scrollTop = log.scrollHeight;
    }
  }

  // Listen first, then read the history: whatever is answered in between arrives on one or the other.
  const events = new EventSource("/api/events");
  let asked = false;
  events.addEventListener("hello", function (e) {
    document.getElementById("who").textContent = "you are " + JSON.parse(e.data).userId;
    if (!asked) { asked = true; loadHistory(); }
  });
  events.addEventListener("question", on("question"));
  events.addEventListener("answer", on("answer"));
  events.addEventListener("reaction", on("reaction"));
  events.addEventListener("progress", on("progress"));
  // A newer page of this user took this one's place (the server caps open pages per user): no reconnecting.
  events.addEventListener("replaced", function () {
    events.close();
    document.getElementById("who").textContent = "this page was replaced by a newer one: reload to use it";
  });

  document.getElementById("form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    try {
      const res = await fetch("/api/messages", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: text }) });
      const body = await res.json();
      if (!res.ok) { put(el("div", "msg error", (body.error || ("HTTP " + res.status)) + ": " + excerpt(text)), true); return; }
      // Usually already shown from the event stream; this covers a page whose stream is reconnecting.
      question(body.messageId, text, true);
    } catch (err) {
      put(el("div", "msg error", "Could not reach the gateway: " + err.message), true);
    }
  });
})();
`;

/** A small rounded "t" in the page's blue. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#2f6fed"/><path d="M9 11h14M16 11v11.5a2.5 2.5 0 0 0 2.5 2.5H21" fill="none" stroke="#fff" stroke-width="3.5" stroke-linecap="round" stroke-linejoin="round"/></svg>
`;
