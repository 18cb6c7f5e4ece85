// The web chat and protocol v1.1, in headless Chromium against a real fleet (`toolfleet up`): a live
// progress line while a tool runs, the Stop button, and a closed page cancelling the tools of its chats.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { launchChromium } from "../support/chromium.js";
import { closeRedis } from "../../src/redis/client.js";
import { eventually } from "../support/helpers.js";
import { REDIS_URL, connect, dropNamespace, exited, startFleet, testKeys } from "../support/redis-helpers.js";

const FIXTURE = fileURLToPath(new URL("../support/fixtures/v11-tools.js", import.meta.url));

test("web chat: a running tool's progress shows live, Stop cancels it, and closing the page cancels what it left running", { timeout: 150_000 }, async (t) => {
  const k = testKeys();
  const fleet = await startFleet(["--tools-workers", "1", "--tools", FIXTURE], {
    TOOLFLEET_NAMESPACE: k.namespace,
    TOOLFLEET_REDIS_URL: REDIS_URL,
    TOOLFLEET_TEST_REDIS_URL: REDIS_URL,
    TOOLFLEET_LLM_API_KEY: "",
  });
  const browser = await launchChromium();
  const redis = await connect();
  const key = (name: string): string => `${k.namespace}:fx:${name}`;
  const started = (name: string) => eventually(async () => assert.ok(await redis.get(`${key(name)}:started`)), 20_000, 50);
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    const problems: string[] = [];
    page.on("pageerror", (err) => problems.push(err.message));
    await page.goto(fleet.url);
    await page.getByText(/you are web-/).waitFor({ timeout: 10_000 });

    // Progress: the line under the question follows the tool, then the answer replaces it.
    await page.getByTestId("input").fill('/reports {"count":25,"everyMs":200}');
    await page.getByTestId("send").click();
    const line = page.getByTestId("progress");
    // The line, once it matches `pattern` and differs from `not`.
    const shows = (pattern: RegExp, not: string, timeoutMs: number) =>
      eventually(
        async () => {
          const text = (await line.textContent({ timeout: 1000 })) ?? "";
          assert.match(text, pattern);
          assert.notEqual(text, not);
          return text;
        },
        timeoutMs,
        50,
      );
    const first = await shows(/^⏳ reports: \d+% \(\d+\/25\) step \d+$/, "", 20_000);
    const later = await shows(/^⏳ reports: /, first, 10_000);
    const shot = join(mkdtempSync(join(tmpdir(), "toolfleet-progress-")), "chat-progress.png");
    await page.screenshot({ path: shot });
    t.diagnostic(`progress line: "${first}" → "${later}"; screenshot ${shot}`);
    await page.getByTestId("answer").filter({ hasText: "reported 25 times" }).waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId("pending").count(), 0);

    // Stop: the answer ends at once and the tool on the tools worker is cancelled before its side effect.
    await page.getByTestId("input").fill(`/long_side_effect {"ms":30000,"key":"${key("stop")}"}`);
    await page.getByTestId("send").click();
    await started("stop");
    await page.getByTestId("stop").click();
    await page.getByTestId("answer").filter({ hasText: "Stopped (stopped by the user)." }).waitFor({ timeout: 10_000 });
    const stopped = await eventually(async () => {
      const v = await redis.get(`${key("stop")}:aborted`);
      assert.ok(v);
      return v;
    }, 10_000);
    assert.match(stopped, /cancelled by the caller/);

    // A page closed while its chat runs a tool: after the gateway's grace (10 s), the tool is cancelled.
    await page.getByTestId("input").fill(`/long_side_effect {"ms":60000,"key":"${key("left")}"}`);
    await page.getByTestId("send").click();
    await started("left");
    const closedAt = Date.now();
    await page.close();
    const left = await eventually(
      async () => {
        const v = await redis.get(`${key("left")}:aborted`);
        assert.ok(v);
        return v;
      },
      30_000,
      100,
    );
    t.diagnostic(`the closed page's tool was cancelled ${Number(left.split(" ")[0]) - closedAt} ms after the page closed`);
    await sleep(500);
    assert.equal(await redis.get(`${key("stop")}:after`), null);
    assert.equal(await redis.get(`${key("left")}:after`), null);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    fleet.kill("SIGTERM");
    await exited(fleet);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
