import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { eventually } from "../support/helpers.js";
import { freePort } from "../support/redis-helpers.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));

/** pid → parent pid and command line, of every process now (from /proc). */
function processTable(): Map<number, { ppid: number; state: string; cmd: string }> {
  const table = new Map<number, { ppid: number; state: string; cmd: string }>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The fields after the command name, which may itself hold spaces and parentheses.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const [state = "", ppid = "0"] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      table.set(Number(name), { ppid: Number(ppid), state, cmd });
    } catch {
      // gone between readdir and read: not a process of ours any more
      continue;
    }
  }
  return table;
}

function descendants(pid: number): number[] {
  const table = processTable();
  const found: number[] = [];
  const walk = (parent: number): void => {
    for (const [child, p] of table) {
      if (p.ppid !== parent || found.includes(child)) continue;
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

/** A zombie has exited; only its parent has not read its status yet. */
const running = (pid: number): boolean => {
  const p = processTable().get(pid);
  return p !== undefined && p.state !== "Z";
};

// `npm start` is npm → (sh →) node. Ctrl-C in a terminal reaches the whole group, but a process manager or
// a script signals only the process it started: npm. The fleet must stop on that too (package.json's
// start script execs node, so no shell sits between npm and the fleet and swallows the signal).
test("SIGINT to the npm process of `npm start` stops the fleet: every process of it exits", { timeout: 120_000 }, async (t) => {
  // A dead port: `up` runs the fleet in this one process (no Redis), on a free web port.
  const env = { ...process.env, TOOLFLEET_REDIS_URL: `redis://127.0.0.1:${await freePort()}`, TOOLFLEET_LLM_API_KEY: "", TOOLFLEET_LOG_LEVEL: "warn" };
  // --ignore-scripts skips prestart (the build) only: the tests run from the build already made, and a build
  // here would rewrite dist/ under the other test files. The start script itself still runs.
  const npm = spawn("npm", ["start", "--ignore-scripts", "--", "--port", "0"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const pid = npm.pid;
  assert.ok(pid !== undefined, "npm started");
  let output = "";
  npm.stdout.on("data", (d: Buffer) => (output += d.toString()));
  npm.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const npmExit = new Promise<void>((resolve) => npm.once("exit", () => resolve()));
  let pids: number[] = [];
  try {
    await eventually(
      () => {
        if (npm.exitCode !== null) throw new Error(`npm start exited early (${npm.exitCode}): ${output}`);
        assert.match(output, /The fleet keeps running/);
      },
      60_000,
      50,
    );
    pids = [pid, ...descendants(pid)];
    const table = processTable();
    t.diagnostic(`processes: ${pids.map((p) => `${p} ${table.get(p)?.cmd ?? "?"}`).join(" · ")}`);
    assert.ok(
      pids.some((p) => /main\.js up --walkthrough --port 0/.test(table.get(p)?.cmd ?? "")),
      "the fleet's node process is among npm's descendants",
    );

    process.kill(pid, "SIGINT");
    await eventually(() => assert.deepEqual(pids.filter(running), [], `still running after SIGINT to npm: ${output}`), 10_000, 50);
    await npmExit;
    // It stopped the way Ctrl-C stops it, not by being cut off.
    assert.match(output, /\[up\] fleet stopped/);
  } finally {
    // If the test failed part-way, leave nothing behind: the whole group npm leads.
    if (pids.some(running) || npm.exitCode === null) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
});
