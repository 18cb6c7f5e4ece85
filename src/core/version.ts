import { readFileSync } from "node:fs";

let cached: string | undefined;

/** toolfleet's version, from package.json (dist/src/<folder>/ is three folders below it). */
export function packageVersion(): string {
  if (cached === undefined) {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    cached = typeof pkg.version === "string" ? pkg.version : "unknown";
  }
  return cached;
}
