import assert from "node:assert/strict";
import { test } from "node:test";
import { ToolfleetError } from "../../src/index.js";
import { OUTCOME_KINDS, isFailure, isToolfleetError, wireError } from "../../src/protocol.js";
import { parseOutcomeKind } from "../../src/core/outcome.js";

test("outcome kinds read from the wire: known kept, the old gateway_unavailable mapped, unknown dropped", () => {
  for (const kind of OUTCOME_KINDS) assert.equal(parseOutcomeKind(kind), kind);
  assert.equal(parseOutcomeKind("gateway_unavailable"), "unavailable");
  assert.equal(parseOutcomeKind("some_future_kind"), undefined);
  assert.equal(parseOutcomeKind("__proto__"), undefined);
});

test("only ok and background are not failures", () => {
  assert.deepEqual(
    OUTCOME_KINDS.filter((k) => !isFailure(k)),
    ["ok", "background"],
  );
});

test("one error family: codes, retryable by code unless said, and wire errors round-trip", () => {
  assert.equal(new ToolfleetError("TIMEOUT", "x").retryable, true);
  assert.equal(new ToolfleetError("CONFIG_INVALID", "x").retryable, false);
  assert.equal(new ToolfleetError("CONFIG_INVALID", "x", { retryable: true }).retryable, true);
  const wire = wireError("CATALOG_STALE", "reload");
  assert.deepEqual(wire, { code: "CATALOG_STALE", message: "reload", retryable: true });
  const back = ToolfleetError.fromWire({ code: "UNAUTHENTICATED", message: "no session", retryable: false });
  assert.ok(back instanceof ToolfleetError && back instanceof Error);
  assert.deepEqual([back.code, back.message, back.retryable, back.name], ["UNAUTHENTICATED", "no session", false, "ToolfleetError"]);
  assert.ok(isToolfleetError(back, "UNAUTHENTICATED", "EXPIRED"));
  assert.ok(!isToolfleetError(back, "EXPIRED"));
  assert.ok(!isToolfleetError(new Error("plain")));
});
