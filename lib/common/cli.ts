/**
 * The command-line helper every `main_*.ts` shares: one flag table per process (name, short
 * form, value placeholder, help), parsing into typed values with errors that name the flag and
 * the value received, the usage text, and the edge that turns a start-up failure into one line
 * and the process's documented exit code.
 *
 * @example
 * ```ts
 * import { type FlagTable, parseFlags } from "./cli.ts";
 * const FLAGS = {
 *   port: { type: "string", short: "p", arg: "PORT", help: "TCP port" },
 *   help: { type: "boolean", short: "h", help: "Show this help" },
 * } satisfies FlagTable;
 * const f = parseFlags(["-p", "8080"], FLAGS);
 * console.log(f.port("port", 80)); // 8080
 * ```
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { parseDuration, parseSize } from "../http/units.ts";

/** Exit code of a bad command line (unknown flag, bad value, missing or unreadable input). */
export const EXIT_USAGE = 2;

/** One flag: its type, optional short form and value placeholder, and its help line. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in the usage (default VALUE). */
  arg?: string;
  help: string;
}

/** A process's flags by long name. */
export type FlagTable = Record<string, FlagSpec>;

/**
 * A start-up failure: one line for the user (naming the flag and value at fault) and the exit
 * code the process documents. {@link runMain} prints it without a stack trace.
 */
export class StartError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT_USAGE) {
    super(message);
    this.name = "StartError";
  }
}

/** A bad command line: exit {@link EXIT_USAGE}, with a hint to run `--help`. */
export class UsageError extends StartError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = "UsageError";
  }
}

/** Width the usage text is wrapped to. */
const HELP_WIDTH = 100;

/** Splits `text` into lines of at most `width` characters at spaces (longer words stay whole). */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  out.push(line);
  return out;
}

/** The usage text: synopsis lines, the flag table, then any footer lines. */
export function usage(synopsis: string[], table: FlagTable, footer: string[] = []): string {
  const lines = [...synopsis, "", "Options:"];
  for (const [name, f] of Object.entries(table)) {
    const short = f.short ? `-${f.short}, ` : "    ";
    const arg = f.type === "string" ? ` ${f.arg ?? "VALUE"}` : "";
    const left = `  ${short}--${name}${arg}`;
    const [first, ...rest] = f.help.split("\n").flatMap((l) => wrap(l, HELP_WIDTH - 32));
    lines.push(left.length < 32 ? left.padEnd(32) + first : `${left}\n${"".padEnd(32)}${first}`);
    for (const more of rest) lines.push("".padEnd(32) + more);
  }
  if (footer.length > 0) lines.push("", ...footer);
  return lines.join("\n");
}

/** Parsed flags with typed, checked accessors; every error names the flag and the value. */
export class Flags {
  constructor(
    readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>,
    readonly positionals: readonly string[],
  ) {}

  /** A string flag's text, or undefined. */
  string(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === "string" ? v : undefined;
  }

  /** A repeatable flag's texts. */
  list(name: string): string[] {
    const v = this.values[name];
    if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
    return typeof v === "string" ? [v] : [];
  }

  /** A boolean flag. */
  bool(name: string): boolean {
    return this.values[name] === true;
  }

  /** A required string flag. */
  required(name: string, what: string): string {
    const v = this.string(name);
    if (v === undefined || v === "") throw new UsageError(`--${name} is required: ${what}`);
    return v;
  }

  /** A TCP/UDP port, 0..65535 (0: the system picks one). */
  port(name: string, fallback: number): number {
    const v = this.string(name);
    if (v === undefined) return fallback;
    if (!/^[0-9]{1,5}$/.test(v) || Number(v) > 65535) {
      throw new UsageError(`--${name} must be a port number in 0..65535: received ${v}`);
    }
    return Number(v);
  }

  /** An integer >= `min`. */
  int(name: string, fallback: number, min = 1): number {
    const v = this.string(name);
    if (v === undefined) return fallback;
    if (!/^-?[0-9]+$/.test(v) || Number(v) < min) {
      throw new UsageError(`--${name} must be an integer >= ${min}: received ${v}`);
    }
    return Number(v);
  }

  /** A number in `min..max`. */
  number(name: string, fallback: number, min: number, max = Infinity): number {
    const v = this.string(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
      const range = max === Infinity ? `>= ${min}` : `in ${min}..${max}`;
      throw new UsageError(`--${name} must be a number ${range}: received ${v}`);
    }
    return n;
  }

  /** A byte size (`64MiB`, `500KB`, `1048576`) in `min..max`. */
  size(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.string(name);
    if (v === undefined) return fallback;
    let n: number;
    try {
      n = parseSize(v);
    } catch (e) {
      throw new UsageError(`--${name}: ${(e as Error).message}`);
    }
    if (n < min || n > max) {
      throw new UsageError(`--${name} must be in ${min}..${max} bytes: received ${v}`);
    }
    return n;
  }

  /** A duration (`10s`, `500ms`, `2m`) in ms, at least `minMs`. */
  duration(name: string, fallbackMs: number, minMs = 0): number {
    const v = this.string(name);
    if (v === undefined) return fallbackMs;
    let ms: number;
    try {
      ms = parseDuration(v);
    } catch (e) {
      throw new UsageError(`--${name}: ${(e as Error).message}`);
    }
    if (ms < minMs) {
      throw new UsageError(
        minMs === 1
          ? `--${name} must be positive: received ${v}`
          : `--${name} must be at least ${minMs} ms: received ${v}`,
      );
    }
    return ms;
  }

  /** One of `choices`. */
  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const v = this.string(name);
    if (v === undefined) return fallback;
    if (!(choices as readonly string[]).includes(v)) {
      const list = choices.length === 2
        ? choices.join(" or ")
        : `one of ${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}`;
      throw new UsageError(`--${name} must be ${list}: received ${v}`);
    }
    return v as T;
  }

  /** An absolute http(s) URL. */
  httpUrl(name: string): string | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    return checkHttpUrl(`--${name}`, v);
  }
}

/** Checks that `text` is an absolute http(s) URL; `what` names the flag in the error. */
export function checkHttpUrl(what: string, text: string): string {
  if (!/^https?:\/\//i.test(text) || !URL.canParse(text)) {
    throw new UsageError(`${what}: not an http(s) URL: received ${text}`);
  }
  return text;
}

/**
 * Parses `argv` against `table` (strict: unknown flags and missing values are errors).
 * Throws a {@link UsageError}.
 */
export function parseFlags(
  argv: string[],
  table: FlagTable,
  opts: { positionals?: boolean } = {},
): Flags {
  const options: ParseArgsOptionsConfig = {};
  for (const [name, f] of Object.entries(table)) {
    options[name] = {
      type: f.type,
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    };
  }
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: opts.positionals ?? false,
    });
    return new Flags(values, positionals);
  } catch (e) {
    // node:util's messages name the flag ("Unknown option '--x'", "Option '-p, --port
    // <value>' argument missing"); drop its advice to use `--` (our flags take no such form).
    const message = (e as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    throw new UsageError(message);
  }
}

/**
 * The edge of a main: runs `main`; a {@link StartError} prints `NAME: message` (plus a `--help`
 * hint for usage errors) and exits with its code. Anything else is a bug and keeps its stack.
 */
export async function runMain(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (!(e instanceof StartError)) throw e;
    const hint = e instanceof UsageError ? " (run with --help for usage)" : "";
    console.error(`${name}: ${e.message}${hint}`);
    Deno.exit(e.exitCode);
  }
}

/**
 * Turns a listen failure (address in use, not available, permission denied) into a
 * {@link StartError} naming the flags and the address: `flags` is e.g. `--host 127.0.0.1
 * --port 8080`. Other errors are returned unchanged.
 */
export function listenError(e: unknown, flags: string, exitCode: number): unknown {
  const reason = e instanceof Deno.errors.AddrInUse
    ? "address already in use"
    : e instanceof Deno.errors.AddrNotAvailable
    ? "address not available on this machine"
    : e instanceof Deno.errors.PermissionDenied
    ? "permission denied (ports below 1024 need privileges)"
    : null;
  return reason === null ? e : new StartError(`cannot listen on ${flags}: ${reason}`, exitCode);
}
