import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ToolContext } from "../../src/index.js";
import { wireContextOf, type ToolCall } from "../../src/tool-exec/client.js";
import { connectRedis, type RedisNode } from "../../src/redis/client.js";
import { keys, type Keys } from "../../src/redis/keys.js";
import { ensureGroup } from "../../src/redis/streams.js";
import { eventually, RecordingLogger } from "./helpers.js";

/** The shared test Redis (present on every machine of this project; npm test's set-up, scripts/test-setup.ts, starts it). */
export const REDIS_URL = process.env.TOOLFLEET_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** A namespace of its own for each test, so tests never see each other's keys. */
export function testKeys(): Keys {
  return keys(`tftest-${randomBytes(4).toString("hex")}`);
}

export async function connect(url = REDIS_URL, logger = new RecordingLogger()): Promise<RedisNode> {
  return connectRedis({ url, logger, name: "test" });
}

/** Every key of a namespace (SCAN, not KEYS). */
export async function namespaceKeys(redis: RedisNode, k: Keys): Promise<string[]> {
  const found: string[] = [];
  // Keys kept in another key's cluster slot begin with `{` (src/redis/keys.ts).
  for (const pattern of [`${k.namespace}:*`, `{${k.namespace}:*`])
    for await (const batch of redis.scanIterator({ MATCH: pattern, COUNT: 1000 })) found.push(...batch);
  return found.sort();
}

export async function dropNamespace(redis: RedisNode, k: Keys): Promise<void> {
  const all = await namespaceKeys(redis, k);
  for (let i = 0; i < all.length; i += 500) await redis.del(all.slice(i, i + 500));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** A redis-server of the test's own, on a free port, that the test may kill and restart. */
export class OwnRedis {
  private process: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), "toolfleet-redis-"));
  private constructor(readonly port: number) {}

  /** On `port` when given (one a test has pointed something at before Redis is there), else a free one. */
  static async start(port?: number): Promise<OwnRedis> {
    const own = new OwnRedis(port ?? (await freePort()));
    await own.up();
    return own;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    this.process = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir], {
      stdio: "ignore",
    });
    const probe = await eventually(async () => connect(this.url), 5000, 20);
    await probe.close();
  }

  /** SIGKILL: Redis vanishes mid-command, as in a crash. */
  async kill(): Promise<void> {
    const proc = this.process;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  }

  /** SIGSTOP: Redis keeps every connection open and answers nothing, as a stalled server does. */
  pause(): void {
    this.process?.kill("SIGSTOP");
  }

  resume(): void {
    this.process?.kill("SIGCONT");
  }

  async stop(): Promise<void> {
    // SIGKILL ends a paused process too.
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export type CliChild = ChildProcess & { output: () => string };

/** A `toolfleet` child process; resolves with `ready`'s value once `ready` finds it in the output. */
async function spawnCli<T>(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: (output: string) => T | undefined,
  timeoutMs: number,
): Promise<{ child: CliChild; value: T }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, TOOLFLEET_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const value = await eventually(
    () => {
      if (child.exitCode !== null) throw new Error(`toolfleet ${args[0] ?? ""} exited early (${child.exitCode}): ${output}`);
      const found = ready(output);
      if (found === undefined) throw new Error("not ready yet");
      return found;
    },
    timeoutMs,
    25,
  );
  return { child: Object.assign(child, { output: () => output }), value };
}

/** A `toolfleet tools` (or `gateway`, or `inference`) child process; resolves once it says it is ready. */
export async function startToolsProcess(args: string[], env: NodeJS.ProcessEnv = {}, kind: "tools" | "gateway" | "inference" = "tools"): Promise<CliChild> {
  return (await spawnCli([kind, ...args], env, (out) => (out.includes(" ready: ") ? true : undefined), 15_000)).child;
}

/** A `toolfleet mcp` child process over HTTP; resolves with it and its endpoint's URL once it says it is ready. */
export async function startMcpProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliChild & { url: string }> {
  const { child, value } = await spawnCli(["mcp", ...args], env, (out) => / ready: .* at (http:\/\/\S+\/mcp) /.exec(out)?.[1], 15_000);
  return Object.assign(child, { url: value });
}

/**
 * `toolfleet up` on a free port; resolves with the process and its chat URL (what `chatLine` finds on the
 * `  chat: ` line) once the fleet is ready.
 */
export async function startFleet(args: string[], env: NodeJS.ProcessEnv = {}, chatLine = /^ {2}chat: (\S+)$/m): Promise<CliChild & { url: string }> {
  const { child, value } = await spawnCli(["up", "--port", "0", ...args], env, (out) => chatLine.exec(out)?.[1], 45_000);
  return Object.assign(child, { url: value });
}

/** The exit code once the process has ended (null when a signal ended it). */
export async function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/**
 * A worker that is alive by every sign a caller reads (a consumer of `stream`'s group with a
 * heartbeat) but never takes anything: requests to it wait out their timeouts, as with a worker
 * that is stuck or busy. For tests of what happens after a request was published and not answered.
 */
export async function aliveButIdleWorker(redis: RedisNode, k: Keys, stream: string, service: string, workerId: string): Promise<void> {
  await ensureGroup(redis, stream, k.group(stream));
  await redis.sendCommand(["XGROUP", "CREATECONSUMER", stream, k.group(stream), workerId]);
  await redis.set(k.heartbeat(service, workerId), JSON.stringify({ service, workerId }), { expiration: { type: "PX", value: 60_000 } });
}

/** A remote `echo` call for user `u`, built from a context the way the registry builds one. */
export function echoCall(text: string, timeoutMs: number): ToolCall {
  const ctx = new ToolContext({ userId: "u" });
  return { toolName: "echo", toolArgs: { text }, userId: "u", schemaHash: "", ctx: wireContextOf(ctx), identity: ctx.identity(), timeoutMs };
}
