import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { z } from "zod";
import { calculator, echo, exampleTools } from "../../examples/tools.js";
import { defineTool } from "../../src/index.js";
import { buildCatalog, toolSchemaHash } from "../../src/tool-exec/catalog.js";
import { routingKey } from "../../src/redis/cluster.js";
import { sameSlotKey, slotOf } from "../../src/redis/slots.js";
import { keys } from "../../src/redis/keys.js";
import { WrittenSessions, sessionRecord } from "../../src/tool-exec/session.js";
import { DEFAULT_MAX_REQUEST_BYTES, decodeReply, decodeRequest, encodeReply, encodeRequest } from "../../src/tool-exec/codec.js";
import { sampleReply, sampleRequest } from "../support/wire-samples.js";
import { ToolfleetError } from "../../src/core/errors.js";
import { claimArgsFor, storeReplyArgs } from "../../src/tool-exec/idempotency.js";

test("keys: the names of DESIGN §2, from the namespace", () => {
  const k = keys();
  assert.equal(k.toolsStream, "sg:stream:tools");
  assert.equal(k.toolsReplyStream("inf-1"), "sg:stream:tools:reply:inf-1");
  assert.equal(k.group(k.toolsReplyStream("inf-1")), "sg:stream:tools:reply:inf-1:grp");
  assert.equal(k.catalogParts, "sg:tools:catalog:parts");
  assert.equal(k.catalogPart("gpu", "w-1"), "{sg:tools:catalog:parts}:gpu:w-1");
  assert.equal(k.poolStream("default"), k.toolsStream, "the default pool keeps the key fleets before pools used");
  assert.equal(k.poolStream("gpu"), "sg:stream:tools:pool:gpu");
  assert.equal(k.workerStream("w-1"), "sg:stream:tools:worker:w-1");
  assert.throws(() => k.poolStream("a:b"), /invalid pool "a:b"/);
  assert.throws(() => k.poolStream(""), /invalid pool/);
  assert.equal(k.catalogChanged, "sg:tools:catalog:changed");
  assert.equal(k.toolSession("trace-9", "0123456789abcdef"), "sg:tool_session:trace-9:0123456789abcdef");
  assert.equal(k.idempotency("t:c"), "sg:tools:idem:t:c");
  assert.equal(k.deadLetter(k.toolsStream), "{sg:stream:tools}:dead");
  assert.equal(k.gatewayStream(), "sg:stream:gateway");
  assert.equal(keys("prod").catalogParts, "prod:tools:catalog:parts");
  assert.throws(() => keys("a b"), /invalid key namespace/);
  assert.throws(() => k.toolSession("x*", "0123456789abcdef"), /invalid trace id/);
  assert.throws(() => k.toolSession("x", "0123456789ABCDEF"), /invalid session tag/);
  assert.throws(() => k.toolsReplyStream("a".repeat(129)), /invalid worker id/);
});

describe("wire format", () => {
  test("a request round-trips through encode and decode", () => {
    const req = sampleRequest();
    const decoded = decodeRequest(encodeRequest(req));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, req);
  });

  test("a request over the size limit is refused with a clear error", () => {
    const big = sampleRequest({ toolArgs: { text: "x".repeat(DEFAULT_MAX_REQUEST_BYTES) } });
    assert.throws(
      () => encodeRequest(big),
      (err: unknown) =>
        err instanceof ToolfleetError &&
        err.code === "PAYLOAD_TOO_LARGE" &&
        /The request for tool 'echo' is 1\.0 MiB, over the 1\.0 MiB limit/.test(err.message),
    );
  });

  test("decoding names what is wrong, and salvages where to reply", () => {
    const bad = decodeRequest({
      body: JSON.stringify({ v: 1, type: "tool_exec", correlation_id: "c9", reply_to: "sg:stream:tools:reply:w", tool_name: "no spaces allowed" }),
    });
    assert.equal(bad.ok, false);
    if (bad.ok) return;
    assert.equal(bad.error.code, "INVALID_REQUEST");
    assert.match(bad.error.message, /tool_name/);
    assert.equal(bad.correlationId, "c9");
    assert.equal(bad.replyTo, "sg:stream:tools:reply:w");
    const version = decodeRequest({ body: JSON.stringify({ v: 2 }) });
    assert.equal(!version.ok && version.error.code, "UNSUPPORTED_VERSION");
    const notJson = decodeRequest({ body: "{" });
    assert.equal(!notJson.ok && notJson.error.code, "INVALID_REQUEST");
    const huge = decodeRequest({ body: "x".repeat(100) }, 10);
    assert.equal(!huge.ok && huge.error.code, "PAYLOAD_TOO_LARGE");
  });

  test("a field's length limit counts UTF-16 code units, as the zod schema does", () => {
    // user_name allows 200: 100 emoji are 200 code units (but only 100 code points).
    const at = (userName: string) => decodeRequest(encodeRequest(sampleRequest({ ctx: { ...sampleRequest().ctx, userName } })));
    assert.equal(at("😀".repeat(100)).ok, true);
    const over = at("😀".repeat(100) + "x");
    assert.equal(!over.ok && over.error.code, "INVALID_REQUEST");
    assert.match(!over.ok ? over.error.message : "", /ctx\.user_name/);
  });

  test("a reply over the limit becomes an error reply the caller can still read", () => {
    const fields = encodeReply(sampleReply(new Uint8Array(2048)), 1024);
    assert.deepEqual(Object.keys(fields), ["body"]);
    const decoded = decodeReply(fields);
    assert.ok(decoded.ok);
    assert.equal(decoded.value.status, "error");
    assert.equal(decoded.value.error?.code, "PAYLOAD_TOO_LARGE");
    // Even a limit smaller than the error reply itself ends (no recursion).
    assert.equal(decodeReply(encodeReply(sampleReply(new Uint8Array(10)), 5)).ok, true);
    const nameless = encodeReply({
      ...sampleReply(new Uint8Array(1)),
      writeBack: { sentFiles: [{ name: "", contentType: "x", data: new Uint8Array(1) }], injectedTools: null, sentRichMessages: [] },
    });
    const decodedNameless = decodeReply(nameless);
    assert.equal(decodedNameless.ok && decodedNameless.value.error?.code, "INTERNAL");
  });
});

describe("catalog", () => {
  test("the same tools give the same hashes, in any order", () => {
    const a = buildCatalog(exampleTools, { admin_stats: ["b", "a"] }, 1);
    const b = buildCatalog([...exampleTools].reverse(), { admin_stats: ["a", "b"] }, 2);
    assert.equal(a.schemaHash, b.schemaHash);
    assert.deepEqual(a.tools, b.tools);
    assert.match(a.schemaHash, /^[0-9a-f]{64}$/);
    assert.deepEqual(a.permissions, { admin_stats: ["a", "b"] });
    const tool = a.tools.find((t) => t.name === "echo");
    assert.deepEqual(tool?.annotations, { readOnly: true, idempotent: true });
    assert.equal(tool?.allowRepeat, true);
  });

  test("a schema written in another key order hashes the same; a changed tool changes only its own hash", () => {
    const one = defineTool({
      name: "t",
      description: "d",
      parameters: { type: "object", properties: { a: { type: "string" }, b: { type: "number" } } },
      handler: () => "",
    });
    const two = defineTool({
      name: "t",
      description: "d",
      parameters: { properties: { b: { type: "number" }, a: { type: "string" } }, type: "object" },
      handler: () => "",
    });
    assert.equal(toolSchemaHash(one), toolSchemaHash(two));
    const changedEcho = defineTool({ ...echo, parameters: z.object({ text: z.string(), extra: z.boolean() }), handler: () => "" });
    const before = buildCatalog([echo, calculator], {});
    const afterChange = buildCatalog([changedEcho, calculator], {});
    assert.notEqual(before.schemaHash, afterChange.schemaHash);
    assert.notEqual(before.tools[1]?.schemaHash, afterChange.tools[1]?.schemaHash);
    assert.equal(before.tools[0]?.schemaHash, afterChange.tools[0]?.schemaHash, "calculator's hash is untouched");
    assert.notEqual(buildCatalog([echo], { echo: ["x"] }).schemaHash, buildCatalog([echo], {}).schemaHash);
  });
});

describe("session records", () => {
  test("a caller writes a trace's record again only for another identity or a call that would outlive it", () => {
    const written = new WrittenSessions();
    const alice = { userId: "alice", guildId: "g", channelId: "c", platform: "discord" };
    const first = written.plan("turn-1", alice, 10_000);
    assert.deepEqual(first, { rec: sessionRecord(alice), write: true });
    written.wrote("turn-1", alice, first.rec, 20); // Redis keeps it 20 s; the caller counts on 19
    assert.deepEqual(written.plan("turn-1", { ...alice }, 10_000), { rec: first.rec, write: false });
    assert.equal(written.plan("turn-1", alice, 19_500).write, true, "a call needing it past its expiry writes it again");
    for (const other of [
      { ...alice, userId: "bob" },
      { ...alice, guildId: "h" },
      { ...alice, channelId: "d" },
      { ...alice, platform: "slack" },
    ]) {
      assert.deepEqual(written.plan("turn-1", other, 1000), { rec: sessionRecord(other), write: true });
    }
    assert.equal(written.plan("turn-2", alice, 1000).write, true, "another trace");
    written.forget("turn-1");
    assert.equal(written.plan("turn-1", alice, 1000).write, true, "forgotten");
  });
});

describe("Redis task store", () => {
  test("a namespace key builder refuses ids that could escape it", () => {
    const k = keys(`ns${randomBytes(2).toString("hex")}`);
    assert.throws(() => k.task("a b"), /invalid task id/);
  });
});

test("cluster slots: CRC16 of the hash tag or the whole key, as Redis computes them", () => {
  // 0x31C3 is CRC16/XMODEM of "123456789" (Redis Cluster spec); "foo" is 12182 in CLUSTER KEYSLOT.
  assert.equal(slotOf("123456789"), 0x31c3);
  assert.equal(slotOf("foo"), 12182);
  assert.equal(slotOf("{user1000}.following"), slotOf("user1000"));
  // An empty tag, or none closed, hashes the whole key.
  assert.equal(slotOf("{}x"), slotOf(Buffer.from("{}x")));
  assert.notEqual(slotOf("{}x"), slotOf(""));
  assert.equal(sameSlotKey("sg:stream:tools", "dead"), "{sg:stream:tools}:dead");
  assert.equal(sameSlotKey("{sg}:stream:tools", "dead"), "{sg}:stream:tools:dead");
  for (const key of ["sg:stream:tools", "{sg}:stream:tools", "a{b}c"]) assert.equal(slotOf(sameSlotKey(key, "x")), slotOf(key), key);
});

test("a raw command is routed by its key: after the name, after XGROUP/XINFO's subcommand, a script's first key, XREADGROUP's first stream", () => {
  assert.equal(routingKey(["XADD", "s", "*", "f", "v"]), "s");
  assert.equal(routingKey(["XGROUP", "CREATE", "s", "g", "$"]), "s");
  assert.equal(routingKey(["XINFO", "GROUPS", "s"]), "s");
  assert.equal(routingKey(["EVAL", "return 1", "2", "k1", "k2", "a"]), "k1");
  assert.equal(routingKey(["EVAL", "return 1", "0", "a"]), undefined);
  assert.equal(routingKey(["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "BLOCK", "10", "STREAMS", "s", ">"]), "s");
  for (const keyless of [["TIME"], ["INFO", "server"], ["PUBLISH", "channel", "m"]]) assert.equal(routingKey(keyless), undefined);
});

test("the claim and the stored reply, as the worker builds them per call, are the JSON of the documented records (docs/protocol.md §5.3)", () => {
  const k = keys("sg");
  const before = Date.now();
  const [cmd, key, value, nx, px, ms] = claimArgsFor(k, "w-1", 'w-1#"odd"', 27_000.5)("t:c");
  assert.deepEqual([cmd, key, nx, px, ms], ["SET", "sg:tools:idem:t:c", "NX", "PX", "27001"]);
  const claim = JSON.parse(value ?? "") as Record<string, unknown>;
  assert.deepEqual(Object.keys(claim), ["state", "worker", "instance", "at"]);
  assert.deepEqual({ ...claim, at: 0 }, { state: "running", worker: "w-1", instance: 'w-1#"odd"', at: 0 });
  assert.ok(typeof claim.at === "number" && claim.at >= before && claim.at <= Date.now());

  const body = JSON.stringify({ result: 'a "quoted"\n\u2028 text' });
  const withFile = { body, "file.0": Buffer.from([0, 255, 1]) };
  for (const [reply, session] of [
    [{ body }, "sg:tool_session:t:0123456789abcdef"],
    [{ body }, undefined],
    [withFile, "s"],
  ] as const) {
    const args = storeReplyArgs(k, "t:c", reply, 119.2, session);
    assert.deepEqual([args[0], args[1], args[3], args[4]], ["SET", "sg:tools:idem:t:c", "EX", "120"]);
    const files = reply === withFile ? { "file.0": Buffer.from([0, 255, 1]).toString("base64") } : {};
    // What JSON.stringify makes of the record object, byte for byte.
    assert.equal(args[2], JSON.stringify({ state: "done", body, files, session }));
  }
});

test("keys written together share a slot for every namespace the config accepts, one with a {tag} too; stray braces are refused", () => {
  for (const namespace of ["sg", "{sg}", "a{b}c", "x.y-z_1"]) {
    const k = keys(namespace);
    assert.equal(slotOf(k.deadLetter(k.toolsStream)), slotOf(k.toolsStream), `${k.deadLetter(k.toolsStream)} with ${k.toolsStream}`);
    assert.equal(slotOf(k.catalogPart("default", "w1")), slotOf(k.catalogParts), `${k.catalogPart("default", "w1")} with ${k.catalogParts}`);
    assert.equal(slotOf(k.task("t1")), slotOf(k.taskIndex), `${k.task("t1")} with ${k.taskIndex}`);
  }
  // These would not (the review of #23 found "a}b"'s dead letters in another slot than its stream).
  for (const namespace of ["a}b", "{}sg", "x}{y", "{a}{b}", "{"])
    assert.throws(
      () => keys(namespace),
      (err: unknown) => err instanceof ToolfleetError && err.code === "ID_INVALID" && /\{tag\}/.test(err.message),
      namespace,
    );
});
