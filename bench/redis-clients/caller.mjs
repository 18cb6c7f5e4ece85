// Caller process for one candidate: forks the worker, runs the measurements,
// reports JSON to the parent via IPC (or stdout when run directly).
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from './adapters.mjs';

const kind = process.argv[2];
const WARM = +(process.env.RB_WARM || 500), N = +(process.env.RB_N || 3000);
const TP_MS = +(process.env.RB_TP_MS || 5000), INFLIGHT = +(process.env.RB_INFLIGHT || 64);
const BIN_MIB = +(process.env.RB_BIN_MIB || 10), BIN_REPS = 3;
const pre = `rbench:${kind}:${process.pid}`;
const binKey = `${pre}:bin`;
let reqKey, replyKey;

const q = (arr, p) => { const s = [...arr].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const med = (a) => q(a, 0.5);
const FILL = 'x'.repeat(100);
const mkPayload = (id) => (String(id).padStart(12, '0') + FILL).slice(0, 100); // exactly 100 bytes

const cl = await connect(kind);
const pending = new Map();
let nextId = 1;
// Per phase: fresh streams + groups, fresh dedicated reply-reader connection.
async function beginPhase(name) {
  reqKey = `${pre}:${name}:req`; replyKey = `${pre}:${name}:reply`;
  await cl.cmd('DEL', reqKey, replyKey);
  await cl.cmd('XGROUP', 'CREATE', reqKey, 'g', '$', 'MKSTREAM');
  await cl.cmd('XGROUP', 'CREATE', replyKey, 'r', '$', 'MKSTREAM');
  const rd = await cl.dedicated();
  const st = { rd, stop: false };
  (async () => {
    for (;;) {
      let items;
      try { items = await rd.readGroup(replyKey, 'r', 'c', 64, 0, true); }
      catch (e) { if (st.stop) return; console.error('[caller] reader error', e.message); process.exit(1); }
      for (const it of items) {
        const id = +it.payload.slice(0, 12);
        const res = pending.get(id);
        if (res) { pending.delete(id); res(); }
      }
    }
  })();
  return st;
}
async function endPhase(st) { st.stop = true; st.rd.destroy(); await cl.cmd('DEL', reqKey, replyKey); }

function call() {
  const id = nextId++;
  const p = new Promise((res) => pending.set(id, res));
  cl.xaddReq(reqKey, mkPayload(id));
  return p;
}

async function startWorker(mode) {
  const w = fork(new URL('./worker.mjs', import.meta.url), [kind, reqKey, replyKey, mode]);
  await new Promise((res) => w.once('message', res));
  return w;
}
async function stopWorker(w) { w.kill(); await new Promise((r) => w.once('exit', r)); }

async function seqLatency() {
  for (let i = 0; i < WARM; i++) await call();
  const lat = new Array(N);
  for (let i = 0; i < N; i++) { const t = performance.now(); await call(); lat[i] = performance.now() - t; }
  return { p50: q(lat, 0.5), p90: q(lat, 0.9), p99: q(lat, 0.99) };
}
async function throughput() {
  const end = performance.now() + TP_MS; let done = 0; const lat = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: INFLIGHT }, async () => {
    while (performance.now() < end) { const t = performance.now(); await call(); lat.push(performance.now() - t); done++; }
  }));
  const el = (performance.now() - t0) / 1000;
  return { callsPerSec: done / el, loadedP50: q(lat, 0.5), loadedP99: q(lat, 0.99) };
}

const out = { kind };
// 1+2: pipelined worker
let ph = await beginPhase('pipe');
let w = await startWorker('pipe');
out.seq = await seqLatency();
out.tp = await throughput();
await stopWorker(w); await endPhase(ph);
// 1b: same sequential test, worker using MULTI/EXEC
ph = await beginPhase('multi');
w = await startWorker('multi');
out.seqMulti = await seqLatency();
await stopWorker(w); await endPhase(ph);

// 3: binary safety
const buf = randomBytes(BIN_MIB * 1024 * 1024);
const bin = [];
let identical = true, defaultIdentical = null, defaultType = null;
for (let i = 0; i < BIN_REPS; i++) {
  await cl.cmd('DEL', binKey);
  await cl.cmd('XGROUP', 'CREATE', binKey, 'bg', '$', 'MKSTREAM');
  await cl.cmd('XGROUP', 'CREATE', binKey, 'bg2', '$');
  const r = await cl.binRoundTrip(binKey, 'bg', buf);
  identical &&= Buffer.isBuffer(r.out) && r.out.equals(buf);
  bin.push(r);
  if (i === 0) {
    const d = await cl.binDefault(binKey, 'bg2');
    defaultType = Buffer.isBuffer(d) ? 'Buffer' : typeof d;
    defaultIdentical = Buffer.isBuffer(d) ? d.equals(buf) : Buffer.from(d, 'utf8').equals(buf);
  }
}
await cl.cmd('DEL', binKey);
out.bin = { identical, totalMs: med(bin.map((b) => b.xaddMs + b.readMs)), xaddMs: med(bin.map((b) => b.xaddMs)), readMs: med(bin.map((b) => b.readMs)), defaultType, defaultIdentical };

await cl.close();
if (process.send) process.send(out); else console.log(JSON.stringify(out, null, 1));
setTimeout(() => process.exit(0), 50);
