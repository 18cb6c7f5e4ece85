// npm run bench:stages — where toolfleet's own work on a sequential call goes:
// the time of each step between a process's read and its next write, in the
// caller and in the tools worker. It copies the build, writes marks into the
// copy (the shipped code carries none), runs sequential calls of `echo` in a
// chat turn with bench/stages-hook.js loaded into both processes, and prints
// the median of each step. Times are of a sequential call's cold caches, so
// they are several times what a microbenchmark of the same code reports.
//
//   CALLS=4000
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const dist = dirname(dirname(fileURLToPath(import.meta.url)));
const root = dirname(dist);

/** Where the marks go: a line of the compiled file, and whether the mark goes before or after it. */
const MARKS: { file: string; anchor: string; label: string; after?: boolean }[] = [
  { file: "src/redis/blocking-reader.js", anchor: "this.lastProgressAt = Date.now();\n                backoff = 0;", label: "entries parsed" },
  // worker
  { file: "src/redis/stream-worker.js", anchor: "    process(raw, deliveries) {", label: "handling", after: true },
  { file: "src/tool-exec/codec.js", anchor: "const checked = checkRequestBody(raw);", label: "request JSON parsed" },
  { file: "src/tool-exec/codec.js", anchor: "const checked = checkRequestBody(raw);", label: "request validated", after: true },
  { file: "src/tool-exec/server.js", anchor: "// A reply stream outside our namespace would let a request write anywhere.", label: "request decoded" },
  { file: "src/tool-exec/server.js", anchor: "const identity = session.ok ? session.identity : null;", label: "identity known" },
  // The encode in the try block (the one in the catch makes an error reply), and the first line after both.
  {
    file: "src/tool-exec/server.js",
    anchor: "fields = encodeReply(reply, this.options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES);\n            }\n            catch (err) {",
    label: "tool ran",
  },
  { file: "src/tool-exec/server.js", anchor: 'const done = { kind: "ack", reply: { stream: req.replyTo, fields } };', label: "reply encoded" },
  // The handler's answer reaches the commit (src/redis/entry-commit.ts) in a .then: its first line.
  { file: "src/redis/entry-commit.js", anchor: "    commit(id, disposition, entry) {", label: "handled", after: true },
  // caller
  { file: "src/redis/rpc-client.js", anchor: "deliver(entries) {", label: "delivering", after: true },
  { file: "src/redis/rpc-client.js", anchor: "waiting.settle(decoded.value);", label: "reply decoded" },
  { file: "src/redis/rpc-client.js", anchor: "waiting.settle(decoded.value);", label: "call settled", after: true },
  { file: "bench/toolfleet.js", anchor: "const out = await fleet.registry.execute(", label: "next call" },
  { file: "src/tool-exec/client.js", anchor: "const correlationId = this.rpc.nextCorrelationId();", label: "request building" },
  { file: "src/tool-exec/client.js", anchor: "const fields = encodeRequest(", label: "request built" },
  { file: "src/tool-exec/client.js", anchor: "const fields = encodeRequest(", label: "request encoded", after: true },
];

/** Writes the marks into a copy of the build; throws when an anchor is gone (the code changed: update MARKS). */
export function instrument(copy: string): void {
  for (const { file, anchor, label, after } of MARKS) {
    const path = join(copy, file);
    const text = readFileSync(path, "utf8");
    const at = text.indexOf(anchor);
    if (at < 0 || text.indexOf(anchor, at + 1) >= 0)
      throw new Error(`bench:stages: '${anchor}' is not in ${file} exactly once; update MARKS in bench/stages.ts`);
    const lineStart = text.lastIndexOf("\n", at) + 1;
    const lineEnd = text.indexOf("\n", at + anchor.length);
    const mark = `globalThis.__stage?.(${JSON.stringify(label)});\n`;
    writeFileSync(
      path,
      after ? `${text.slice(0, lineEnd + 1)}${mark}${text.slice(lineEnd + 1)}` : `${text.slice(0, lineStart)}${mark}${text.slice(lineStart)}`,
    );
  }
}

/** A copy of the build with the marks in it, next to a link to the project's node_modules. */
export function instrumentedCopy(): string {
  const copy = mkdtempSync(join(tmpdir(), "toolfleet-stages-"));
  cpSync(dist, copy, { recursive: true, filter: (path) => !path.startsWith(join(dist, "test")) });
  writeFileSync(join(copy, "package.json"), JSON.stringify({ type: "module" }));
  symlinkSync(join(root, "node_modules"), join(copy, "node_modules"));
  instrument(copy);
  return copy;
}

export interface StageReport {
  process: string;
  steps: { step: string; medianUs: number; calls: number }[];
}

/** Runs `calls` sequential calls against an instrumented copy; one report per process (caller, worker). */
export async function measureStages(calls: number): Promise<StageReport[]> {
  const copy = instrumentedCopy();
  const out = join(copy, "out");
  mkdirSync(out);
  try {
    const hook = pathToFileURL(join(copy, "bench", "stages-hook.js")).href;
    const child = spawn(process.execPath, ["--import", hook, join(copy, "bench", "stages.js"), "--drive", String(calls)], {
      env: { ...process.env, STAGES_OUT: out, STAGES_CALLS: String(calls), BENCH_WORKER_NODE_ARGS: `--import ${hook}` },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    if (code !== 0) throw new Error(`bench:stages: the measuring process exited with ${code}`);
    return readdirSync(out).map((f) => JSON.parse(readFileSync(join(out, f), "utf8")) as StageReport);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/**
 * In the instrumented copy: start a fleet, make as many sequential calls to
 * warm it up as are then measured, stop (the hooks write on exit, from the
 * last `calls`). No warm-up at 64 in flight: batched reads would mix the marks.
 */
async function drive(calls: number): Promise<void> {
  const { echoSubject, startFleet } = await import("./toolfleet.js");
  const subject = echoSubject(await startFleet(1), "turn");
  try {
    for (let i = 0; i < 2 * calls; i++) await subject.call();
  } finally {
    await subject.close();
  }
}

if (process.argv[2] === "--drive") {
  await drive(Number(process.argv[3]));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const calls = Number(process.env.CALLS ?? 4000);
  const reports = await measureStages(calls);
  const role = (r: StageReport): string => (r.process.endsWith("stages.js") ? "caller" : "worker");
  console.log(
    JSON.stringify(
      {
        command: "npm run bench:stages",
        date: new Date().toISOString(),
        machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, node: process.version },
        calls,
        ...Object.fromEntries(reports.map((r) => [role(r), r.steps])),
      },
      null,
      2,
    ),
  );
}
