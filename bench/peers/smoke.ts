// Smoke run of the peer benchmarks: each peer is started, measured briefly
// (sequential latency, then 64 in flight for 2 s), printed as one JSON line, and
// closed. The process must then exit by itself: a peer that leaks a handle shows up
// as a hang here, and the note below names what is still open.
//
//   npm run bench:peers-smoke            (all peers)
//   node dist/bench/peers/smoke.js mcp   (only the peers named)
import { sequential, throughput, type Subject } from "../harness.js";
import * as bullmq from "./bullmq.js";
import * as mcp from "./mcp.js";
import * as moleculer from "./moleculer.js";

const peers: Record<string, () => Promise<Subject>> = {
  bullmq: bullmq.start,
  moleculer: moleculer.start,
  mcp: mcp.start,
};

const wanted = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(peers);
for (const name of wanted) {
  const start = peers[name];
  if (!start) throw new Error(`unknown peer ${name}; known: ${Object.keys(peers).join(", ")}`);
  const subject = await start();
  try {
    const latency = await sequential(subject, 200, 50);
    const load = await throughput(subject, 64, 2);
    console.log(JSON.stringify({ peer: subject.name, sequential: latency, throughput: load }));
  } finally {
    await subject.close();
  }
}

// Unref'd, so it never keeps the process alive itself: it only speaks if something else does.
setTimeout(() => console.error("smoke: still alive 3 s after the last close:", process.getActiveResourcesInfo()), 3_000).unref();
