// The floor: a minimal hand-written Redis Streams request/reply with the same
// client library toolfleet uses (XADD → XREADGROUP BLOCK → reply XADD+XACK →
// XREADGROUP BLOCK), the worker in a child process.
import { fork } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { createClient, RESP_TYPES } from "redis";
import { afterWrites, type Subject } from "./harness.js";

/**
 * `naive`: each side sends its next blocking read as soon as the last one is
 * handled (the worker after its replies' round trip): the floor the targets
 * are set against. `ordered`: each side first writes what the read set off
 * (the caller its next request, the worker its replies), as toolfleet does: a
 * lower floor, shown beside it. `claimed`: as `naive`, with each call claimed
 * before it is answered and its reply stored (see floor-worker.ts): the floor
 * of a call that runs exactly once.
 */
export type FloorMode = "naive" | "ordered" | "claimed";

export async function startFloor(url = "redis://127.0.0.1:6379", mode: FloorMode = "naive"): Promise<Subject> {
  const prefix = `floor-${process.pid}-${Date.now()}`;
  const worker = fork(fileURLToPath(new URL("./floor-worker.js", import.meta.url)), [url, prefix, mode]);
  await once(worker, "message");
  // No per-command timeout, as toolfleet sets it: node-redis's default makes an AbortSignal.timeout()
  // for every command: ~27 µs of CPU and ~39 µs of wall time per round trip here (bench/redis-clients/ping.mjs).
  const redis = createClient({ url, commandOptions: { timeout: 0 } });
  redis.on("error", (err: unknown) => console.error("floor caller redis error", err));
  await redis.connect();
  const reader = redis.duplicate();
  reader.on("error", (err: unknown) => console.error("floor caller reader error", err));
  await reader.connect();
  const replies = `${prefix}:reply`;
  await redis.sendCommand(["XGROUP", "CREATE", replies, `${replies}:grp`, "$", "MKSTREAM"]);
  const pending = new Map<string, () => void>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const reply = await reader.sendCommand<Record<string, [Buffer, Buffer[]][]> | null>(
        ["XREADGROUP", "GROUP", `${replies}:grp`, "c", "COUNT", "64", "BLOCK", "200", "NOACK", "STREAMS", replies, ">"],
        { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
      );
      if (!reply) continue;
      for (const [, fields] of Object.values(reply)[0] ?? []) {
        const id = fields[1]?.toString() ?? "";
        pending.get(id)?.();
        pending.delete(id);
      }
      if (mode === "ordered") await afterWrites();
    }
  })();
  const payload = "x".repeat(100);
  let next = 0;
  return {
    name: { naive: "floor (hand-written streams RPC)", ordered: "floor, writes before reads", claimed: "floor with a claim and a stored reply" }[mode],
    workerPids: worker.pid === undefined ? [] : [worker.pid],
    call: () => {
      const id = String(next++);
      const done = new Promise<void>((resolve) => pending.set(id, resolve));
      return redis.sendCommand(["XADD", `${prefix}:req`, "MAXLEN", "~", "10000", "*", "to", replies, "id", id, "payload", payload]).then(() => done);
    },
    close: async () => {
      running = false;
      await loop;
      worker.send("stop");
      await once(worker, "exit");
      reader.destroy();
      // The reply stream, and the claimed floor's records of its calls.
      const left = [replies];
      for await (const batch of redis.scanIterator({ MATCH: `${prefix}:tools:idem:*`, COUNT: 1000 })) left.push(...batch);
      await redis.del(left);
      await redis.close();
    },
  };
}
