import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { writeSession } from "../../src/tool-exec/session.js";
import { ensureGroup, xaddArgs } from "../../src/redis/streams.js";
import { decodeReply, encodeRequest, type ToolReply } from "../../src/tool-exec/codec.js";
import { eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, exited, startToolsProcess, testKeys } from "../support/redis-helpers.js";

const FIXTURE = fileURLToPath(new URL("../support/fixtures/counting-tools.js", import.meta.url));

/** Writes a session record and publishes a slow_side_effect request by hand, as a caller would. */
async function publishSideEffect(
  redis: RedisNode,
  k: Keys,
  o: { traceId: string; correlationId: string; replyTo: string; key: string; ms: number; userId: string },
): Promise<void> {
  const sessionTag = await writeSession(redis, k, o.traceId, { userId: o.userId, guildId: "", channelId: "", platform: "test" }, 120);
  // A caller makes its reply stream before publishing: workers never create one (NOMKSTREAM).
  await ensureGroup(redis, o.replyTo, k.group(o.replyTo), "$");
  const fields = encodeRequest({
    type: "tool_exec",
    toolName: "slow_side_effect",
    toolArgs: { ms: o.ms, key: o.key },
    userId: o.userId,
    correlationId: o.correlationId,
    traceId: o.traceId,
    idemKey: `${o.traceId}:${o.correlationId}`,
    replyTo: o.replyTo,
    schemaHash: "",
    deadlineMs: Date.now() + 60_000,
    sessionTag,
    ctx: {
      platform: "test",
      channelId: "",
      userId: o.userId,
      userName: "",
      guildId: "",
      messageId: "",
      observabilityRequestId: "",
      disclosedSkillIds: [],
      roomContext: null,
    },
  });
  await redis.sendCommand(xaddArgs(k.toolsStream, fields, 1000));
}

/** Every reply on a reply stream, read without a group. */
async function repliesOn(redis: RedisNode, replyTo: string): Promise<ToolReply[]> {
  const raw = await redis.sendCommand<[string, string[]][]>(["XRANGE", replyTo, "-", "+"]);
  return raw.map(([, flat]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string;
    const decoded = decodeReply(f);
    assert.ok(decoded.ok);
    return decoded.value;
  });
}

test("a worker killed mid-call: another completes it, the side effect happens once, the caller gets one reply", { timeout: 90_000 }, async (t) => {
  const k = testKeys();
  const redis = await connect();
  const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_TEST_REDIS_URL: REDIS_URL };
  const args = (id: string) => ["--worker-id", id, "--lease-ms", "1000", "--tools", FIXTURE];
  const workers = await Promise.all([startToolsProcess(args("crash-a"), env), startToolsProcess(args("crash-b"), env)]);
  const counter = `${k.namespace}:side-effect`;
  try {
    const replyTo = k.toolsReplyStream("crash-caller");
    const correlationId = "crash-corr-1";
    const traceId = "crash-trace-1";
    await publishSideEffect(redis, k, { traceId, correlationId, replyTo, key: counter, ms: 2500, userId: "alice" });

    // Whoever started it dies mid-call.
    const startedKey = await eventually(async () => {
      const found: string[] = [];
      for await (const batch of redis.scanIterator({ MATCH: `${counter}:started:*` })) found.push(...batch);
      assert.equal(found.length, 1);
      return found[0] as string;
    }, 10_000);
    const victimPid = Number(startedKey.split(":").pop());
    const victim = workers.find((w) => w.pid === victimPid);
    assert.ok(victim, `the call started in one of our workers (pid ${victimPid})`);
    const killedAt = Date.now();
    victim.kill("SIGKILL");
    assert.equal(await exited(victim), null);

    const readReplies = () => repliesOn(redis, replyTo);
    const [reply] = await eventually(
      async () => {
        const got = await readReplies();
        assert.equal(got.length, 1);
        return got;
      },
      30_000,
      50,
    );
    t.diagnostic(`completed by the survivor ${Date.now() - killedAt} ms after the kill`);
    const survivor = workers.find((w) => w !== victim);
    assert.equal(reply?.status, "ok");
    assert.equal(reply?.correlationId, correlationId);
    assert.equal(reply?.result, `done by ${survivor?.pid} (run 1)`);
    // Give any duplicate a chance to show up: there must be none.
    await sleep(2500);
    assert.equal((await readReplies()).length, 1);
    assert.equal(await redis.get(counter), "1");
    const pending = await redis.sendCommand<[number]>(["XPENDING", k.toolsStream, k.group(k.toolsStream)]);
    assert.equal(Number(pending[0]), 0);
  } finally {
    for (const w of workers) if (w.exitCode === null) w.kill("SIGTERM");
    await Promise.all(workers.map(exited));
    await redis.del([counter]);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("`toolfleet tools` stops cleanly on SIGTERM and on SIGINT, finishing the call in flight", { timeout: 60_000 }, async () => {
  const k = testKeys();
  const redis = await connect();
  const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_TEST_REDIS_URL: REDIS_URL };
  try {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const worker = await startToolsProcess(["--worker-id", `sig-${signal}`, "--tools", FIXTURE], env);
      const counter = `${k.namespace}:sig-${signal}`;
      const replyTo = k.toolsReplyStream(`sig-caller-${signal}`);
      const traceId = `sig-trace-${signal}`;
      await publishSideEffect(redis, k, { traceId, correlationId: `sig-${signal}`, replyTo, key: counter, ms: 800, userId: "u" });
      await eventually(async () => {
        const found: string[] = [];
        for await (const batch of redis.scanIterator({ MATCH: `${counter}:started:*` })) found.push(...batch);
        assert.equal(found.length, 1);
      });
      worker.kill(signal);
      assert.equal(await exited(worker), 0, worker.output());
      assert.match(worker.output(), /stopped/);
      assert.equal(await redis.get(counter), "1", "the call in flight finished before the worker exited");
      assert.equal(Number(await redis.sendCommand(["XLEN", replyTo])), 1);
      assert.equal(await redis.exists(k.heartbeat("tools", `sig-${signal}`)), 0);
      await redis.del([counter]);
    }
  } finally {
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test("a worker SIGKILLed mid-call and restarted under the same id, again and again, finishes the call: no DEAD_LETTER", { timeout: 120_000 }, async () => {
  const k = testKeys();
  const redis = await connect();
  const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_TEST_REDIS_URL: REDIS_URL };
  // The default lease (30 s): the previous life's claim (27 s) outlives every restart here, and
  // no other worker reclaims anything; only the restarted worker itself can finish the call.
  const args = ["--worker-id", "restarting", "--tools", FIXTURE];
  const counter = `${k.namespace}:restarted`;
  const replyTo = k.toolsReplyStream("restart-caller");
  let worker = await startToolsProcess(args, env);
  const lives = [worker];
  try {
    await publishSideEffect(redis, k, { traceId: "restart-trace", correlationId: "restart-corr", replyTo, key: counter, ms: 1500, userId: "alice" });
    // Five interruptions (the delivery limit): the first life, then four restarted ones, each
    // killed once it has started the call again.
    for (let life = 1; life <= 5; life++) {
      const pid = worker.pid;
      await eventually(
        async () => assert.equal(await redis.exists(`${counter}:started:${pid}`), 1, `life ${life} (pid ${pid}) did not run the call`),
        10_000,
        25,
      );
      worker.kill("SIGKILL");
      assert.equal(await exited(worker), null);
      worker = await startToolsProcess(args, env);
      lives.push(worker);
    }
    const [reply] = await eventually(
      async () => {
        const got = await repliesOn(redis, replyTo);
        assert.equal(got.length, 1);
        return got;
      },
      15_000,
      50,
    );
    assert.equal(reply?.status, "ok", JSON.stringify(reply?.error));
    assert.equal(reply?.result, `done by ${worker.pid} (run 1)`);
    assert.equal(await redis.get(counter), "1", "the killed runs never got to count");
    // At-least-once, only for what a kill interrupted: every restart re-ran the call, and says so.
    assert.match(worker.output(), /re-running a call this worker's previous life was running/);
    assert.equal(Number(await redis.sendCommand(["XLEN", k.deadLetter(k.toolsStream)])), 0);
    await eventually(async () => {
      const pending = await redis.sendCommand<[number]>(["XPENDING", k.toolsStream, k.group(k.toolsStream)]);
      assert.equal(Number(pending[0]), 0);
    });
  } finally {
    for (const w of lives) if (w.exitCode === null && w.signalCode === null) w.kill("SIGTERM");
    await Promise.all(lives.map(exited));
    await redis.del([counter]);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
