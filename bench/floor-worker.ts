// The floor's worker: the least a Redis Streams RPC can do. Reads requests in
// batches on a dedicated connection and answers each with reply XADD + XACK
// in one round trip. No validation, no identity, no idempotency.
// `ordered`: the next read is sent right after the replies are written (two
// event-loop turns later) instead of after their round trip, as toolfleet does.
// `claimed`: as `naive`, with what exactly-once adds to a call, in the Redis
// commands toolfleet's worker sends, built by its own code
// (src/tool-exec/idempotency.ts): the call's key claimed with SET NX PX before
// it is answered (one round trip, the claims of one read in one write), and
// its reply stored with SET EX beside the reply XADD and the XACK. The least a
// claimed streams RPC can do.
import { createClient, RESP_TYPES } from "redis";
import { BODY_FIELD } from "../src/redis/entry-codec.js";
import { keys } from "../src/redis/keys.js";
import { claimArgsFor, storeReplyArgs } from "../src/tool-exec/idempotency.js";
import { afterWrites } from "./harness.js";

const [url = "redis://127.0.0.1:6379", prefix = "floor", mode = "naive"] = process.argv.slice(2);
const ordered = mode === "ordered";
// Its keys in the floor's own namespace (`<prefix>:tools:idem:<call>`), claimed for 27 s and kept 120 s, as a tools worker's.
const idem = mode === "claimed" ? { keys: keys(prefix), claim: claimArgsFor(keys(prefix), "w", `w#${process.pid}`, 27_000) } : undefined;
const stream = `${prefix}:req`;
const group = `${stream}:grp`;
const redis = createClient({ url, commandOptions: { timeout: 0 } }); // as toolfleet sets it; see floor.ts
redis.on("error", (err: unknown) => console.error("floor worker redis error", err));
await redis.connect();
const reader = redis.duplicate();
reader.on("error", (err: unknown) => console.error("floor worker reader error", err));
await reader.connect();
await redis.sendCommand(["XGROUP", "CREATE", stream, group, "$", "MKSTREAM"]).catch(() => undefined); // exists already: fine
let running = true;
process.on("message", (m) => {
  if (m === "stop") running = false;
});
process.send?.("ready");
while (running) {
  const reply = await reader.sendCommand<Record<string, [Buffer, Buffer[]][]> | null>(
    ["XREADGROUP", "GROUP", group, "w", "COUNT", "64", "BLOCK", "200", "STREAMS", stream, ">"],
    { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
  );
  if (!reply) continue;
  const entries = Object.values(reply)[0] ?? [];
  const replies = Promise.all(
    entries.map(async ([id, fields]) => {
      // fields: [to, <reply stream>, id, <correlation>, payload, <bytes>]
      const to = fields[1]?.toString() ?? "";
      const correlation = fields[3]?.toString() ?? "";
      const payload = fields[5] ?? "";
      const tx = redis.multi().addCommand(["XADD", to, "MAXLEN", "~", "10000", "*", "id", correlation, "payload", payload]);
      if (idem) {
        const claim = await redis.sendCommand<string | null>(idem.claim(correlation));
        if (claim !== "OK") throw new Error(`floor worker: call ${correlation} claimed twice`);
        tx.addCommand(storeReplyArgs(idem.keys, correlation, { [BODY_FIELD]: payload.toString() }, 120));
      }
      return tx.addCommand(["XACK", stream, group, id]).exec();
    }),
  );
  if (ordered) {
    replies.catch((err: unknown) => console.error("floor worker reply failed", err));
    await afterWrites();
  } else await replies;
}
reader.destroy();
await redis.del([stream]);
await redis.close();
process.exit(0);
