// Worker process: dedicated blocking conn for XREADGROUP, separate conn for
// the XADD-reply + XACK round trip.
import { connect } from './adapters.mjs';
const [kind, reqKey, replyKey, mode] = process.argv.slice(2);
const base = await connect(kind);
const rd = await base.dedicated();
process.send({ ready: true });
for (;;) {
  let items;
  try {
    items = await rd.readGroup(reqKey, 'g', 'c', 64, 0, false);
  } catch (e) {
    console.error('[worker] read error', e.message);
    process.exit(1);
  }
  if (items.length) await base.replyAndAck(replyKey, items, reqKey, 'g', mode);
}
