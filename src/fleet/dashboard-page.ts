// The dashboard's two pages (src/fleet/dashboard.ts): plain HTML, one inline script, no build step.

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:17px;margin:0}header span{opacity:.75}
main{padding:12px 18px;display:grid;gap:14px;grid-template-columns:repeat(auto-fit,minmax(520px,1fr))}
section{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 12px;overflow:auto}
h2{font-size:14px;margin:0 0 8px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eef0f3;white-space:nowrap;font-variant-numeric:tabular-nums}
th{font-weight:600;color:#555}.bad{color:#b3261e;font-weight:600}.ok{color:#1b7f3b}.muted{color:#888}
button{font:inherit;padding:2px 8px;border:1px solid #aab;border-radius:5px;background:#fff;cursor:pointer}
.err{color:#b3261e}form{max-width:340px;margin:80px auto;background:#fff;padding:20px;border-radius:8px;border:1px solid #dde1e8}
input{font:inherit;width:100%;box-sizing:border-box;padding:6px;margin:8px 0}.wide{grid-column:1/-1}`;

export const LOGIN_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>toolfleet dashboard: sign in</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>${STYLE}</style></head><body>
<form method="post" action="/login"><h2>toolfleet dashboard</h2><!--error-->
<label>Admin token<input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button type="submit">Sign in</button></form></body></html>`;

const SCRIPT = `
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const ms = (v) => (v === null ? "–" : v > 60000 ? "> 60 s" : v >= 1000 ? v / 1000 + " s" : "≤ " + v + " ms");
const table = (head, rows) => "<table><tr>" + head.map((h) => "<th>" + h + "</th>").join("") + "</tr>" + rows.join("") + "</table>";
const rates = [];
async function act(action, d) {
  const res = await fetch("/api/dead/" + action, { method: "POST", headers: { "content-type": "application/json", "x-toolfleet-admin": "1" }, body: JSON.stringify({ deadStream: d.deadStream, id: d.id }) });
  const out = await res.json();
  $("notice").textContent = out.ok ? action + "d " + d.id + (out.newId ? " as " + out.newId : "") : "could not " + action + ": " + out.error;
  refresh();
}
function spark(values) {
  const max = Math.max(1, ...values), w = 240, h = 40;
  const pts = values.map((v, i) => (i * w) / Math.max(1, values.length - 1) + "," + (h - (v / max) * h).toFixed(1)).join(" ");
  return '<svg width="' + w + '" height="' + h + '" role="img" aria-label="calls per second"><polyline fill="none" stroke="#2f6feb" stroke-width="2" points="' + pts + '"/></svg>';
}
async function refresh() {
  let s;
  try {
    const res = await fetch("/api/state");
    if (res.status === 401) return location.reload();
    s = await res.json();
  } catch (e) { $("status").textContent = "cannot reach the dashboard: " + e; return; }
  $("status").textContent = "namespace " + s.namespace + " · " + new Date(s.at).toLocaleTimeString();
  $("workers").innerHTML = table(["service", "worker", "pool", "version", "health", "in flight", "processed", "dead-lettered"], s.workers.map((w) =>
    "<tr><td>" + esc(w.service) + "</td><td>" + esc(w.workerId) + "</td><td>" + esc(w.pool || "–") + "</td><td>" + esc(w.version) + '</td><td class="' + (w.healthy ? "ok" : "bad") + '">' + (w.healthy ? "alive" : "stalled") + "</td><td>" + w.inFlight + "</td><td>" + w.processed + "</td><td>" + w.deadLettered + "</td></tr>"));
  const total = s.tools.reduce((n, t) => n + t.perSecond, 0);
  rates.push(total); if (rates.length > 60) rates.shift();
  $("rate").innerHTML = "<b>" + total.toFixed(1) + "</b> calls/s " + spark(rates);
  $("tools").innerHTML = table(["tool", "calls/s", "p50", "p99", "errors", "total"], s.tools.map((t) =>
    '<tr data-tool="' + esc(t.tool) + '"><td>' + esc(t.tool) + '</td><td class="rate">' + t.perSecond + "</td><td>" + ms(t.p50Ms) + "</td><td>" + ms(t.p99Ms) + '</td><td class="' + (t.errors ? "bad" : "") + '">' + t.errors + "</td><td>" + t.total + "</td></tr>"));
  const cat = s.catalog;
  $("catalog").innerHTML = !cat ? '<p class="muted">no live tools worker publishes a catalog</p>' :
    "<p>" + cat.tools.length + " tools from " + cat.publishers + " worker(s)</p>" +
    (cat.conflicts.length ? '<p class="bad">conflicts: ' + cat.conflicts.map((c) => esc(c.tool) + " (" + c.offers.length + " schemas)").join(", ") + "</p>" : "") +
    table(["tool", "schema"], cat.tools.map((t) => "<tr><td>" + esc(t.name) + '</td><td class="muted">' + esc(t.schemaHash) + "</td></tr>"));
  $("errors").innerHTML = s.errors.length ? table(["when", "worker", "tool", "kind", "text"], s.errors.map((e) =>
    "<tr><td>" + new Date(e.at).toLocaleTimeString() + "</td><td>" + esc(e.worker) + "</td><td>" + esc(e.tool) + '</td><td class="bad">' + esc(e.kind) + "</td><td>" + esc(e.text) + "</td></tr>")) : '<p class="muted">none</p>';
  const dead = $("dead");
  dead.innerHTML = s.deadLetters.length ? table(["when", "stream", "id", "tool", "reason", "deliveries", ""], s.deadLetters.map((d, i) =>
    '<tr data-dead="' + esc(d.id) + '"><td>' + new Date(d.at).toLocaleTimeString() + "</td><td>" + esc(d.stream) + "</td><td>" + esc(d.id) + "</td><td>" + esc(d.tool) + "</td><td>" + esc(d.reason) + "</td><td>" + esc(d.deliveries) +
    '</td><td><button data-i="' + i + '" data-a="requeue">requeue</button> <button data-i="' + i + '" data-a="delete">delete</button></td></tr>')) : '<p class="muted">none</p>';
  dead.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => act(b.dataset.a, s.deadLetters[Number(b.dataset.i)])));
}
refresh();
setInterval(refresh, 2000);`;

export const DASHBOARD_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>toolfleet dashboard</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>${STYLE}</style></head><body>
<header><h1>toolfleet</h1><span id="status">loading…</span><span id="notice"></span></header>
<main>
<section><h2>Workers</h2><div id="workers"></div></section>
<section><h2>Calls</h2><div id="rate"></div><div id="tools"></div></section>
<section><h2>Catalog</h2><div id="catalog"></div></section>
<section class="wide"><h2>Recent errors</h2><div id="errors"></div></section>
<section class="wide"><h2>Dead letters</h2><div id="dead"></div></section>
</main><script>${SCRIPT}</script></body></html>`;
