import assert from "node:assert/strict";
import { test } from "node:test";
import { FleetMetrics } from "../../src/core/metrics.js";

test("metrics: histograms are cumulative with sum and count; tool names beyond the cap are counted as 'other'", async () => {
  const m = new FleetMetrics({ service: "tools", worker: "w1" });
  m.runEnded("echo", "ok", 0.4, 3, 1); // 0.4 ms run, 3 ms in the queue
  m.runEnded("echo", "ok", 40, 3, 2); // 40 ms; delivered before
  m.runEnded("echo", "error", 4000, 3, 1);
  for (let i = 0; i < 600; i++) m.runEnded(`t${i}`, "ok", 1, 1, 1);
  const text = await m.text();
  const line = (start: string): string | undefined => text.split("\n").find((l) => l.startsWith(start));
  assert.equal(line('toolfleet_runs_total{tool="echo",kind="ok"'), 'toolfleet_runs_total{tool="echo",kind="ok",service="tools",worker="w1"} 2');
  assert.match(line('toolfleet_run_duration_seconds_bucket{tool="echo",le="0.0005"') ?? "", / 1$/);
  assert.match(line('toolfleet_run_duration_seconds_bucket{tool="echo",le="0.05"') ?? "", / 2$/);
  assert.match(line('toolfleet_run_duration_seconds_bucket{tool="echo",le="5"') ?? "", / 3$/);
  assert.match(line('toolfleet_run_duration_seconds_bucket{tool="echo",le="+Inf"') ?? "", / 3$/);
  assert.match(line('toolfleet_run_duration_seconds_count{tool="echo"') ?? "", / 3$/);
  assert.match(line('toolfleet_run_duration_seconds_sum{tool="echo"') ?? "", / 4\.0404$/);
  assert.match(line("toolfleet_redeliveries_total") ?? "", / 1$/);
  // 500 names are kept (echo and 499 others); the other 101 are one series.
  assert.match(line('toolfleet_runs_total{tool="other",kind="ok"') ?? "", / 101$/);
  assert.equal(new Set(text.match(/toolfleet_runs_total\{tool="[^"]+"/g)).size, 501);
});
