import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { REDIS_URL, freePort } from "../support/redis-helpers.js";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../scripts/test-setup.js", import.meta.url));

interface Machine {
  root: boolean;
  chromium: boolean;
  font: boolean;
  /** Programs on PATH (fakes: a dry run never runs them). */
  path: string[];
  redisUrl?: string;
  extra?: NodeJS.ProcessEnv;
  args?: string[];
}

/**
 * scripts/test-setup.ts in a dry run on a made-up machine: a file system root holding (or not) chromium
 * and the emoji font, a PATH of fake programs, a user id. Nothing is installed or started.
 */
async function setup(machine: Machine): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), "toolfleet-setup-"));
  try {
    const fake = (path: string): void => {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, "#!/bin/sh\nexit 99\n");
      chmodSync(path, 0o755);
    };
    if (machine.chromium) fake(join(dir, "fs/usr/bin/chromium"));
    if (machine.font) fake(join(dir, "fs/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"));
    mkdirSync(join(dir, "bin"));
    for (const name of machine.path) fake(join(dir, "bin", name));
    const env: NodeJS.ProcessEnv = {
      PATH: join(dir, "bin"),
      TOOLFLEET_SETUP_DRY_RUN: "1",
      TOOLFLEET_SETUP_UID: machine.root ? "0" : "1000",
      TOOLFLEET_SETUP_FS_ROOT: join(dir, "fs"),
      TOOLFLEET_TEST_REDIS_URL: machine.redisUrl ?? REDIS_URL,
      ...machine.extra,
    };
    try {
      const { stdout, stderr } = await run(process.execPath, [SCRIPT, ...(machine.args ?? [])], { env, timeout: 20_000 });
      return { code: 0, out: stdout + stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, out: e.stdout + e.stderr };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const lines = (out: string, pattern: RegExp): string[] => out.split("\n").filter((l) => pattern.test(l));

test("test setup, as root with nothing installed: one apt-get update, then one quiet install of chromium and the emoji font", async () => {
  const { code, out } = await setup({ root: true, chromium: false, font: false, path: ["apt-get", "redis-server"] });
  assert.equal(code, 0, out);
  assert.match(out, /^test setup: installing Debian's packages chromium fonts-noto-color-emoji \(/m);
  assert.deepEqual(lines(out, /would run: apt-get/), [
    "test setup: would run: apt-get update -qq",
    "test setup: would run: apt-get install -y -qq chromium fonts-noto-color-emoji",
  ]);
  assert.match(out, /Redis answers on 127\.0\.0\.1:6379/);
});

test("test setup, as root with chromium and the font there: installs nothing", async () => {
  const { code, out } = await setup({ root: true, chromium: true, font: true, path: ["apt-get", "redis-server"] });
  assert.equal(code, 0, out);
  assert.deepEqual(lines(out, /would run/), []);
  assert.match(out, /Chromium at .*\/fs\/usr\/bin\/chromium; emoji font installed/);
});

test("test setup, as root with only the font missing: installs only the font", async () => {
  const { out } = await setup({ root: true, chromium: true, font: false, path: ["apt-get", "redis-server"] });
  assert.deepEqual(lines(out, /would run: apt-get install/), ["test setup: would run: apt-get install -y -qq fonts-noto-color-emoji"]);
});

test("test setup, not root with chromium missing: installs nothing, says exactly what to run, and that the web chat test will fail", async () => {
  const { code, out } = await setup({ root: false, chromium: false, font: false, path: ["apt-get", "redis-server"] });
  assert.equal(code, 0, "the rest of the suite still runs");
  assert.deepEqual(lines(out, /would run/), []);
  assert.match(
    out,
    /NOT READY: no Chromium at \S+ \(installing needs root\), so the web chat test \(test\/e2e\/web-chat\.test\.ts\) will FAIL\. As root, run: apt-get update && apt-get install -y chromium fonts-noto-color-emoji/,
  );
});

test("test setup, not root with chromium there but no emoji font: says what to install, nothing fails", async () => {
  const { code, out } = await setup({ root: false, chromium: true, font: false, path: ["redis-server"] });
  assert.equal(code, 0);
  assert.match(out, /the emoji font is missing \(installing needs root\).*As root, run: apt-get update && apt-get install -y fonts-noto-color-emoji/);
  assert.doesNotMatch(out, /NOT READY/);
});

test("test setup with TOOLFLEET_CHROMIUM set: that browser is used and nothing is installed for it; a wrong path is named", async () => {
  const { out } = await setup({
    root: true,
    chromium: false,
    font: true,
    path: ["apt-get", "redis-server"],
    extra: { TOOLFLEET_CHROMIUM: "/nonexistent/chrome" },
  });
  assert.deepEqual(lines(out, /would run/), []);
  assert.match(out, /NOT READY: TOOLFLEET_CHROMIUM=\/nonexistent\/chrome is not an executable/);
});

test("test setup with Redis not answering: starts redis-server on that port, or, with none installed, installs it (root) or stops with what to install", async () => {
  const dead = `redis://127.0.0.1:${await freePort()}`;
  const port = new URL(dead).port;

  const start = await setup({ root: false, chromium: true, font: true, path: ["redis-server"], redisUrl: dead, args: ["--redis-only"] });
  assert.equal(start.code, 0, start.out);
  assert.match(start.out, new RegExp(`Redis is not answering on 127\\.0\\.0\\.1:${port}; starting redis-server there`));
  assert.match(start.out, new RegExp(`would run: redis-server --daemonize yes --bind 127\\.0\\.0\\.1 -::1 --port ${port} --save "" --appendonly no `));

  const install = await setup({ root: true, chromium: true, font: true, path: ["apt-get"], redisUrl: dead });
  assert.deepEqual(lines(install.out, /would run: (apt-get install|redis-server)/).length, 2, install.out);
  assert.match(install.out, /would run: apt-get install -y -qq redis-server/);

  const stop = await setup({ root: false, chromium: true, font: true, path: [], redisUrl: dead });
  assert.equal(stop.code, 1);
  assert.match(
    stop.out,
    /Redis is not answering on 127\.0\.0\.1:\d+ and redis-server is not installed \(installing needs root\)\. As root, run: apt-get update && apt-get install -y redis-server/,
  );

  const remote = await setup({ root: true, chromium: true, font: true, path: ["apt-get", "redis-server"], redisUrl: "redis://192.0.2.1:6379" });
  assert.equal(remote.code, 1);
  assert.match(remote.out, /Redis is not answering on 192\.0\.2\.1:6379 \(TOOLFLEET_TEST_REDIS_URL\), and it is not on this machine to start/);
});

test("test setup --redis-only (npm run test:redis) leaves the browser alone", async () => {
  const { out } = await setup({ root: true, chromium: false, font: false, path: ["apt-get", "redis-server"], args: ["--redis-only"] });
  assert.deepEqual(lines(out, /would run/), []);
  assert.doesNotMatch(out, /Chromium/);
});
