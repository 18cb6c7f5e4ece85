// The web chat page the HTTP adapter serves: one self-contained document, no
// build step and nothing fetched from elsewhere. Text is always set with
// textContent, never parsed as HTML.
export const CHAT_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>toolfleet chat</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f4f5f8; }
  body { margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: .6rem 1rem; background: #1d2330; color: #fff; display: flex; gap: 1rem; align-items: baseline; }
  header small { opacity: .7; }
  #log { flex: 1; overflow-y: auto; padding: 1rem; display: flex; flex-direction: column; gap: .6rem; }
  .msg { max-width: 46rem; padding: .55rem .8rem; border-radius: .6rem; white-space: pre-wrap; word-break: break-word; }
  .user { align-self: flex-end; background: #2f6fed; color: #fff; position: relative; }
  .bot { align-self: flex-start; background: #fff; box-shadow: 0 1px 2px #0002; }
  .error { align-self: center; background: #ffe3e3; color: #8a1c1c; }
  .pending { align-self: flex-start; color: #667; font-style: italic; }
  .reactions { position: absolute; bottom: -.9rem; left: -.6rem; background: #fff; border-radius: 1rem; padding: 0 .3rem; box-shadow: 0 1px 2px #0003; }
  .bot img { display: block; min-width: 96px; max-width: 320px; margin-top: .5rem; image-rendering: pixelated; border: 1px solid #ccd; }
  .bot a.file { display: block; margin-top: .4rem; }
  .bot pre.rich { background: #f0f2f7; padding: .4rem; border-radius: .3rem; font-size: .8rem; overflow-x: auto; }
  form { display: flex; gap: .5rem; padding: .8rem 1rem; background: #fff; border-top: 1px solid #dde; }
  input { flex: 1; font: inherit; padding: .5rem .7rem; border: 1px solid #bbc; border-radius: .4rem; }
  button { font: inherit; padding: .5rem 1rem; border: 0; border-radius: .4rem; background: #2f6fed; color: #fff; cursor: pointer; }
</style>
</head>
<body>
<header><strong>toolfleet chat</strong><small id="who"></small></header>
<main id="log" data-testid="log"></main>
<form id="form">
  <input id="text" data-testid="input" autocomplete="off" placeholder='Say something, or run a tool: /send_image {"width":64,"height":64}' maxlength="16000">
  <button type="submit" data-testid="send">Send</button>
</form>
<script>
  const log = document.getElementById("log");
  const pendingById = new Map();
  // An answer or reaction can arrive before the POST that sent the message returns.
  const early = new Map();
  function add(cls, text) {
    const el = document.createElement("div");
    el.className = "msg " + cls;
    el.textContent = text;
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    return el;
  }
  function botMessage(m) {
    const pending = pendingById.get(m.inReplyTo);
    if (pending) { pending.remove(); pendingById.delete(m.inReplyTo); }
    else early.set(m.inReplyTo, (early.get(m.inReplyTo) || []).concat([{ answered: true }]));
    const el = add("bot", m.text);
    el.dataset.testid = "answer";
    for (const f of m.files) {
      if (f.contentType.startsWith("image/")) {
        const img = document.createElement("img");
        img.src = f.url; img.alt = f.name; img.dataset.testid = "image";
        el.appendChild(img);
      } else {
        const a = document.createElement("a");
        a.className = "file"; a.href = f.url; a.download = f.name;
        a.textContent = "📎 " + f.name + " (" + f.size + " bytes)";
        el.appendChild(a);
      }
    }
    for (const r of m.rich) {
      const pre = document.createElement("pre");
      pre.className = "rich"; pre.textContent = JSON.stringify(r, null, 2);
      el.appendChild(pre);
    }
  }
  function reaction(r) {
    const target = log.querySelector('.user[data-id="' + CSS.escape(r.messageId) + '"]');
    if (!target) { early.set(r.messageId, (early.get(r.messageId) || []).concat([r])); return; }
    let badge = target.querySelector(".reactions");
    if (!badge) { badge = document.createElement("span"); badge.className = "reactions"; badge.dataset.testid = "reaction"; target.appendChild(badge); }
    badge.textContent += r.emoji;
  }
  const events = new EventSource("/api/events");
  events.addEventListener("hello", (e) => { document.getElementById("who").textContent = "you are " + JSON.parse(e.data).userId; });
  events.addEventListener("answer", (e) => botMessage(JSON.parse(e.data)));
  events.addEventListener("reaction", (e) => reaction(JSON.parse(e.data)));
  document.getElementById("form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = document.getElementById("text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const mine = add("user", text);
    try {
      const res = await fetch("/api/messages", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text }) });
      const body = await res.json();
      if (!res.ok) { add("error", body.error || ("HTTP " + res.status)); return; }
      mine.dataset.id = body.messageId;
      const before = early.get(body.messageId) || [];
      early.delete(body.messageId);
      if (!before.some((x) => x.answered)) pendingById.set(body.messageId, add("pending", "thinking…"));
      for (const r of before) if (r.emoji) reaction(r);
    } catch (err) {
      add("error", "Could not reach the gateway: " + err.message);
    }
  });
</script>
</body>
</html>
`;
