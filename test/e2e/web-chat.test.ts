import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { chromium } from "playwright-core";
import { closeRedis } from "../../src/redis/client.js";
import { REDIS_URL, connect, dropNamespace, exited, startFleet, testKeys } from "../support/redis-helpers.js";

/** The parts of an <img> element the test reads (no DOM types in this project). */
interface Img {
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
}

// Debian's chromium package; npm test installs it when run as root (scripts/test-setup.ts).
const CHROMIUM = process.env.TOOLFLEET_CHROMIUM ?? "/usr/bin/chromium";

test("the web chat page in headless Chromium: send a message, see the answer, an image and a reaction", { timeout: 120_000 }, async (t) => {
  // Fails rather than skips: a green npm test means the page was driven in a browser (the README's Development section).
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: as root, run apt-get update && apt-get install -y chromium fonts-noto-color-emoji (npm test does it when run as root), or set TOOLFLEET_CHROMIUM to a Chromium binary`,
  );
  const k = testKeys();
  const fleet = await startFleet(["--tools-workers", "1"], { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_LLM_API_KEY: "" });
  const shots = mkdtempSync(join(tmpdir(), "toolfleet-chat-"));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Flags for a root sandbox with no outside network: otherwise Chromium retries blocked hosts at every start.
    // Playwright gives it a fresh, empty profile of its own.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const redis = await connect();
  try {
    const page = await browser.newPage();
    await page.goto(fleet.url);
    await page.getByText(/you are web-/).waitFor({ timeout: 10_000 });

    await page.getByTestId("input").fill('/send_image {"width":24,"height":16}; /discord_react {"emoji":"👍"}');
    await page.getByTestId("send").click();
    const answer = page.getByTestId("answer").filter({ hasText: "send_image → Sent gradient.png (24x16" });
    await answer.waitFor({ timeout: 20_000 });
    assert.match((await answer.textContent()) ?? "", /discord_react → Reacted with 👍 on web\./);
    // The image arrived and the browser decoded it: its natural size is the one asked for.
    const image = answer.locator("img[data-testid=image]");
    await page.waitForFunction((img) => (img as Img).complete && (img as Img).naturalWidth > 0, await image.elementHandle(), { timeout: 10_000 });
    assert.deepEqual(await image.evaluate((img) => [(img as Img).naturalWidth, (img as Img).naturalHeight]), [24, 16]);
    // The reaction, done by the gateway-pinned tool on the gateway's live adapter, sits on the message that asked for it.
    assert.equal(await page.locator(".user[data-id] [data-testid=reaction]").textContent({ timeout: 10_000 }), "👍");

    await page.getByTestId("input").fill("hello there");
    await page.getByTestId("input").press("Enter");
    await page.getByTestId("answer").filter({ hasText: "No LLM is configured" }).waitFor({ timeout: 20_000 });
    // TOOLFLEET_SCREENSHOT=file.png keeps a picture of the page for a person to look at.
    const shot = process.env.TOOLFLEET_SCREENSHOT ?? join(shots, "chat.png");
    await page.screenshot({ path: shot });
    t.diagnostic(`screenshot: ${shot}${process.env.TOOLFLEET_SCREENSHOT ? "" : " (removed after the test)"}`);
  } finally {
    await browser.close();
    rmSync(shots, { recursive: true, force: true });
    fleet.kill("SIGTERM");
    await exited(fleet);
    await dropNamespace(redis, k);
    await closeRedis(redis);
  }
});
