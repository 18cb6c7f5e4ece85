// Orchestrator: runs both candidates in one run, alternating order each round
// (A,B / B,A / ...), one caller process at a time, then reports medians.
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const ROUNDS = +(process.env.RB_ROUNDS || 5);
const KINDS = ['redis', 'ioredis'];
const ver = { redis: require('redis/package.json').version, ioredis: require('ioredis/package.json').version };
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const runOne = (kind) => new Promise((res, rej) => {
  const c = fork(new URL('./caller.mjs', import.meta.url), [kind]);
  let out; c.on('message', (m) => (out = m));
  c.on('exit', (code) => (out ? res(out) : rej(new Error(`${kind} caller exit ${code}`))));
});
const all = { redis: [], ioredis: [] };
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 ? [...KINDS].reverse() : KINDS;
  for (const k of order) {
    const o = await runOne(k); all[k].push(o);
    console.error(`round ${r + 1} ${k.padEnd(7)} seq p50=${o.seq.p50.toFixed(3)} p99=${o.seq.p99.toFixed(3)} multi p50=${o.seqMulti.p50.toFixed(3)} tp=${o.tp.callsPerSec.toFixed(0)}/s bin=${o.bin.totalMs.toFixed(1)}ms ok=${o.bin.identical}`);
  }
}
const rows = [
  ['seq p50 ms (pipeline worker)', (o) => o.seq.p50], ['seq p90 ms', (o) => o.seq.p90], ['seq p99 ms', (o) => o.seq.p99],
  ['seq p50 ms (MULTI/EXEC worker)', (o) => o.seqMulti.p50], ['seq p99 ms (MULTI/EXEC)', (o) => o.seqMulti.p99],
  ['throughput calls/s (64 in flight, 5s)', (o) => o.tp.callsPerSec], ['  loaded p50 ms', (o) => o.tp.loadedP50], ['  loaded p99 ms', (o) => o.tp.loadedP99],
  ['10MiB XADD+XREADGROUP ms', (o) => o.bin.totalMs], ['  XADD ms', (o) => o.bin.xaddMs], ['  XREADGROUP ms', (o) => o.bin.readMs],
];
console.log(`\nnode ${process.version}; redis@${ver.redis} vs ioredis@${ver.ioredis}; medians of ${ROUNDS} alternating rounds`);
console.log('metric'.padEnd(40) + `redis@${ver.redis}`.padStart(16) + `ioredis@${ver.ioredis}`.padStart(16));
for (const [name, f] of rows) console.log(name.padEnd(40) + KINDS.map((k) => med(all[k].map(f)).toFixed(name.includes('calls') ? 0 : 3).padStart(16)).join(''));
console.log('binary identical (all rounds)'.padEnd(40) + KINDS.map((k) => String(all[k].every((o) => o.bin.identical)).padStart(16)).join(''));
console.log('default API returns'.padEnd(40) + KINDS.map((k) => `${all[k][0].bin.defaultType}/ok=${all[k][0].bin.defaultIdentical}`.padStart(16)).join(''));
const f = process.env.RB_OUT || `results-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(f, JSON.stringify({ node: process.version, ver, rounds: ROUNDS, all }, null, 1));
console.log('raw: ' + f);
