// node bench/redis-clients/ping.mjs — what one round trip costs through each
// client: sequential PINGs with node-redis as created by default (a 5 s
// per-command timeout, made with AbortSignal.timeout() for every command),
// node-redis with `commandOptions: { timeout: 0 }` (how toolfleet and the
// benchmark's floors create it), and ioredis. One process, alternating
// rounds of 10,000; medians of wall time and of this process's user and
// system CPU per PING.
//
//   ROUNDS=7 PINGS=10000
import IORedis from 'ioredis';
import { createClient } from 'redis';

const ROUNDS = +(process.env.ROUNDS || 7);
const PINGS = +(process.env.PINGS || 10000);
const url = 'redis://127.0.0.1:6379';
const byDefault = await createClient({ url }).connect();
const noTimeout = await createClient({ url, commandOptions: { timeout: 0 } }).connect();
const io = new IORedis(url);
await io.ping();
const clients = {
  'node-redis, default options': () => byDefault.sendCommand(['PING']),
  'node-redis, timeout 0': () => noTimeout.sendCommand(['PING']),
  ioredis: () => io.ping(),
};
const rows = {};
try {
  for (let round = 0; round <= ROUNDS; round++) {
    const names = Object.keys(clients);
    for (const name of round % 2 ? names.reverse() : names) {
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < PINGS; i++) await clients[name]();
      const used = process.cpuUsage(cpu);
      // Round 0 warms every client up and is not counted.
      if (round > 0) (rows[name] ??= []).push([((performance.now() - t0) * 1000) / PINGS, used.user / PINGS, used.system / PINGS]);
    }
  }
} finally {
  await byDefault.close();
  await noTimeout.close();
  io.disconnect();
}
const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
const result = Object.fromEntries(
  Object.entries(rows).map(([name, r]) => [name, { wallUs: +median(r.map((x) => x[0])).toFixed(1), userUs: +median(r.map((x) => x[1])).toFixed(1), systemUs: +median(r.map((x) => x[2])).toFixed(1) }]),
);
console.log(JSON.stringify({ command: 'node bench/redis-clients/ping.mjs', date: new Date().toISOString(), node: process.version, rounds: ROUNDS, pingsPerRound: PINGS, perPing: result }, null, 2));
