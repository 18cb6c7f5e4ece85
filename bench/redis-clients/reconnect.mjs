// Reconnect behaviour: own redis-server on RB_PORT; a blocking XREADGROUP is
// pending when the server is SIGKILLed; server restarts after DOWN_MS.
// usage: node reconnect.mjs <redis|ioredis> <keep|lose> [downMs]
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, mkdirSync } from 'node:fs';
import { createClient } from 'redis';
import { Redis } from 'ioredis';
const [kind, dataMode = 'keep', downArg = '2000'] = process.argv.slice(2);
const PORT = +(process.env.RB_PORT || 6391), DOWN_MS = +downArg;
const DIR = new URL('./rs-' + PORT, import.meta.url).pathname;
const t0 = performance.now();
const log = (...a) => console.log(`[${kind} ${dataMode}] +${((performance.now() - t0) / 1000).toFixed(2)}s`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cli = (...a) => execFileSync('redis-cli', ['-p', String(PORT), ...a]).toString().trim();
const start = () => { mkdirSync(DIR, { recursive: true }); execFileSync('redis-server', ['--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--dir', DIR, '--pidfile', DIR + '/pid', '--logfile', DIR + '/log']); };
const pid = () => +readFileSync(DIR + '/pid', 'utf8');
const waitUp = async () => { for (let i = 0; i < 100; i++) { try { if (cli('ping') === 'PONG') return; } catch {} await sleep(50); } throw new Error('no server'); };

rmSync(DIR, { recursive: true, force: true });
start(); await waitUp();
const S = 'rbench:rc:req';
cli('XGROUP', 'CREATE', S, 'g', '$', 'MKSTREAM');
cli('SAVE'); // explicit snapshot so a 'keep' restart still has the stream+group

let main, blk, sub, xread;
if (kind === 'redis') {
  main = createClient({ url: `redis://127.0.0.1:${PORT}` });
  for (const ev of ['error', 'end', 'reconnecting', 'ready', 'connect']) main.on(ev, (e) => log(`main ${ev}`, e?.message ?? ''));
  await main.connect();
  blk = main.duplicate();
  for (const ev of ['error', 'end', 'reconnecting', 'ready']) blk.on(ev, (e) => log(`blk ${ev}`, e?.message ?? ''));
  await blk.connect();
  sub = main.duplicate(); sub.on('error', () => {}); await sub.connect();
  await sub.subscribe('rbench:ch', (m) => log('SUB got', m));
  xread = () => blk.xReadGroup('g', 'c', { key: S, id: '>' }, { COUNT: 64, BLOCK: 0 }).then((r) => r?.[0]?.messages?.map((m) => m.message));
} else {
  main = new Redis({ port: PORT, host: '127.0.0.1' });
  for (const ev of ['error', 'end', 'reconnecting', 'ready', 'connect', 'close']) main.on(ev, (e) => log(`main ${ev}`, typeof e === 'number' ? `in ${e}ms` : e?.message ?? ''));
  blk = main.duplicate();
  for (const ev of ['error', 'reconnecting', 'ready']) blk.on(ev, (e) => log(`blk ${ev}`, typeof e === 'number' ? `in ${e}ms` : e?.message ?? ''));
  sub = main.duplicate(); sub.on('error', () => {});
  await sub.subscribe('rbench:ch'); sub.on('message', (c, m) => log('SUB got', m));
  await new Promise((r) => (blk.status === 'ready' ? r() : blk.once('ready', r)));
  xread = () => blk.xreadgroup('GROUP', 'g', 'c', 'COUNT', 64, 'BLOCK', 0, 'STREAMS', S, '>').then((r) => r?.[0]?.[1]?.map((m) => m[1]));
}
// app-style loop: log every outcome; after a rejection re-issue (as a real worker would)
let attempts = 0;
(async () => {
  while (attempts < 4) {
    attempts++; const a = attempts;
    try { log(`XREADGROUP#${a} resolved`, JSON.stringify(await xread())); }
    catch (e) { log(`XREADGROUP#${a} REJECTED:`, e.constructor.name, e.message); await sleep(300); }
  }
})();
await sleep(500);
log('SIGKILL server (XREADGROUP#1 pending)');
process.kill(pid(), 'SIGKILL');
await sleep(200);
const offline = kind === 'redis' ? main.sendCommand(['PING']) : main.ping();
offline.then((r) => log('PING issued while down ->', r), (e) => log('PING issued while down REJECTED', e.message));
await sleep(DOWN_MS - 200);
if (dataMode === 'lose') rmSync(DIR + '/dump.rdb', { force: true });
start(); await waitUp(); log('server restarted');
if (dataMode === 'lose') { await sleep(3000); log('recreating group now'); cli('XGROUP', 'CREATE', S, 'g', '$', 'MKSTREAM'); }
await sleep(3000);
log('XADD + PUBLISH from redis-cli');
cli('XADD', S, '*', 'k', 'after-restart'); cli('PUBLISH', 'rbench:ch', 'hello-after-restart');
await sleep(2000);
log(`done; attempts=${attempts}; server pid ${pid()} killed`);
process.kill(pid(), 'SIGKILL');
rmSync(DIR, { recursive: true, force: true });
process.exit(0);
