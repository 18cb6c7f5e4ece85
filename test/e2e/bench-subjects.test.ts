// The benchmark's subjects against the real Redis: each must make real calls
// and leave nothing behind. No timing is asserted here (speed targets live in
// `npm run bench`); this only keeps the benchmark runnable.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { startFloor } from "../../bench/floor.js";
import { latencyOf, sequentialTimes, throughput, warmUp } from "../../bench/harness.js";
import { usageOf } from "../../bench/cpu.js";
import { cpuAndMemoryInOwnProcess } from "../../bench/memory.js";
import { measureStages } from "../../bench/stages.js";
import { echoSubject, startFleet } from "../../bench/toolfleet.js";
import { start as startMcpPeer } from "../../bench/peers/mcp.js";
import { connect, REDIS_URL } from "../support/redis-helpers.js";

async function keysMatching(pattern: string): Promise<string[]> {
  const redis = await connect();
  try {
    const found: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: pattern, COUNT: 1000 })) found.push(...batch);
    return found;
  } finally {
    redis.destroy();
  }
}

for (const mode of ["naive", "ordered", "claimed"] as const) {
  test(`the ${mode} floor answers sequential and concurrent calls and deletes its streams`, { timeout: 30_000 }, async () => {
    const floor = await startFloor(REDIS_URL, mode);
    try {
      const latency = latencyOf(await sequentialTimes(floor, 50, 10));
      assert.equal(latency.calls, 50);
      assert.ok(latency.p50Ms > 0 && latency.p50Ms <= latency.p99Ms);
      const load = await throughput(floor, 8, 0.3, 50);
      assert.ok(load.calls > 0, "calls completed under load");
    } finally {
      await floor.close();
    }
    assert.deepEqual(await keysMatching(`floor-${process.pid}-*`), []);
  });
}

test(
  "toolfleet's subjects call echo and echo_once remotely (in a turn and with a new trace each call) and the fleet cleans up",
  { timeout: 60_000 },
  async () => {
    const fleet = await startFleet(1, REDIS_URL);
    const namespace = fleet.keys.namespace;
    try {
      // The subject itself throws unless the call went remote and came back with the same text.
      const turn = echoSubject(fleet, "turn");
      await warmUp(turn, 20, 8, 200);
      assert.equal(latencyOf(await sequentialTimes(turn, 30, 0)).calls, 30);
      // The claimed path: echo_once is not annotated, so the worker claims each call and stores its reply.
      const claimed = echoSubject(fleet, "turn", { tool: "echo_once" });
      assert.equal(latencyOf(await sequentialTimes(claimed, 30, 0)).calls, 30);
      const perCall = echoSubject(fleet, "call");
      assert.ok((await throughput(perCall, 8, 0.3, 50)).calls > 0);
      const heap = await fleet.heapAfterGc[0]?.();
      assert.ok(typeof heap === "number" && heap > 0, "the worker reports its heap after a collection");
    } finally {
      await fleet.close();
    }
    assert.deepEqual([...(await keysMatching(`${namespace}:*`)), ...(await keysMatching(`{${namespace}:*`))], []);
  },
);

test("bench:stages finds every mark's place in the build and reports each step of the caller and the worker", { timeout: 60_000 }, async () => {
  const reports = await measureStages(100);
  assert.equal(reports.length, 2, "one report from the caller, one from the worker");
  for (const report of reports) {
    const steps = report.steps.map((s) => s.step);
    assert.equal(steps.at(-1), "total");
    assert.ok(steps[0]?.startsWith("read → "), steps.join(", "));
    assert.ok(steps.at(-2)?.endsWith(" → XADD"), steps.join(", "));
    // Every mark of that process was passed on the way: the marks sit on the path a call takes.
    assert.ok(steps.length >= 8, steps.join(", "));
    for (const s of report.steps) assert.ok(s.calls >= 50 && s.medianUs >= 0, JSON.stringify(s));
  }
});

test("bench:seq-cpu reads a process's CPU time, writes and wake-ups from /proc", () => {
  const before = usageOf(process.pid);
  // Spins until this process has had 20 ms of CPU by its own count, not for 20 ms of wall time: on a busy
  // machine (tests run two at a time) 20 ms of wall time may give it much less. Bounded: 10 s at most.
  const cpu0 = process.cpuUsage();
  const giveUp = performance.now() + 10_000;
  const used = (): number => {
    const d = process.cpuUsage(cpu0);
    return (d.user + d.system) * 1000;
  };
  while (used() < 20e6 && performance.now() < giveUp);
  const after = usageOf(process.pid);
  assert.ok(used() >= 20e6, `20 ms of CPU not had in 10 s (${used()} ns)`);
  // /proc's schedstat and getrusage count the same CPU time of every thread (a thread that ended meanwhile drops
  // out of /proc: a margin for it).
  assert.ok(after.cpuNs - before.cpuNs >= 18e6, `${after.cpuNs - before.cpuNs} ns read for ${used()} ns of spinning`);
  assert.ok(after.writes >= before.writes && after.wakeups >= before.wakeups);
});

test("the CPU and memory measurement runs in a caller process of its own and reports both processes", { timeout: 90_000 }, async () => {
  // 11k calls instead of 100k: this only checks that it runs and reads real figures.
  const r = await cpuAndMemoryInOwnProcess(11_000);
  assert.ok(r.cpuUsPerCall.caller > 0 && r.cpuUsPerCall.worker > 0);
  for (const m of [r.rssMiB, r.heapUsedMiB]) {
    for (const v of [m.caller10k, m.caller100k, m.worker10k, m.worker100k]) assert.ok(Number.isFinite(v) && v > 0);
  }
});

test("bench:compare refuses, exit 2, without a BASELINE or with one whose dist/ is not built", () => {
  const script = fileURLToPath(new URL("../../bench/compare-builds.js", import.meta.url));
  for (const [baseline, said] of [
    ["", /BASELINE is not set/],
    ["/nonexistent-checkout", /nonexistent-checkout\/dist\/bench\/toolfleet\.js does not exist.*npx tsc -p tsconfig\.json/],
  ] as const) {
    const run = spawnSync(process.execPath, [script], { env: { ...process.env, BASELINE: baseline }, encoding: "utf8", timeout: 10_000 });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, said);
    assert.equal(run.stdout, "");
  }
});

test(
  "bench:mcp's peers: the SDK's own server, the no-work server and the no-work server over the floor each answer the echo call with its text",
  { timeout: 30_000 },
  async () => {
    const names = { sdk: "mcp", null: "mcp-null", "null-floor": "mcp-null-floor" } as const;
    let floorOwner: number | undefined;
    for (const kind of ["sdk", "null", "null-floor"] as const) {
      const peer = await startMcpPeer(kind);
      if (kind === "null-floor") floorOwner = peer.workerPids?.[0];
      try {
        assert.equal(peer.name, names[kind]);
        // The floor's worker is a process of the null server's own, counted with it.
        assert.equal(peer.workerPids?.length, kind === "null-floor" ? 2 : 1, kind);
        const result = (await peer.call()) as { content?: unknown };
        assert.deepEqual(result.content, [{ type: "text", text: "x".repeat(100) }], kind);
      } finally {
        await peer.close();
      }
    }
    // Its floor's keys are named after the null server's process (bench/floor.ts).
    assert.ok(floorOwner !== undefined);
    assert.deepEqual(await keysMatching(`floor-${floorOwner}-*`), [], "the null server's floor deleted its streams");
  },
);
