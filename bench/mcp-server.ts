// npm run bench:mcp — one tool call through `toolfleet mcp` (Streamable HTTP) against the MCP SDK's
// own Streamable HTTP server calling the same no-op tool (`echo`, 100 characters), side by side in
// one run. Both are served by other processes on this machine and called by the same MCP SDK client:
//   - mcp-sdk: bench/peers/mcp-server.ts, an McpServer in one process, one stateful session, JSON answers;
//   - toolfleet-mcp: `toolfleet mcp` (stateless per request, any replica could answer) routing the call
//     over Redis to a `toolfleet tools` worker (durable: the call survives a worker crash) — two hops more;
//   - null-server: bench/peers/mcp-null-server.ts, which answers at once and does no MCP work: what the
//     client and HTTP take alone, so each server's own share of a call is its p50 less this one's;
//   - null-server-floor: the same, sending each call through the Redis Streams floor (bench/floor.ts) to a
//     worker process before it answers: the least a server whose tools run on other processes over Redis
//     Streams can take (no MCP work, nothing of toolfleet's).
// Sequential latency in blocks (the order rotated every block; the median of the block p50s, and of
// their ratios), then throughput at 16 and 64 calls in flight, each subject in turn, with the CPU per call
// of the client, the server side (the SDK server; toolfleet's server and its worker) and Redis, from /proc. With BASELINE (a
// checkout of the code before a change, its dist/ built), its `toolfleet mcp` and worker are a third
// subject, measured in the same blocks: the change against its baseline on the same noise.
//
//   BLOCKS=10 CALLS=200 SECONDS=5 npm run bench:mcp
//   BASELINE=/path/to/checkout npm run bench:mcp
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { silentLogger } from "../src/index.js";
import { closeRedis, connectRedis } from "../src/redis/client.js";
import { cpuMeter, redisPid } from "./cpu.js";
import { median, sequentialTimes, throughput, warmUp, type Subject } from "./harness.js";
import { fetchWithOwnSignal, start as startSdkPeer } from "./peers/mcp.js";

const BLOCKS = Number(process.env.BLOCKS ?? 10);
const CALLS = Number(process.env.CALLS ?? 200);
const SECONDS = Number(process.env.SECONDS ?? 5);
const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const BASELINE = process.env.BASELINE ? resolve(process.env.BASELINE) : undefined;
const BASELINE_CLI = BASELINE && resolve(BASELINE, "dist/src/cli/main.js");
if (BASELINE_CLI && !existsSync(BASELINE_CLI)) {
  console.error(`[bench:mcp] ${BASELINE_CLI} does not exist: build the baseline first (cd ${BASELINE} && npx tsc -b tsconfig.json)`);
  process.exit(2);
}
const REDIS = process.env.TOOLFLEET_REDIS_URL ?? "redis://127.0.0.1:6379";

/** SIGTERM, then the exit (a graceful stop); SIGKILL after 10 s. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A `toolfleet` child process, once its output matches `ready` (the match's first group is returned). */
async function startCli(cli: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ChildProcess; found: string }> {
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, TOOLFLEET_LOG_LEVEL: "warn", ...env }, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  const until = Date.now() + 20_000;
  for (;;) {
    const m = ready.exec(out);
    if (m) return { child, found: m[1] ?? "" };
    if (child.exitCode !== null || Date.now() > until) throw new Error(`toolfleet ${args[0] ?? ""} did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `toolfleet mcp` and its tools worker, both of the build whose CLI is `cli`, as the subject `name`. */
async function startToolfleetMcp(cli: string, name: string): Promise<Subject> {
  const env = { TOOLFLEET_NAMESPACE: `bench-mcp-${randomBytes(3).toString("hex")}`, TOOLFLEET_REDIS_URL: REDIS, TOOLFLEET_TOOLS_SERVICE_MODE: "remote" };
  const worker = await startCli(cli, ["tools", "--worker-id", "bench-mcp-tools", "--concurrency", "64"], env, / ready: ()/);
  let server: { child: ChildProcess; found: string } | undefined;
  const client = new Client({ name: "toolfleet-bench", version: "0.1.0" });
  try {
    server = await startCli(cli, ["mcp", "--worker-id", "bench-mcp", "--no-auth", "--port", "0"], env, / ready: .* at (http:\/\/\S+\/mcp) /);
    await client.connect(new StreamableHTTPClientTransport(new URL(server.found), { fetch: fetchWithOwnSignal }));
  } catch (err) {
    if (server) await stop(server.child);
    await stop(worker.child);
    throw err;
  }
  const { child } = server;
  // The catalog reaches the server within a second of the worker's start; calls before that would be "unknown tool".
  for (let i = 0; i < 100 && !(await client.listTools()).tools.some((t) => t.name === "echo"); i++) await new Promise((r) => setTimeout(r, 50));
  const args = { text: "x".repeat(100) };
  return {
    name,
    call: async () => {
      const r = await client.callTool({ name: "echo", arguments: args });
      if (r.isError) throw new Error(`echo failed: ${JSON.stringify(r.content)}`);
    },
    workerPids: [worker.child.pid ?? 0, child.pid ?? 0],
    async close() {
      await client.close();
      await stop(child);
      await stop(worker.child);
      // What the fleet left in its namespace (the request stream, the session key).
      const redis = await connectRedis({ url: REDIS, logger: silentLogger, name: "bench-mcp-cleanup" });
      const left: string[] = [];
      for await (const batch of redis.scanIterator({ MATCH: `${env.TOOLFLEET_NAMESPACE}:*`, COUNT: 1000 })) left.push(...batch);
      if (left.length > 0) await redis.del(left);
      await closeRedis(redis);
    },
  };
}

const subjects: Subject[] = [await startSdkPeer(), await startSdkPeer("null"), await startSdkPeer("null-floor"), await startToolfleetMcp(CLI, "toolfleet-mcp")];
if (BASELINE_CLI) subjects.push(await startToolfleetMcp(BASELINE_CLI, "toolfleet-mcp-baseline"));
try {
  for (const subject of subjects) await warmUp(subject);
  const p50s = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
  // Rotated every block: each subject goes first, second (… last) equally often.
  for (let block = 0; block < BLOCKS; block++)
    for (const subject of [...subjects.slice(block % subjects.length), ...subjects.slice(0, block % subjects.length)])
      p50s.get(subject.name)?.push(median(await sequentialTimes(subject, CALLS, 0)));
  const loads: Record<string, Record<string, unknown>> = {};
  const redis = await redisPid(REDIS);
  for (const inFlight of [16, 64])
    for (const subject of inFlight === 16 ? subjects : [...subjects].reverse()) {
      // CPU per call of the client (this process), the server side (the SDK's server; toolfleet's server and worker) and Redis.
      const meter = cpuMeter({ caller: [process.pid], worker: subject.workerPids ?? [], redis: [redis] });
      const load = await throughput(subject, inFlight, SECONDS, 500, meter.start);
      const cpu = meter.perCall(load.calls);
      (loads[subject.name] ??= {})[`inFlight${inFlight}`] = { ...load, cpuPerCallUs: { client: cpu.caller, server: cpu.worker, redis: cpu.redis } };
    }
  const sdk = p50s.get("mcp")?.slice() ?? [];
  const tf = p50s.get("toolfleet-mcp")?.slice() ?? [];
  const nul = p50s.get("mcp-null")?.slice() ?? [];
  const nulFloor = p50s.get("mcp-null-floor")?.slice() ?? [];
  // A server's own share of a sequential call: its p50 less the no-work server's in the same block (the client's and HTTP's time).
  const share = (p50: readonly number[]): number => Number(median(p50.map((v, i) => v - (nul[i] ?? NaN))).toFixed(3));
  const rate = (name: string, n: number): number => (loads[name]?.[`inFlight${n}`] as { callsPerSecond?: number } | undefined)?.callsPerSecond ?? NaN;
  const base = p50s.get("toolfleet-mcp-baseline")?.slice() ?? [];
  // This build against the baseline's, as toolfleet against the SDK server below (<1 p50, >1 calls/s: this build faster).
  const baseline = BASELINE && {
    checkout: BASELINE,
    sequentialP50Ms: Number(median(base).toFixed(3)),
    p50Ratio: Number(median(tf.map((v, i) => v / (base[i] ?? NaN))).toFixed(3)),
    throughput: loads["toolfleet-mcp-baseline"],
    throughputRatio: {
      inFlight16: Number((rate("toolfleet-mcp", 16) / rate("toolfleet-mcp-baseline", 16)).toFixed(3)),
      inFlight64: Number((rate("toolfleet-mcp", 64) / rate("toolfleet-mcp-baseline", 64)).toFixed(3)),
    },
  };
  console.log(
    JSON.stringify(
      {
        command: `${BASELINE ? `BASELINE=${BASELINE} ` : ""}BLOCKS=${BLOCKS} CALLS=${CALLS} SECONDS=${SECONDS} npm run bench:mcp`,
        date: new Date().toISOString(),
        machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
        blocks: BLOCKS,
        callsPerBlock: CALLS,
        sequentialP50Ms: {
          "mcp-sdk": Number(median(sdk).toFixed(3)),
          "toolfleet-mcp": Number(median(tf).toFixed(3)),
          "null-server": Number(median(nul).toFixed(3)),
          "null-server-floor": Number(median(nulFloor).toFixed(3)),
        },
        // The servers' own share of that p50, over what the client and HTTP take with a server that does no work
        // (null-server-floor's: the floor's round trip, the least a call run on another process over Redis Streams adds).
        serverShareP50Ms: { "mcp-sdk": share(sdk), "toolfleet-mcp": share(tf), "null-server-floor": share(nulFloor) },
        // Per block, the null server over the floor against the SDK server (<1: a server that adds only the floor's
        // round trip to no MCP work answers sooner than the SDK server).
        nullFloorP50Ratio: Number(median(nulFloor.map((v, i) => v / (sdk[i] ?? NaN))).toFixed(3)),
        // Per block, toolfleet's p50 over the SDK server's of the same round; the median of those (<1: toolfleet faster).
        p50Ratio: Number(median(tf.map((v, i) => v / (sdk[i] ?? NaN))).toFixed(3)),
        throughput: {
          "mcp-sdk": loads.mcp,
          "toolfleet-mcp": loads["toolfleet-mcp"],
          "null-server": loads["mcp-null"],
          "null-server-floor": loads["mcp-null-floor"],
        },
        // toolfleet's calls per second over the SDK server's (>1: toolfleet more).
        throughputRatio: {
          inFlight16: Number((rate("toolfleet-mcp", 16) / rate("mcp", 16)).toFixed(3)),
          inFlight64: Number((rate("toolfleet-mcp", 64) / rate("mcp", 64)).toFixed(3)),
        },
        ...(baseline ? { baseline } : {}),
      },
      null,
      2,
    ),
  );
} finally {
  for (const subject of subjects) await subject.close();
}
