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

test("metrics: a sampled family that cannot be read is left out of that scrape and reported, and the rest is scraped", async () => {
  const failed: [string, string][] = [];
  const m = new FleetMetrics({ service: "tools", worker: "w1" }, (name, err) => failed.push([name, err instanceof Error ? err.message : String(err)]));
  m.sampled("gauge", "toolfleet_test_broken", "A sampler whose read fails.", () => Promise.reject(new Error("Redis did not answer")));
  m.sampled("gauge", "toolfleet_test_fine", "A sampler that reads.", () => [[{ stream: "s" }, 7]]);
  const text = await m.text();
  assert.match(text, /^toolfleet_test_fine\{stream="s",service="tools",worker="w1"\} 7$/m);
  assert.doesNotMatch(text, /^toolfleet_test_broken\{/m);
  assert.deepEqual(failed, [["toolfleet_test_broken", "Redis did not answer"]]);
});
