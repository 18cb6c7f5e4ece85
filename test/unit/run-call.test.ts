// runRequest() (src/tool-exec/run-call.ts) is a .then chain, not an async function.
import assert from "node:assert/strict";
import { test } from "node:test";
import { defineConfig, staticConfig } from "../../src/index.js";
import type { CallOutcome } from "../../src/core/outcome.js";
import type { ToolRegistry } from "../../src/core/registry.js";
import { RunningCalls } from "../../src/redis/control.js";
import type { RedisClient } from "../../src/redis/client.js";
import { runRequest } from "../../src/tool-exec/run-call.js";
import { RecordingLogger } from "../support/helpers.js";
import { identity, sampleRequest } from "../support/wire-samples.js";

test("a registry whose execute() answers with a plain outcome (not a promise) still gets its reply, and the call's cancel tracking ends", async () => {
  // A bare .then on a plain value would throw outside the try, and the call's RunningCalls entry (and a
  // progress sender) would never be ended.
  const calls = new RunningCalls();
  const registry = {
    isAllowed: () => true,
    get: () => undefined,
    execute: (): CallOutcome => ({ kind: "ok", text: "plain", route: "local", durationMs: 1 }),
  } as unknown as ToolRegistry;
  const req = sampleRequest({ deadlineMs: Date.now() + 5000 });
  const deps = {
    registry,
    config: staticConfig(defineConfig({})),
    logger: new RecordingLogger(),
    redis: null as unknown as RedisClient,
    workerId: "w1",
    adapter: null,
    calls,
    secret: null,
    maxLen: 1000,
  };
  let reply;
  try {
    reply = await runRequest(deps, req, identity("alice"), new AbortController().signal);
  } finally {
    // Nothing left marked running: a cancel after the call would otherwise abort nothing and be forgotten.
    assert.equal(calls.cancel(req.idemKey, "late"), false, "the call's cancel tracking was not ended");
  }
  assert.equal(reply.status, "ok");
  assert.equal(reply.result, "plain");
});
