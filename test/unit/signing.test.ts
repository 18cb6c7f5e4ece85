import assert from "node:assert/strict";
import { test } from "node:test";
import { SIG_FIELD, signEntry, signatureProblem } from "../../src/tool-exec/signing.js";
import { loadConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/core/log.js";
import { ToolfleetError } from "../../src/core/errors.js";

const SECRET = "0123456789abcdef0123456789abcdef";

test("a signed entry verifies; changing any field, adding one, the kind or the secret breaks it", () => {
  const signed = signEntry(SECRET, "reply", { body: '{"correlation_id":"c1","result":"ok"}', "file.0": Buffer.from([1, 2, 3]) });
  assert.match(String(signed[SIG_FIELD]), /^v1\.\d+\.[0-9a-f]{64}$/);
  assert.equal(signatureProblem(SECRET, "reply", signed), null);
  // Bytes read back from Redis as Buffers verify the same.
  assert.equal(signatureProblem(SECRET, "reply", { ...signed, body: Buffer.from(String(signed.body)) }), null);
  assert.match(signatureProblem(SECRET, "reply", { ...signed, body: '{"correlation_id":"c1","result":"forged"}' }) ?? "", /does not match/);
  assert.match(signatureProblem(SECRET, "reply", { ...signed, "file.0": Buffer.from([1, 2, 4]) }) ?? "", /does not match/);
  assert.match(signatureProblem(SECRET, "reply", { ...signed, "file.1": "extra" }) ?? "", /does not match/);
  assert.match(signatureProblem(SECRET, "request", signed) ?? "", /does not match/);
  assert.match(signatureProblem(`${SECRET}x`, "reply", signed) ?? "", /does not match/);
  const unsigned = { ...signed };
  delete unsigned[SIG_FIELD];
  assert.match(signatureProblem(SECRET, "reply", unsigned) ?? "", /^unsigned reply/);
  assert.match(signatureProblem(SECRET, "reply", { ...signed, [SIG_FIELD]: "v1.1.zz" }) ?? "", /malformed/);
  // Another timestamp with the same mac: the time is signed too.
  const [, , mac] = String(signed[SIG_FIELD]).split(".");
  assert.match(signatureProblem(SECRET, "reply", { ...signed, [SIG_FIELD]: `v1.1.${mac}` }) ?? "", /does not match/);
});

test("fleetSecret comes from TOOLFLEET_FLEET_SECRET, must be 32+ characters, and is never echoed or logged", () => {
  assert.equal(loadConfig({ env: { TOOLFLEET_FLEET_SECRET: SECRET } }).fleetSecret, SECRET);
  assert.equal(loadConfig({ env: {} }).fleetSecret, "");
  assert.throws(
    () => loadConfig({ env: { TOOLFLEET_FLEET_SECRET: "short-s3cret" } }),
    (err: unknown) =>
      err instanceof ToolfleetError &&
      err.message.includes("TOOLFLEET_FLEET_SECRET") &&
      err.message.includes("at least 32") &&
      !err.message.includes("short-s3cret"),
  );
  const lines: string[] = [];
  createLogger("toolfleet.test", "info", { format: "json", write: (line) => lines.push(line) }).info({ config: { fleetSecret: SECRET } }, "config");
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes(SECRET));
});
