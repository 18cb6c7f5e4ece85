import { readFileSync } from "node:fs";

let cached: string | undefined;

/** toolfleet's version, from package.json (dist/src/<folder>/ is three folders below it); "unknown" when it cannot be read. */
export function packageVersion(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: unknown };
      cached = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      // A copy of the build without its package.json (bench/stages.ts makes one): nothing to tell, nothing broken.
      cached = "unknown";
    }
  }
  return cached;
}
