import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { artifactsDir, launchChromium } from "../support/chromium.js";
import { closeRedis } from "../../src/redis/client.js";
import { REDIS_URL, connect, dropNamespace, exited, startFleet, testKeys } from "../support/redis-helpers.js";

/** The parts of an <img> element the test reads (no DOM types in this project). */
interface Img {
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
}

test(
  "the web chat page in headless Chromium: answers with their tool calls' routes, an image, a reaction, tied to their questions, and kept across a reload",
  { timeout: 120_000 },
  async (t) => {
    const k = testKeys();
    const fleet = await startFleet(["--tools-workers", "1"], { TOOLFLEET_NAMESPACE: k.namespace, TOOLFLEET_REDIS_URL: REDIS_URL, TOOLFLEET_LLM_API_KEY: "" });
    const shots = artifactsDir();
    const browser = await launchChromium();
    const redis = await connect();
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      // A policy violation, a failed script or a missing icon shows up here.
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(m.text());
      });
      page.on("pageerror", (err) => problems.push(err.message));
      const favicon = page.waitForResponse((r) => r.url().endsWith("/favicon.svg"), { timeout: 10_000 });
      await page.goto(fleet.url);
      await page.getByText(/you are web-/).waitFor({ timeout: 10_000 });
      assert.equal((await favicon).status(), 200);

      await page.getByTestId("input").fill('/send_image {"width":24,"height":16}; /discord_react {"emoji":"👍"}');
      await page.getByTestId("send").click();
      const answer = page.getByTestId("answer").filter({ hasText: "send_image → Sent gradient.png (24x16" });
      await answer.waitFor({ timeout: 20_000 });
      assert.match((await answer.textContent()) ?? "", /discord_react → Reacted with 👍 on web\./);
      // Each call is a line naming its tool and the tier that ran it.
      const lines = answer.getByTestId("tool-call");
      assert.equal(await lines.count(), 2);
      assert.match((await lines.nth(0).locator("summary").textContent()) ?? "", /^✓ send_image remote · tools service [\d.]+ m?s · ok$/);
      assert.match((await lines.nth(1).locator("summary").textContent()) ?? "", /^✓ discord_react gateway [\d.]+ m?s · ok$/);
      // The image arrived and the browser decoded it: its natural size is the one asked for.
      const image = answer.locator("img[data-testid=image]");
      await page.waitForFunction((img) => (img as Img).complete && (img as Img).naturalWidth > 0, await image.elementHandle(), { timeout: 10_000 });
      assert.deepEqual(await image.evaluate((img) => [(img as Img).naturalWidth, (img as Img).naturalHeight]), [24, 16]);
      // The reaction, done by the gateway-pinned tool on the gateway's live adapter, sits on the message that asked for it.
      assert.equal(await page.locator(".user[data-id] [data-testid=reaction]").textContent({ timeout: 10_000 }), "👍");

      // A slow question, then a quick one: the quick answer comes first, and each answer names its question.
      await page.getByTestId("input").fill('/slow_task {"seconds":1,"label":"slow one"}');
      await page.getByTestId("input").press("Enter");
      await page.getByTestId("question").filter({ hasText: "slow one" }).waitFor({ timeout: 10_000 });
      await page.getByTestId("input").fill('/echo {"text":"quick one"}');
      await page.getByTestId("input").press("Enter");
      const quick = page.getByTestId("answer").filter({ hasText: "echo → quick one" });
      await quick.waitFor({ timeout: 20_000 });
      assert.equal(await quick.getByTestId("quote").textContent(), '↩ /echo {"text":"quick one"}');
      const echoLine = quick.getByTestId("tool-call");
      assert.match((await echoLine.locator("summary").textContent()) ?? "", /^✓ echo remote · tools service [\d.]+ m?s · ok$/);
      // A line opens to the call's arguments and result.
      await echoLine.locator("summary").click();
      assert.deepEqual(await echoLine.locator("pre").allTextContents(), ['{\n  "text": "quick one"\n}', "quick one"]);
      const slow = page.getByTestId("answer").filter({ hasText: "slow one finished" });
      await slow.waitFor({ timeout: 20_000 });
      assert.equal(await slow.getByTestId("quote").textContent(), '↩ /slow_task {"seconds":1,"label":"slow one"}');
      assert.equal(await page.getByTestId("pending").count(), 0);

      await page.getByTestId("input").fill("hello there");
      await page.getByTestId("input").press("Enter");
      await page.getByTestId("answer").filter({ hasText: "No LLM is configured" }).waitFor({ timeout: 20_000 });
      // What a reader sees of the conversation: each question, and each answer's quote, call lines and text.
      const conversation = async () => ({
        questions: await page.getByTestId("question").locator(".said").allTextContents(),
        reactions: await page.getByTestId("reaction").allTextContents(),
        answers: await page
          .getByTestId("answer")
          .evaluateAll((all) =>
            all.map((a) =>
              [...(a as unknown as { querySelectorAll(s: string): { textContent: string }[] }).querySelectorAll(".quote, summary, .text")].map(
                (e) => e.textContent,
              ),
            ),
          ),
      });
      const before = await conversation();

      // A reload brings the conversation back from the gateway: the same questions and answers, their tool calls and image.
      await page.reload();
      await page.getByTestId("answer").filter({ hasText: "No LLM is configured" }).waitFor({ timeout: 10_000 });
      assert.equal(await page.getByTestId("question").count(), 4);
      assert.equal(await page.getByTestId("answer").count(), 4);
      const reloaded = page.getByTestId("answer").filter({ hasText: "send_image → Sent gradient.png (24x16" });
      assert.match((await reloaded.getByTestId("tool-call").nth(1).locator("summary").textContent()) ?? "", /^✓ discord_react gateway [\d.]+ m?s · ok$/);
      const again = reloaded.locator("img[data-testid=image]");
      await page.waitForFunction((img) => (img as Img).complete && (img as Img).naturalWidth > 0, await again.elementHandle(), { timeout: 10_000 });
      assert.equal(
        (await page.getByTestId("answer").filter({ hasText: "slow one finished" }).getByTestId("quote").textContent()) ?? "",
        '↩ /slow_task {"seconds":1,"label":"slow one"}',
      );
      assert.deepEqual(await conversation(), before);
      await page.getByTestId("answer").filter({ hasText: "send_image" }).getByTestId("tool-call").first().locator("summary").click();

      const desktop = join(shots, "chat-desktop.png");
      await page.screenshot({ path: desktop });
      // A phone's width: nothing runs off the side, and the input's hint fits its box.
      await page.setViewportSize({ width: 375, height: 740 });
      const fit = await page.evaluate(() => {
        const doc = (globalThis as unknown as { document: { documentElement: { scrollWidth: number }; getElementById(id: string): unknown } }).document;
        const input = doc.getElementById("text") as { placeholder: string; clientWidth: number };
        const style = (globalThis as unknown as { getComputedStyle(e: unknown): Record<string, string> }).getComputedStyle(input);
        const canvas = (doc as unknown as { createElement(t: string): { getContext(c: string): { font: string; measureText(t: string): { width: number } } } })
          .createElement("canvas")
          .getContext("2d");
        canvas.font = `${style.fontSize ?? ""} ${style.fontFamily ?? ""}`;
        const padding = parseFloat(style.paddingLeft ?? "0") + parseFloat(style.paddingRight ?? "0");
        return { page: doc.documentElement.scrollWidth, hint: canvas.measureText(input.placeholder).width, room: input.clientWidth - padding };
      });
      assert.ok(fit.page <= 375, `the page is ${fit.page} px wide at 375`);
      assert.ok(fit.hint <= fit.room, `the placeholder needs ${fit.hint.toFixed(0)} px and has ${fit.room} px`);
      const phone = join(shots, "chat-375.png");
      await page.screenshot({ path: phone });
      // And the end of the conversation, where a long answer wraps.
      await page
        .getByTestId("log")
        .evaluate((log) => ((log as { scrollTop: number; scrollHeight: number }).scrollTop = (log as { scrollHeight: number }).scrollHeight));
      const phoneEnd = join(shots, "chat-375-end.png");
      await page.screenshot({ path: phoneEnd });
      t.diagnostic(`screenshots: ${desktop} ${phone} ${phoneEnd}`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      fleet.kill("SIGTERM");
      await exited(fleet);
      await dropNamespace(redis, k);
      await closeRedis(redis);
    }
  },
);
