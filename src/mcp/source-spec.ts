import { ToolfleetError } from "../core/errors.js";

/** One MCP server a tools worker takes tools from: a command it starts (stdio) or a URL (Streamable HTTP). */
export interface McpSourceSpec {
  /** A command line, split into words as a shell would split plain words and quotes (no variables, pipes or globs). */
  command?: string;
  /** A Streamable HTTP endpoint, e.g. `http://127.0.0.1:3001/mcp`. */
  url?: string;
  /** Put before each of its tools' names (`fs_` → `fs_read_file`), so two servers' tools do not clash. */
  prefix?: string;
}

/** A command line as words: whitespace splits, '…' and "…" quote, a backslash escapes the next character. */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] ?? "";
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) word = (word ?? "") + (line[++i] ?? "");
      else word = (word ?? "") + c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (c === "\\" && i + 1 < line.length) word = (word ?? "") + (line[++i] ?? "");
    else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else word = (word ?? "") + c;
  }
  if (quote) throw new ToolfleetError("USAGE", `--mcp: unclosed ${quote} in '${line}'`);
  if (word !== null) words.push(word);
  return words;
}

const PREFIX = /^[A-Za-z0-9_-]{1,32}$/;

/** Checks a spec: exactly one of command and url, a command with a program, an http(s) URL, a prefix of name characters. */
export function checkedSpec(spec: McpSourceSpec): McpSourceSpec {
  if ((spec.command === undefined) === (spec.url === undefined)) throw new ToolfleetError("USAGE", "an MCP source has a command or a url, not both");
  if (spec.command !== undefined && splitCommand(spec.command).length === 0) throw new ToolfleetError("USAGE", "--mcp: the command is empty");
  if (spec.url !== undefined) {
    let url: URL;
    try {
      url = new URL(spec.url);
    } catch {
      throw new ToolfleetError("USAGE", `--mcp-url: not a URL: '${spec.url}'`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new ToolfleetError("USAGE", `--mcp-url: expected an http(s) URL, got '${spec.url}'`);
  }
  if (spec.prefix !== undefined && !PREFIX.test(spec.prefix)) {
    throw new ToolfleetError("USAGE", `--mcp-prefix: 1-32 of letters, digits, _ and -, got '${spec.prefix}'`);
  }
  return spec;
}

/**
 * The sources of a command line, in order: each `--mcp` and `--mcp-url` starts one, and a `--mcp-prefix`
 * names the prefix of the source given just before it (one prefix per source at most).
 */
export function sourcesFromOptions(options: readonly { name: string; value: string | undefined }[]): McpSourceSpec[] {
  const specs: McpSourceSpec[] = [];
  for (const { name, value } of options) {
    if (value === undefined) continue;
    if (name === "mcp") specs.push({ command: value });
    else if (name === "mcp-url") specs.push({ url: value });
    else if (name === "mcp-prefix") {
      const last = specs[specs.length - 1];
      if (!last) throw new ToolfleetError("USAGE", "--mcp-prefix names the prefix of the --mcp or --mcp-url before it; give that first");
      if (last.prefix !== undefined) throw new ToolfleetError("USAGE", `--mcp-prefix: two prefixes for one source (${last.prefix}, ${value})`);
      last.prefix = value;
    }
  }
  return specs.map(checkedSpec);
}
