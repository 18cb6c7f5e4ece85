// What the tests need from the machine, set up before `npm test` (npm's pretest) on this project's kind of
// machine (Debian, Node 20, root): the Redis the tests use, answering; Debian's chromium, which the web chat
// test drives (playwright-core downloads no browser); and the colour emoji font, without which the page's
// emoji render as empty boxes. .ci/run calls `npm test`, so this is the one place for the set-up.
//
//   node dist/scripts/test-setup.js [--redis-only]     (package.json: pretest, pretest:redis, pretest:e2e)
//
// Overrides, so a test can check each decision without touching the machine (test/e2e/test-setup.test.ts):
//   TOOLFLEET_SETUP_DRY_RUN=1        print the commands instead of running them
//   TOOLFLEET_SETUP_UID=<n>          decide as this user id (0 is root) instead of the real one
//   TOOLFLEET_SETUP_FS_ROOT=<dir>    look for installed files (chromium, the font) under <dir> instead of /
// and, as the tests themselves read them: TOOLFLEET_TEST_REDIS_URL, TOOLFLEET_CHROMIUM.
import { spawnSync } from "node:child_process";
import { accessSync, constants, mkdirSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

const PACKAGES = { chromium: "chromium", font: "fonts-noto-color-emoji", redis: "redis-server" };
const FONT_FILE = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"; // what Debian's fonts-noto-color-emoji installs
const CHROMIUM_FILE = "/usr/bin/chromium"; // what Debian's chromium installs, and test/e2e/web-chat.test.ts's default

const env = process.env;
const dryRun = env.TOOLFLEET_SETUP_DRY_RUN === "1";
const uid = env.TOOLFLEET_SETUP_UID !== undefined && env.TOOLFLEET_SETUP_UID !== "" ? Number(env.TOOLFLEET_SETUP_UID) : process.getuid?.();
const isRoot = uid === 0;
const fsRoot = env.TOOLFLEET_SETUP_FS_ROOT ?? "";
const redisOnly = process.argv.includes("--redis-only");
const unknown = process.argv.slice(2).filter((a) => a !== "--redis-only");
if (unknown.length > 0) fail(`unknown argument ${unknown.join(" ")} (usage: node dist/scripts/test-setup.js [--redis-only])`);
if (uid !== undefined && !Number.isInteger(uid)) fail(`TOOLFLEET_SETUP_UID must be a user id, got '${env.TOOLFLEET_SETUP_UID}'`);

const say = (line: string): void => console.log(`test setup: ${line}`);
function fail(line: string): never {
  console.error(`test setup: ${line}`);
  process.exit(1);
}

const executable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};
const present = (path: string): boolean => {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};
const onPath = (name: string): boolean => (env.PATH ?? "").split(delimiter).some((dir) => dir !== "" && executable(join(dir, name)));

/** Runs a command quietly; its output is shown only when it fails. In a dry run, prints it instead. */
function run(command: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): void {
  if (dryRun) {
    say(`would run: ${[command, ...args].map((a) => (a === "" ? '""' : a)).join(" ")}`);
    return;
  }
  const result = spawnSync(command, args, { env: { ...env, ...extraEnv }, encoding: "utf8" });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n").slice(-20).join("\n");
    fail(`${command} ${args.join(" ")} failed (${result.error?.message ?? `exit ${result.status}`})${output ? `:\n${output}` : ""}`);
  }
}

/** Whether something answers PING like a Redis (a +PONG, or an error such as NOAUTH: it is there). */
function redisAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data: Buffer) => done(/^[+-]/.test(data.toString("latin1"))));
  });
}

async function main(): Promise<void> {
  // ── what is missing ────────────────────────────────────────────────────
  const redisUrl = new URL(env.TOOLFLEET_TEST_REDIS_URL || "redis://127.0.0.1:6379");
  const host = redisUrl.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
  const port = Number(redisUrl.port || 6379);
  const local = ["127.0.0.1", "localhost", "::1"].includes(host);
  const where = `${host}:${port}`;
  const tls = redisUrl.protocol === "rediss:";
  const redisUp = tls || (await redisAnswers(host, port));
  const needRedisServer = !redisUp && local && !onPath("redis-server");

  const ownChromium = env.TOOLFLEET_CHROMIUM;
  const chromium = ownChromium || join(fsRoot, CHROMIUM_FILE);
  const needChromium = !redisOnly && !ownChromium && !executable(chromium);
  const needFont = !redisOnly && !present(join(fsRoot, FONT_FILE));

  const missing = [needChromium && PACKAGES.chromium, needFont && PACKAGES.font, needRedisServer && PACKAGES.redis].filter((p) => p !== false);

  // ── install what is missing: as root, Debian's packages; otherwise say exactly what to install ──
  if (missing.length > 0 && isRoot && onPath("apt-get")) {
    say(`installing Debian's packages ${missing.join(" ")} (apt-get update, then apt-get install; a minute or two)`);
    const quiet = { DEBIAN_FRONTEND: "noninteractive" };
    run("apt-get", ["update", "-qq"], quiet);
    run("apt-get", ["install", "-y", "-qq", ...missing], quiet);
    if (!dryRun) say(`installed ${missing.join(", ")}`);
  } else if (missing.length > 0) {
    const fix = `apt-get update && apt-get install -y ${missing.join(" ")}`;
    const why = isRoot ? "apt-get is not on PATH" : "installing needs root";
    if (needRedisServer) fail(`Redis is not answering on ${where} and redis-server is not installed (${why}). As root, run: ${fix}`);
    if (needChromium)
      say(
        `NOT READY: no Chromium at ${chromium} (${why}), so the web chat test (test/e2e/web-chat.test.ts) will FAIL. ` +
          `As root, run: ${fix} — or set TOOLFLEET_CHROMIUM to a Chromium binary.`,
      );
    else say(`the emoji font is missing (${why}): the web chat page shows emoji as empty boxes. As root, run: ${fix}`);
  }
  if (ownChromium && !redisOnly && !executable(ownChromium))
    say(`NOT READY: TOOLFLEET_CHROMIUM=${ownChromium} is not an executable, so the web chat test (test/e2e/web-chat.test.ts) will FAIL.`);

  // ── Redis ──────────────────────────────────────────────────────────────
  if (tls) say(`Redis at ${where} is TLS (rediss://): not checked here`);
  else if (redisUp) say(`Redis answers on ${where}`);
  else if (!local)
    fail(`Redis is not answering on ${where} (TOOLFLEET_TEST_REDIS_URL), and it is not on this machine to start: start it, or unset TOOLFLEET_TEST_REDIS_URL`);
  else {
    // As .ci/run did: a throwaway Redis (nothing saved) that stays up for later runs and for the fleet.
    const dir = join(tmpdir(), "toolfleet-test-redis");
    const logfile = join(dir, "redis.log");
    say(`Redis is not answering on ${where}; starting redis-server there (log: ${logfile})`);
    if (!dryRun) mkdirSync(dir, { recursive: true });
    run("redis-server", [
      "--daemonize",
      "yes",
      "--bind",
      "127.0.0.1",
      "-::1",
      "--port",
      String(port),
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--logfile",
      logfile,
    ]);
    if (!dryRun) {
      const until = Date.now() + 10_000;
      while (!(await redisAnswers(host, port))) {
        if (Date.now() > until) fail(`Redis did not come up on ${where} within 10 s; see ${logfile}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      say(`Redis answers on ${where}`);
    }
  }
  if (!redisOnly && executable(chromium)) say(`Chromium at ${chromium}; emoji font ${present(join(fsRoot, FONT_FILE)) ? "installed" : "missing"}`);
}

await main();
