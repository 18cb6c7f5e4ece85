// Wire compatibility (docs/protocol.md §9): a v1 peer (test/support/v1-peer.ts: the bodies and checks of
// the code before v1.1) and a v1.1 peer work together both ways, over the real Redis.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { closeRedis } from "../../src/redis/client.js";
import { ensureGroup } from "../../src/redis/streams.js";
import { ToolsClient } from "../../src/tool-exec/client.js";
import { writeSession } from "../../src/tool-exec/session.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, echoCall, exited, startToolsProcess, testKeys } from "../support/redis-helpers.js";
import { entriesOf, readV1Reply, serveOneAsV1, type V1Request } from "../support/v1-peer.js";

const FIXTURE = fileURLToPath(new URL("../support/fixtures/v11-tools.js", import.meta.url));

test("a v1 worker serves a v1.1 caller that asks for progress and can cancel: it reads the request, and the caller takes its reply", async () => {
  const k = testKeys();
  const redis = await connect();
  const client = new ToolsClient({ redis, redisUrl: REDIS_URL, keys: k, workerId: "v11-caller", logger: new RecordingLogger() });
  try {
    await ensureGroup(redis, k.toolsStream, k.group(k.toolsStream));
    await client.start();
    const served = serveOneAsV1(redis, k, (req) => `v1 says ${(req.tool_args as { text: string }).text}`);
    const updates: unknown[] = [];
    const reply = await client.call({
      ...echoCall("hello", 10_000),
      signal: new AbortController().signal,
      onProgress: (u) => updates.push(u),
      maxTotalMs: 30_000,
    });
    const req: V1Request & { progress?: boolean; max_deadline_ms?: number } = await served;
    assert.equal(req.progress, true, "the v1.1 members went out, and the v1 checks let them through");
    assert.ok(typeof req.max_deadline_ms === "number");
    assert.equal(reply.status, "ok");
    assert.equal(reply.result, "v1 says hello");
    assert.equal(reply.structured, undefined);
    assert.deepEqual(updates, []);
  } finally {
    await client.stop();
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});

test(
  "a v1 caller is served by a v1.1 worker process: replies it can read, its structured result as text, no progress entries it never asked for",
  { timeout: 60_000 },
  async () => {
    const k = testKeys();
    const redis = await connect();
    const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_TEST_REDIS_URL: REDIS_URL };
    const worker = await startToolsProcess(["--worker-id", "v11-worker", "--tools", FIXTURE], env);
    try {
      const replyTo = k.toolsReplyStream("v1-caller");
      await ensureGroup(redis, replyTo, k.group(replyTo), "$");
      const identity = { userId: "u", guildId: "", channelId: "", platform: "" };
      const send = async (correlationId: string, tool: string, args: unknown): Promise<void> => {
        const traceId = `v1-trace-${correlationId}`;
        const tag = await writeSession(redis, k, traceId, identity, 60);
        const body = {
          v: 1,
          type: "tool_exec",
          tool_name: tool,
          tool_args: args,
          user_id: "u",
          correlation_id: correlationId,
          idem_key: `${traceId}:${correlationId}`,
          reply_to: replyTo,
          schema_hash: "",
          deadline_ms: Date.now() + 20_000,
          session_tag: tag,
          ctx: {
            platform: "",
            channel_id: "",
            user_id: "u",
            user_name: "",
            guild_id: "",
            message_id: "",
            observability_request_id: "",
            disclosed_skill_ids: [],
            room_context: null,
            trace_id: traceId,
          },
        };
        await redis.sendCommand(["XADD", k.toolsStream, "*", "body", JSON.stringify(body)]);
      };
      await send("c1", "weather_report", { city: "Oslo" });
      await send("c2", "reports", { count: 5, everyMs: 150 });
      const entries = await eventually(
        async () => {
          const got = await entriesOf(redis, replyTo);
          assert.equal(got.length, 2);
          return got;
        },
        20_000,
        50,
      );
      const replies = new Map(entries.map((e) => [readV1Reply(e.fields.body).correlation_id, readV1Reply(e.fields.body)]));
      for (const e of entries) assert.deepEqual(Object.keys(e.fields), ["body"], "a reply, and nothing else, on a v1 caller's stream");
      assert.equal(replies.get("c1")?.status, "ok");
      assert.equal(replies.get("c1")?.result, "Weather for Oslo ☀");
      assert.equal(replies.get("c2")?.result, "reported 5 times");
    } finally {
      worker.kill("SIGTERM");
      await exited(worker);
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  },
);
