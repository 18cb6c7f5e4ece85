// Thin adapters so caller/worker code is identical for both clients.
// Each adapter exposes exactly the calls on the RPC path, written the way
// each library's docs recommend.
import { createClient, RESP_TYPES } from 'redis';
import { Redis } from 'ioredis';

const URL_ = process.env.RB_URL || 'redis://127.0.0.1:6379';
const TRIM = 10000;

// ---------------------------------------------------------------- node-redis
async function nodeRedis() {
  const c = createClient({ url: URL_ });
  c.on('error', (e) => process.env.RB_VERBOSE && console.error('[redis err]', e.message));
  await c.connect();
  const mk = (client) => ({
    raw: client,
    cmd: (...args) => client.sendCommand(args.map(String)),
    xaddReq: (key, payload) =>
      client.xAdd(key, '*', { payload }, { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: TRIM } }),
    // returns [{id, payload}] (payload as string)
    async readGroup(key, group, consumer, count, block, noack) {
      const r = await client.xReadGroup(group, consumer, { key, id: '>' }, { COUNT: count, BLOCK: block, NOACK: noack });
      if (!r) return [];
      return r[0].messages.map((m) => ({ id: m.id, payload: m.message.payload }));
    },
    // XADD reply * N + XACK in ONE round trip.
    // mode 'pipe' => execAsPipeline (no MULTI/EXEC); 'multi' => MULTI ... EXEC
    replyAndAck(replyKey, items, reqKey, group, mode) {
      const m = client.multi();
      for (const it of items)
        m.xAdd(replyKey, '*', { payload: it.payload }, { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: TRIM } });
      m.xAck(reqKey, group, items.map((i) => i.id));
      return mode === 'multi' ? m.exec() : m.execAsPipeline();
    },
    async dedicated() {
      const d = client.duplicate();
      d.on('error', () => {});
      await d.connect();
      return mk(d);
    },
    // Binary: XADD a Buffer, read it back as Buffer through a type-mapped proxy.
    async binRoundTrip(key, group, buf) {
      const t0 = performance.now();
      await client.xAdd(key, '*', { data: buf });
      const t1 = performance.now();
      const bc = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
      const r = await bc.xReadGroup(group, 'c', { key, id: '>' }, { COUNT: 1 });
      const t2 = performance.now();
      return { out: r[0].messages[0].message.data, xaddMs: t1 - t0, readMs: t2 - t1 };
    },
    async binDefault(key, group) {
      const r = await client.xReadGroup(group, 'c2', { key, id: '>' }, { COUNT: 1 });
      return r?.[0]?.messages?.[0]?.message?.data;
    },
    close: () => client.close(),
    destroy: () => client.destroy(),
  });
  return mk(c);
}

// ------------------------------------------------------------------- ioredis
async function ioredis() {
  const u = new URL(URL_);
  const mk = async (client) => {
    client.on('error', (e) => process.env.RB_VERBOSE && console.error('[ioredis err]', e.message));
    if (client.status !== 'ready') await new Promise((res, rej) => { client.once('ready', res); client.once('end', rej); });
    return {
      raw: client,
      cmd: (name, ...args) => client.call(name, ...args),
      xaddReq: (key, payload) => client.xadd(key, 'MAXLEN', '~', TRIM, '*', 'payload', payload),
      async readGroup(key, group, consumer, count, block, noack) {
        const r = noack
          ? await client.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', block, 'NOACK', 'STREAMS', key, '>')
          : await client.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', block, 'STREAMS', key, '>');
        if (!r) return [];
        // [[key, [[id, [f, v, ...]], ...]]]
        return r[0][1].map(([id, f]) => ({ id, payload: f[1] }));
      },
      replyAndAck(replyKey, items, reqKey, group, mode) {
        const p = mode === 'multi' ? client.multi() : client.pipeline();
        for (const it of items) p.xadd(replyKey, 'MAXLEN', '~', TRIM, '*', 'payload', it.payload);
        p.xack(reqKey, group, ...items.map((i) => i.id));
        return p.exec();
      },
      async dedicated() {
        return mk(client.duplicate());
      },
      async binRoundTrip(key, group, buf) {
        const t0 = performance.now();
        await client.xadd(key, '*', 'data', buf);
        const t1 = performance.now();
        const r = await client.xreadgroupBuffer('GROUP', group, 'c', 'COUNT', 1, 'STREAMS', key, '>');
        const t2 = performance.now();
        // [[Buffer key, [[Buffer id, [Buffer 'data', Buffer data]]]]]
        return { out: r[0][1][0][1][1], xaddMs: t1 - t0, readMs: t2 - t1 };
      },
      async binDefault(key, group) {
        const r = await client.xreadgroup('GROUP', group, 'c2', 'COUNT', 1, 'STREAMS', key, '>');
        return r?.[0]?.[1]?.[0]?.[1]?.[1];
      },
      close: () => client.quit(),
      destroy: () => client.disconnect(),
    };
  };
  return mk(new Redis({ host: u.hostname, port: Number(u.port || 6379) }));
}

export async function connect(kind) {
  if (kind === 'redis') return nodeRedis();
  if (kind === 'ioredis') return ioredis();
  throw new Error('unknown kind ' + kind);
}
