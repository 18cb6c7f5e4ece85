import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { GATEWAY_PINNED_TOOLS, INFERENCE_PINNED_TOOLS, ToolfleetError, defineConfig, loadConfig } from "../../src/index.js";
import { assertDisjointPins } from "../../src/protocol.js";

test("the pin sets hold exactly the seed's 28 gateway and 7 inference names", () => {
  assert.equal(GATEWAY_PINNED_TOOLS.size, 28);
  assert.equal(INFERENCE_PINNED_TOOLS.size, 7);
  assert.deepEqual([...INFERENCE_PINNED_TOOLS].sort(), [
    "call_subagent",
    "conjure_egregore",
    "extend_tool_loop",
    "gravimetric_telescope",
    "refine_prompt",
    "start_deep_think_task",
    "start_research_task",
  ]);
  for (const name of ["create_poll", "cross_channel_query", "discord_react", "play_music", "stop_music", "get_voice_states"]) {
    assert.ok(GATEWAY_PINNED_TOOLS.has(name), name);
  }
});

test("the default pin sets are disjoint", () => {
  const overlap = [...GATEWAY_PINNED_TOOLS].filter((n) => INFERENCE_PINNED_TOOLS.has(n));
  assert.deepEqual(overlap, []);
  assert.doesNotThrow(() => assertDisjointPins(GATEWAY_PINNED_TOOLS, INFERENCE_PINNED_TOOLS));
});

test("the pin module imports nothing", () => {
  const source = readFileSync(new URL("../../../src/core/pins.ts", import.meta.url), "utf8");
  assert.doesNotMatch(source, /^\s*import\s/m);
  assert.doesNotMatch(source, /require\(/);
});

test("overlapping pin overrides are refused at startup, naming the overlap", () => {
  assert.throws(
    () => defineConfig({ gatewayPinned: ["play_music", "weather"], inferencePinned: ["weather", "call_subagent"] }),
    (err: unknown) =>
      err instanceof ToolfleetError && err.code === "PIN_SETS_OVERLAP" && /both gateway-pinned and inference-pinned: weather$/.test(err.message),
  );
  assert.throws(() => loadConfig({ env: { TOOLFLEET_INFERENCE_PINNED: "play_music,refine_prompt" } }), /both gateway-pinned and inference-pinned: play_music/);
});

test("config can replace the pin sets", () => {
  const cfg = defineConfig({ gatewayPinned: ["my_voice_tool"], inferencePinned: [] });
  assert.deepEqual([...cfg.gatewayPinned], ["my_voice_tool"]);
  assert.equal(cfg.inferencePinned.size, 0);
});
