import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ToolContext, createCaller, defineConfig, staticConfig } from "../../src/index.js";
import { closeRedis } from "../../src/redis/client.js";
import { wireContextOf } from "../../src/tool-exec/client.js";
import { RecordingLogger, eventually } from "../support/helpers.js";
import { artifactsDir, launchChromium } from "../support/chromium.js";
import { CLI, OwnRedis, REDIS_URL, connect, dropNamespace, exited, startToolsProcess, testKeys, type CliChild } from "../support/redis-helpers.js";
import { Dashboard } from "../../src/fleet/dashboard.js";

const FIXTURE = fileURLToPath(new URL("../support/fixtures/pool-tools.js", import.meta.url));
const TOKEN = "dashboard-test-token-0123456789";

/** Signs in to the dashboard at `url` with the admin token; its session cookie, for the API. */
async function signIn(url: string): Promise<string> {
  const signedIn = await fetch(`${url}login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: `token=${TOKEN}`,
    redirect: "manual",
  });
  return (signedIn.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
}

test(
  "the dashboard in headless Chromium: two workers in two pools, the call rate after a burst, and a dead letter requeued and answered",
  { timeout: 120_000 },
  async (t) => {
    // First: a browser that cannot start fails the test before anything else is running.
    const browser = await launchChromium();
    const redis = await connect();
    const k = testKeys();
    const env = { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL };
    const workers: CliChild[] = [];
    const dashboard = spawn(process.execPath, [CLI, "dashboard", "--port", "0"], {
      env: { ...process.env, ...env, TOOLFLEET_ADMIN_TOKEN: TOKEN, TOOLFLEET_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    dashboard.stdout.on("data", (d: Buffer) => (output += d.toString()));
    dashboard.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const caller = createCaller({
      config: staticConfig(defineConfig({ redisUrl: REDIS_URL, namespace: k.namespace, toolsServiceMode: "remote", toolsLocalFallback: false })),
      logger: new RecordingLogger(),
    });
    const shots = artifactsDir("toolfleet-dashboard-");
    try {
      const url = await eventually(() => /^dashboard at (http:\S+) /m.exec(output)?.[1] ?? assert.fail(`no URL yet: ${output}`), 15_000, 50);
      workers.push(
        await startToolsProcess(["--pool", "gpu", "--tools", FIXTURE, "--worker-id", "dash-gpu"], { ...env, FIXTURE_TOOL_SET: "gpu" }),
        await startToolsProcess(["--pool", "cpu", "--tools", FIXTURE, "--worker-id", "dash-cpu"], { ...env, FIXTURE_TOOL_SET: "cpu" }),
      );
      await caller.start();
      await eventually(() => assert.ok(caller.registry.toolNames().has("gpu_render") && caller.registry.toolNames().has("cpu_hash")), 10_000, 50);

      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const problems: string[] = [];
      page.on("pageerror", (err) => problems.push(err.message));
      // Signed out: the sign-in form, and a wrong token is refused.
      await page.goto(url);
      await page.fill("input[name=token]", "not-the-token-at-all");
      await page.click("button[type=submit]");
      await page.waitForSelector("text=Wrong token.");
      await page.fill("input[name=token]", TOKEN);
      await page.click("button[type=submit]");
      // Two workers, each in its pool.
      await page.waitForSelector("#workers td:text('dash-gpu')");
      const workerRows = await page.$$eval("#workers tr", (rows) => rows.map((r) => (r as unknown as { innerText: string }).innerText));
      assert.ok(
        workerRows.some((r) => /dash-gpu\tgpu\t\d+\.\d+\.\d+\talive/.test(r)),
        workerRows.join("\n"),
      );
      assert.ok(
        workerRows.some((r) => /dash-cpu\tcpu\t\d+\.\d+\.\d+\talive/.test(r)),
        workerRows.join("\n"),
      );

      // A burst of calls: the page shows a call rate for each tool.
      const burst = async (): Promise<void> => {
        for (let i = 0; i < 10; i++)
          await Promise.all([
            caller.registry.execute("gpu_render", { scene: `s${i}` }, { userId: "u" }),
            caller.registry.execute("cpu_hash", { text: `t${i}` }, { userId: "u" }),
          ]);
      };
      await burst();
      await eventually(
        async () => {
          await burst();
          const rate = await page.$eval("tr[data-tool=cpu_hash] td.rate", (td) => Number((td as unknown as { textContent: string }).textContent));
          assert.ok(rate > 0, `cpu_hash at ${rate} calls/s`);
        },
        20_000,
        500,
      );
      await page.screenshot({ path: join(shots, "dashboard-rates.png"), fullPage: true });

      // A dead letter: a real request, parked where no worker reads it, then dead-lettered as a worker would.
      const client = caller.registry.toolsClient!;
      const ctx = new ToolContext({ userId: "u" });
      const parked = k.poolStream("parked");
      const answered = client.call({
        toolName: "cpu_hash",
        toolArgs: { text: "from the dead" },
        userId: "u",
        schemaHash: "",
        ctx: wireContextOf(ctx),
        identity: ctx.identity(),
        timeoutMs: 60_000,
        stream: parked,
      });
      const [entry] = await eventually(async () => (await redis.xRange(parked, "-", "+")) ?? assert.fail("not parked yet"), 5000, 20);
      assert.ok(entry);
      const deadFields: Record<string, string> = {
        stream: k.poolStream("cpu"),
        entry_id: entry.id,
        reason: "DEAD_LETTER: delivered 6 times",
        deliveries: "6",
        worker: "dash-cpu",
        at: String(Date.now()),
      };
      for (const [name, value] of Object.entries(entry.message)) deadFields[`field.${name}`] = String(value);
      const deadId = await redis.xAdd(k.deadLetter(k.poolStream("cpu")), "*", deadFields);
      await page.waitForSelector(`tr[data-dead="${deadId}"]`, { timeout: 10_000 });
      await page.screenshot({ path: join(shots, "dashboard-dead-letter.png"), fullPage: true });
      await page.click(`tr[data-dead="${deadId}"] button[data-a=requeue]`);
      // Requeued onto the CPU pool's stream: its worker answers the caller that was waiting all along.
      const reply = await answered;
      assert.equal(reply.status, "ok");
      assert.match(reply.result, /^cpu:\d+ hashed from the dead$/);
      await page.waitForSelector(`tr[data-dead="${deadId}"]`, { state: "detached", timeout: 10_000 });
      assert.equal(await redis.xLen(k.deadLetter(k.poolStream("cpu"))), 0);
      await eventually(() => assert.match(output, new RegExp(`"audit":"dashboard","action":"requeue".*"id":"${deadId}"`)), 5000, 50);
      assert.deepEqual(problems, []);
      t.diagnostic(`screenshots: ${shots}`);

      // The API refuses without the cookie, and an action without the admin header.
      assert.equal((await fetch(`${url}api/state`)).status, 401);
      const cookie = await signIn(url);
      const action = (body: string, headers: Record<string, string> = { "x-toolfleet-admin": "1" }): Promise<Response> =>
        fetch(`${url}api/dead/requeue`, { method: "POST", headers: { cookie, "content-type": "application/json", ...headers }, body });
      assert.equal((await action(JSON.stringify({ deadStream: "x", id: "1-0" }), {})).status, 403);
      // A body that is not the action's JSON is the client's mistake (400, saying so), not the dashboard's (500).
      for (const bad of ["not json", "null", "[1]"]) {
        const res = await action(bad);
        assert.equal(res.status, 400, bad);
        assert.match(((await res.json()) as { error: string }).error, /^expected \{"deadStream": …, "id": …\}: /);
      }
    } finally {
      await browser.close();
      await caller.stop();
      dashboard.kill("SIGTERM");
      await exited(dashboard);
      for (const w of workers) w.kill("SIGTERM");
      await Promise.all(workers.map((w) => exited(w)));
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  },
);

test(
  "with Redis stalled, the dashboard's state read fails within its bound with a 500 that says so, not a request left hanging",
  { timeout: 60_000 },
  async () => {
    const own = await OwnRedis.start();
    const logger = new RecordingLogger();
    const redis = await connect(own.url, logger);
    const dashboard = new Dashboard({ redis, keys: testKeys(), logger, adminToken: TOKEN, port: 0, redisWaitMs: 1000 });
    try {
      await dashboard.start();
      const cookie = await signIn(dashboard.url ?? "");
      assert.equal((await fetch(`${dashboard.url}api/state`, { headers: { cookie } })).status, 200);
      own.pause();
      const started = Date.now();
      const res = await fetch(`${dashboard.url}api/state`, { headers: { cookie }, signal: AbortSignal.timeout(30_000) });
      const tookMs = Date.now() - started;
      assert.equal(res.status, 500);
      assert.match(await res.text(), /reading the fleet's state from Redis did not finish within 1000 ms/);
      assert.ok(tookMs < 5000, `answered after ${tookMs} ms`);
    } finally {
      own.resume();
      await dashboard.stop();
      await closeRedis(redis);
      await own.stop();
    }
  },
);
