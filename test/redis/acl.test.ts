import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { loadToolModule } from "../../src/fleet/load-tools.js";
import { registryFor } from "../../src/fleet/local.js";
import { createMcpServer, defineConfig, staticConfig } from "../../src/index.js";
import { ToolsClient } from "../../src/tool-exec/client.js";
import { closeRedis, type RedisNode } from "../../src/redis/client.js";
import type { Keys } from "../../src/redis/keys.js";
import { sessionRecord, sessionWriteArgs } from "../../src/tool-exec/session.js";
import { xaddArgs } from "../../src/redis/streams.js";
import { forgetDepartedConsumers } from "../../src/redis/live-workers.js";
import { setTimeout as sleep } from "node:timers/promises";
import { ToolExecServer, type ToolExecServerOptions } from "../../src/tool-exec/server.js";
import type { ConfigSource } from "../../src/config/live.js";
import { refreshPresence } from "../../src/tool-exec/catalog-parts.js";
import { RecordingLogger } from "../support/helpers.js";
import { OwnRedis, connect, echoCall, testKeys } from "../support/redis-helpers.js";

// The Redis ACL layout of docs/security.md, applied as written to a Redis of this test's own.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const PASSWORDS = { tools: "tools-pw-0123456789", inference: "inference-pw-0123456789", gateway: "gateway-pw-0123456789", mcp: "mcp-pw-0123456789" };

/** The `ACL SETUSER` lines of docs/security.md §1, for namespace `ns`, each split into its arguments. */
function aclCommands(ns: string): string[][] {
  const doc = readFileSync(resolve(ROOT, "docs/security.md"), "utf8");
  const lines = doc.split("\n").filter((l) => l.startsWith("ACL SETUSER "));
  assert.ok(lines.length >= 13, "docs/security.md lists the ACL SETUSER lines of four users");
  return lines.map((line) => {
    const text = line
      .replaceAll("<ns>", ns)
      .replace("<tools-password>", PASSWORDS.tools)
      .replace("<inference-password>", PASSWORDS.inference)
      .replace("<gateway-password>", PASSWORDS.gateway)
      .replace("<mcp-password>", PASSWORDS.mcp);
    // Words, or a single-quoted selector kept whole (as redis-cli reads it).
    return [...text.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  });
}

let own: OwnRedis;
let admin: RedisNode;
const k: Keys = testKeys();
const userUrl = (user: keyof typeof PASSWORDS) => `redis://toolfleet-${user}:${PASSWORDS[user]}@127.0.0.1:${own.port}`;

before(async () => {
  own = await OwnRedis.start();
  admin = await connect(own.url);
  for (const args of aclCommands(k.namespace)) await admin.sendCommand(args);
});

after(async () => {
  await closeRedis(admin);
  await own.stop();
});

/** Rejects with Redis's NOPERM: the user may not run this command on this key. */
async function refused(redis: RedisNode, args: ReturnType<typeof xaddArgs>): Promise<void> {
  await assert.rejects(redis.sendCommand(args), /NOPERM/, `${args.slice(0, 2).join(" ")} should be refused`);
}

/** A tools worker with the example tools on the toolfleet-tools user's connection `tools`. */
async function toolsWorker(
  tools: RedisNode,
  workerId: string,
  config: ConfigSource,
  logger: RecordingLogger,
  extra: Partial<ToolExecServerOptions> = {},
): Promise<ToolExecServer> {
  const module = await loadToolModule();
  return new ToolExecServer({
    redis: tools,
    redisUrl: userUrl("tools"),
    keys: k,
    registry: registryFor({ tools: module.tools, permissions: module.permissions }, config, logger),
    config,
    logger,
    workerId,
    worker: { blockMs: 200, leaseMs: 5000, heartbeatMs: 500 },
    ...extra,
  });
}

test("under the ACL users of docs/security.md a call works, and each tier's forbidden writes are refused", { timeout: 60_000 }, async () => {
  const logger = new RecordingLogger();
  const config = staticConfig(defineConfig({ backgroundThreshold: 0 }));
  const tools = await connect(userUrl("tools"), logger);
  const inference = await connect(userUrl("inference"), logger);
  const gateway = await connect(userUrl("gateway"), logger);
  const server = await toolsWorker(tools, "w1", config, logger);
  const client = new ToolsClient({ redis: inference, redisUrl: userUrl("inference"), keys: k, workerId: "caller-1", logger, blockMs: 200 });
  try {
    await server.start();
    await client.start();
    const reply = await client.call(echoCall("through the ACLs", 10_000));
    assert.equal(reply.status, "ok", JSON.stringify(reply));
    assert.equal(reply.result, "through the ACLs");
    // Nothing the tiers did on the way (heartbeats, catalog, groups, reply streams) was refused.
    assert.deepEqual(
      logger.records.filter((r) => r.level === "error" || r.level === "warn" || JSON.stringify(r.fields).includes("NOPERM")).map((r) => r.msg),
      [],
    );

    // The tools worker's keep-alive tick (src/tool-exec/catalog-presence.ts: the presence script's ZSCORE,
    // the PEXPIREs of its own stream and dead letters), sent now rather than a refresh period later.
    const [member] = await admin.zRange(k.catalogParts, 0, 0);
    assert.ok(member, "the worker published its catalog part");
    assert.equal(await refreshPresence(tools, k, { pool: "default", workerId: "w1" }, member), true);
    await tools.pExpire(k.workerStream("w1"), 60_000);
    await tools.pExpire(k.deadLetter(k.workerStream("w1")), 60_000);

    const session = sessionRecord({ userId: "admin", guildId: "g", channelId: "c", platform: "discord" });
    const writeSession = sessionWriteArgs(k, "forged-trace", session, 30);
    const request = xaddArgs(k.toolsStream, { body: "{}" }, 1000);
    // Tools tier: reads session records but writes none, and sends no requests.
    await refused(tools, writeSession);
    await refused(tools, request);
    await refused(tools, xaddArgs(k.gatewayStream(), { body: "{}" }, 1000));
    await refused(tools, xaddArgs(k.chatStream, { body: "{}" }, 1000));
    // Inference tier (the caller): writes no replies, no catalog.
    await refused(inference, xaddArgs(k.toolsReplyStream("caller-2"), { body: "{}" }, 1000));
    await refused(inference, ["SET", k.catalogPart("default", "forged"), "{}"]);
    await refused(inference, ["ZADD", k.catalogParts, "9999999999999", "default/forged/0123456789abcdef"]);
    // Gateway: sends chat messages, but neither writes session records nor calls tools.
    await refused(gateway, writeSession);
    await refused(gateway, request);
    await refused(gateway, xaddArgs(k.gatewayStream(), { body: "{}" }, 1000));
    assert.match(await gateway.sendCommand<string>(xaddArgs(k.chatStream, { body: "{}" }, 1000)), /^\d+-\d+$/);
    // Each tier's engine forgets departed consumers of the stream it reads (EVAL, XPENDING, XGROUP DELCONSUMER).
    for (const [redis, stream, service] of [
      [tools, k.toolsStream, "tools"],
      [inference, k.chatStream, "inference"],
      [gateway, k.gatewayStream(), "gateway"],
    ] as const) {
      await admin.sendCommand(["XGROUP", "CREATE", stream, k.group(stream), "$", "MKSTREAM"]).catch(() => undefined);
      await admin.sendCommand(["XGROUP", "CREATECONSUMER", stream, k.group(stream), `gone-${service}`]);
      await sleep(30);
      assert.ok((await forgetDepartedConsumers(redis, k, stream, service, 20)).includes(`gone-${service}`), `${service} forgets its departed`);
    }
  } finally {
    await client.stop();
    await server.stop();
    await closeRedis(tools);
    await closeRedis(inference);
    await closeRedis(gateway);
  }
});

test(
  "under the ACL users, a worker reading its pool's shard streams answers calls sent to each shard and dead-letters there",
  { timeout: 60_000 },
  async () => {
    const logger = new RecordingLogger();
    const config = staticConfig(defineConfig({ backgroundThreshold: 0 }));
    const tools = await connect(userUrl("tools"), logger);
    const inference = await connect(userUrl("inference"), logger);
    const server = await toolsWorker(tools, "w-shards", config, logger, { shards: 3 });
    const client = new ToolsClient({ redis: inference, redisUrl: userUrl("inference"), keys: k, workerId: "caller-shards", logger, blockMs: 200 });
    const shards = [0, 1, 2].map((i) => k.poolShardStream("default", i));
    try {
      await server.start();
      await client.start();
      // Every shard, the default pool's (`<ns>:stream:tools:shard:<i>`) as well as shard 0 (the pool's stream).
      for (const stream of shards) {
        const reply = await client.call({ ...echoCall(`to ${stream}`, 10_000), stream });
        assert.equal(reply.status, "ok", JSON.stringify(reply));
        assert.equal(reply.result, `to ${stream}`);
      }
      // A request that cannot be read goes to the shard's own dead letters.
      await admin.sendCommand(xaddArgs(shards[2]!, { body: "not json" }, 1000));
      const deadline = Date.now() + 10_000;
      while ((await admin.xLen(k.deadLetter(shards[2]!))) === 0) {
        assert.ok(Date.now() < deadline, `no dead letter in ${k.deadLetter(shards[2]!)} within 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(
        logger.records.filter((r) => r.level === "error" || JSON.stringify(r.fields).includes("NOPERM")).map((r) => r.msg),
        [],
      );
    } finally {
      await client.stop();
      await server.stop();
      await closeRedis(tools);
      await closeRedis(inference);
    }
  },
);

test(
  "under the toolfleet-mcp ACL user, `toolfleet mcp` serves a session: a call, a log level, a cancel, DELETE; it writes no reply",
  { timeout: 60_000 },
  async () => {
    const logger = new RecordingLogger();
    const config = staticConfig(defineConfig({ namespace: k.namespace, backgroundThreshold: 0, toolsServiceMode: "remote" }));
    const tools = await connect(userUrl("tools"), logger);
    const mcpUser = await connect(userUrl("mcp"), logger);
    const server = await toolsWorker(tools, "w-mcp", config, logger);
    const mcp = createMcpServer({ config, logger, redisUrl: userUrl("mcp"), workerId: "mcp-1", port: 0, localUser: "alice" });
    try {
      await server.start();
      await mcp.start();
      const url = mcp.url ?? "";
      const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" };
      const post = async (body: unknown, session?: string): Promise<{ status: number; text: string; session: string | null }> => {
        const res = await fetch(url, {
          method: "POST",
          headers: { ...headers, ...(session ? { "mcp-session-id": session } : {}) },
          body: JSON.stringify(body),
        });
        return { status: res.status, text: await res.text(), session: res.headers.get("mcp-session-id") };
      };
      const init = await post({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "acl", version: "1" } },
      });
      assert.equal(init.status, 200, init.text);
      const session = init.session ?? "";
      assert.equal((await post({ jsonrpc: "2.0", id: 2, method: "logging/setLevel", params: { level: "info" } }, session)).status, 200);
      const call = await post({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "echo", arguments: { text: "through the mcp user" } } }, session);
      assert.match(call.text, /through the mcp user/);
      assert.equal((await post({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 99 } }, session)).status, 202);
      assert.equal((await fetch(url, { method: "DELETE", headers: { "mcp-session-id": session } })).status, 200);
      assert.deepEqual(
        logger.records.filter((r) => r.level === "error" || r.level === "warn" || JSON.stringify(r.fields).includes("NOPERM")).map((r) => r.msg),
        [],
      );
      await refused(mcpUser, xaddArgs(k.toolsReplyStream("caller-2"), { body: "{}" }, 1000));
      await refused(mcpUser, xaddArgs(k.gatewayStream(), { body: "{}" }, 1000));
      await refused(mcpUser, xaddArgs(k.chatStream, { body: "{}" }, 1000));
      await refused(mcpUser, ["SET", k.catalogPart("default", "forged"), "{}"]);
    } finally {
      await mcp.stop();
      await server.stop();
      await closeRedis(tools);
      await closeRedis(mcpUser);
    }
  },
);
