import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";

// Debian's chromium package; npm test installs it when run as root (scripts/test-setup.ts).
export const CHROMIUM = process.env.TOOLFLEET_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Headless Chromium for the page tests. Fails rather than skips when there is none: a green npm test means
 * the pages were driven in a browser (the README's Development section).
 */
export async function launchChromium(): Promise<Browser> {
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: as root, run apt-get update && apt-get install -y chromium fonts-noto-color-emoji (npm test does it when run as root), or set TOOLFLEET_CHROMIUM to a Chromium binary`,
  );
  return chromium.launch({
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
}

/** The screenshots' folder: TOOLFLEET_ARTIFACTS, or a new one under the OS temp dir. Kept after the test, for a person to look at. */
export function artifactsDir(prefix = "toolfleet-chat-"): string {
  const given = process.env.TOOLFLEET_ARTIFACTS;
  if (!given) return mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(given, { recursive: true });
  return given;
}
