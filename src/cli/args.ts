import { parseArgs } from "node:util";
import { ToolfleetError } from "../core/errors.js";
import { LOG_FORMATS } from "../core/log.js";
import { didYouMean } from "./suggest.js";

/**
 * One row of a command's option table. The same row feeds node's parseArgs and
 * the command's --help, so the help lists exactly what is parsed.
 */
export interface OptionSpec {
  readonly name: string;
  readonly type: "string" | "boolean";
  readonly short?: string;
  /** What the value stands for in the help (`--port N`); a string option with choices shows them instead. */
  readonly value?: string;
  /** The values a string option takes; anything else is a usage error naming the closest. */
  readonly choices?: readonly string[];
  /** May be given more than once: its value is the list, in order. */
  readonly multiple?: boolean;
  /** Applied by parseArgs, and shown in the help. */
  readonly default?: string | boolean;
  /** Shown in the help when the command works the default out itself (from the config, the host, another option). */
  readonly defaultText?: string;
  readonly description: string;
}

export interface CommandSpec<O extends readonly OptionSpec[] = readonly OptionSpec[]> {
  readonly name: string;
  /** The command's line in `toolfleet --help`. */
  readonly summary: string;
  /** Its arguments in the usage line, e.g. `<tool> ['<json args>']`. */
  readonly args?: string;
  /** How many arguments it takes. @defaultValue none */
  readonly positionals?: { readonly min: number; readonly max: number };
  /** Printed between the usage line and the options. */
  readonly about?: string;
  readonly options: O;
  /** Printed after the options. */
  readonly notes?: string;
}

/** Options every command takes, after its own. */
export const COMMON_OPTIONS = [
  {
    name: "log-format",
    type: "string",
    choices: LOG_FORMATS,
    defaultText: "TOOLFLEET_LOG_FORMAT, else pretty when stderr is a terminal and json when it is not",
    description: "log lines as short readable lines, or as JSON",
  },
  { name: "help", short: "h", type: "boolean", description: "print this help and exit" },
  { name: "version", type: "boolean", description: "print toolfleet's version and exit" },
] as const satisfies readonly OptionSpec[];

type ValueOf<S extends OptionSpec> = S["type"] extends "boolean" ? boolean : S extends { multiple: true } ? string[] : string;

/** The values parseArgs gives for an option table: an option with a default is always there. */
export type Values<O extends readonly OptionSpec[]> = {
  [S in O[number] as S["name"]]: S extends { default: string | boolean } ? ValueOf<S> : ValueOf<S> | undefined;
};

export interface Parsed<O extends readonly OptionSpec[]> {
  values: Values<O>;
  positionals: string[];
  /** Every option as given, in command-line order (for options whose meaning depends on the one before). */
  order?: { name: string; value: string | undefined }[];
}

export type ParseResult<O extends readonly OptionSpec[]> =
  { action: "help" } | { action: "version" } | ({ action: "run"; /** --log-format, when given. */ logFormat: string | undefined } & Parsed<O>);

/** A mistake on the command line: main prints it with a pointer to the command's --help and exits 2. */
export function usageError(message: string): ToolfleetError {
  return new ToolfleetError("USAGE", message);
}

/**
 * Parses a command's arguments with its option table and the common options.
 * `--help` and `--version` win over everything else on the line, even a
 * mistake, so they always answer.
 */
export function parseCommand<O extends readonly OptionSpec[]>(spec: CommandSpec<O>, argv: string[]): ParseResult<O> {
  const table: readonly OptionSpec[] = [...spec.options, ...COMMON_OPTIONS];
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean; default?: string | boolean }> = {};
  for (const o of table) {
    options[o.name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
      ...(o.default !== undefined ? { default: o.default } : {}),
    };
  }
  const beforeDashes = argv.indexOf("--") === -1 ? argv : argv.slice(0, argv.indexOf("--"));
  const asked = (flags: string[]): boolean => beforeDashes.some((a) => flags.includes(a));
  let parsed: {
    values: Record<string, string | boolean | (string | boolean)[] | undefined>;
    positionals: string[];
    tokens: ({ kind: "option"; name: string; value?: string | undefined } | { kind: "positional" | "option-terminator" })[];
  };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    if (asked(["--help", "-h"])) return { action: "help" };
    if (asked(["--version"])) return { action: "version" };
    throw parseError(err, table);
  }
  if (parsed.values.help === true) return { action: "help" };
  if (parsed.values.version === true) return { action: "version" };
  for (const o of table) {
    const value = parsed.values[o.name];
    if (o.choices && typeof value === "string" && !o.choices.includes(value)) {
      throw usageError(`--${o.name}: expected ${oneOf(o.choices)}, got '${value}'${didYouMean(value, o.choices)}`);
    }
  }
  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  const extra = parsed.positionals[max];
  if (extra !== undefined) throw usageError(`unexpected argument '${extra}'${max === 0 ? "" : ` (it takes at most ${max})`}`);
  if (parsed.positionals.length < min) throw usageError(`missing arguments: ${spec.args ?? ""}`.trim());
  const logFormat = typeof parsed.values["log-format"] === "string" ? parsed.values["log-format"] : undefined;
  const order = parsed.tokens.flatMap((t) => (t.kind === "option" ? [{ name: t.name, value: t.value }] : []));
  return { action: "run", logFormat, values: parsed.values as Values<O>, positionals: parsed.positionals, order };
}

function parseError(err: unknown, table: readonly OptionSpec[]): ToolfleetError {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const name = /'([^']+)'/.exec(message)?.[1] ?? "";
    const flag = name.replace(/=.*$/, "");
    return usageError(
      `unknown option '${flag}'${didYouMean(
        flag,
        table.map((o) => `--${o.name}`),
      )}`,
    );
  }
  // Node's own words are clear here ("Option '--port <value>' argument missing"); keep only the first sentence.
  return usageError(message.split(". ")[0] ?? message);
}

function oneOf(choices: readonly string[]): string {
  return choices.length <= 1 ? (choices[0] ?? "") : `${choices.slice(0, -1).join(", ")} or ${choices[choices.length - 1]}`;
}

const WIDTH = 100;

/** A command's --help: its usage line, what it does, and every option of its table with its default. */
export function helpText(spec: CommandSpec): string {
  const table: readonly OptionSpec[] = [...spec.options, ...COMMON_OPTIONS];
  const rows = table.map((o) => {
    const value = o.type === "string" ? ` ${o.choices ? o.choices.join("|") : (o.value ?? "VALUE")}` : "";
    const flag = `${o.short ? `-${o.short}, ` : ""}--${o.name}${value}`;
    const shown = o.defaultText ?? (o.default === undefined || o.default === false ? undefined : String(o.default));
    return { flag, text: shown === undefined ? o.description : `${o.description} (default: ${shown})` };
  });
  const column = Math.min(30, Math.max(...rows.map((r) => r.flag.length)) + 2);
  const lines = [`Usage: toolfleet ${spec.name}${spec.args ? ` ${spec.args}` : ""} [options]`, ""];
  lines.push(wrap(spec.about ?? spec.summary, WIDTH, ""), "", "Options:");
  for (const r of rows) {
    const left = `  ${r.flag}`;
    const indent = " ".repeat(column + 2);
    const body = wrap(r.text, WIDTH, indent).trimStart();
    lines.push(left.length + 1 < indent.length ? `${left.padEnd(indent.length)}${body}` : `${left}\n${indent}${body}`);
  }
  if (spec.notes) lines.push("", wrap(spec.notes, WIDTH, ""));
  return lines.join("\n");
}

/** Word-wraps each paragraph of `text` to `width` columns, every line starting with `indent`. */
function wrap(text: string, width: number, indent: string): string {
  return text
    .split("\n")
    .map((paragraph) => {
      const out: string[] = [];
      let line = indent;
      for (const word of paragraph.split(" ")) {
        if (line.length > indent.length && line.length + 1 + word.length > width) {
          out.push(line);
          line = indent;
        }
        line += line.length > indent.length ? ` ${word}` : word;
      }
      out.push(line);
      return out.join("\n");
    })
    .join("\n");
}

export { packageVersion } from "../core/version.js";
