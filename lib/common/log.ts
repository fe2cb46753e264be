/**
 * The processes' logger: one event per line, as text (the default: the human line each process
 * printed so far) or JSON (`--log json`: `time`, `level`, `process`, `pid`, `msg` and the
 * event's fields). No ANSI colour either way. The processes take a `log(line)` callback; a
 * logger's {@link Logger.line} is one, so wiring it at a main is mechanical.
 *
 * @example
 * ```ts
 * import { Logger } from "./log.ts";
 * const out: string[] = [];
 * const log = new Logger({ process: "http", format: "json", write: (l) => out.push(l) });
 * log.line("http: listening on http://127.0.0.1:8080/");
 * const e = JSON.parse(out[0]);
 * if (e.process !== "http" || e.level !== "info" || e.msg !== "listening on http://127.0.0.1:8080/") {
 *   throw new Error("unexpected event");
 * }
 * ```
 *
 * @module
 */

import { UsageError } from "./cli.ts";

/** How events are written. */
export type LogFormat = "text" | "json";

/** Formats `--log` takes. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** Severity of an event. */
export type LogLevel = "info" | "warn" | "error";

/** Extra fields of an event (JSON values). */
export type LogFields = Record<string, unknown>;

/** Options of {@link Logger}. */
export interface LoggerOptions {
  /** The process's name (`dns`, `http`, `price`, `proxy`). */
  process: string;
  format?: LogFormat;
  /** Where a finished line goes (without its newline); default: standard output. */
  write?: (line: string) => void;
  now?: () => Date;
  pid?: number;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
/** Words that make a plain line a warning. */
const WARN = /\b(fail(ed|s|ure)?|cannot|could not|error|refused|rejected|timed? ?out|lost)\b/i;

const encoder = new TextEncoder();

/** Writes `line` and a newline to standard output, all of it. */
export function writeStdout(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** See the module doc. */
export class Logger {
  readonly process: string;
  readonly format: LogFormat;
  readonly #write: (line: string) => void;
  readonly #now: () => Date;
  readonly #pid: number;

  constructor(o: LoggerOptions) {
    this.process = o.process;
    this.format = o.format ?? "text";
    this.#write = o.write ?? writeStdout;
    this.#now = o.now ?? (() => new Date());
    this.#pid = o.pid ?? Deno.pid;
  }

  /** Writes one event. */
  event(level: LogLevel, msg: string, fields: LogFields = {}): void {
    const clean = msg.replace(ANSI, "");
    if (this.format === "json") {
      this.#write(JSON.stringify({
        time: this.#now().toISOString(),
        level,
        process: this.process,
        pid: this.#pid,
        msg: clean,
        ...fields,
      }));
      return;
    }
    const extra = Object.entries(fields).map(([k, v]) => ` ${k}=${textValue(v)}`).join("");
    this.#write(clean + extra);
  }

  info(msg: string, fields?: LogFields): void {
    this.event("info", msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.event("warn", msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.event("error", msg, fields);
  }

  /**
   * The `log(line)` callback the processes take: in JSON the line's `name: ` prefix becomes a
   * `component` field (dropped when it is the process's own name), and a line that reports a
   * failure is a warning; in text the line is written as it is.
   */
  readonly line = (line: string): void => {
    if (this.format === "text") return this.#write(line.replace(ANSI, ""));
    const m = /^([a-z][a-z0-9_-]{0,20}): ([\s\S]*)$/.exec(line);
    const fields: LogFields = {};
    let msg = line;
    if (m !== null) {
      msg = m[2];
      if (m[1] !== this.process) fields.component = m[1];
    }
    this.event(WARN.test(msg) ? "warn" : "info", msg, fields);
  };
}

function textValue(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/**
 * Takes `--log FORMAT` (or `--log=FORMAT`) out of `args`: the format (default text) and the
 * other arguments, for the process's own parser. Throws a `UsageError` naming the flag.
 */
export function takeLogFlag(args: readonly string[]): { format: LogFormat; rest: string[] } {
  const rest: string[] = [];
  let format: LogFormat = "text";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      rest.push(...args.slice(i));
      break;
    }
    let value: string | undefined;
    if (a === "--log") {
      value = args[++i];
      if (value === undefined) throw new UsageError("--log needs a value: text or json");
    } else if (a.startsWith("--log=")) value = a.slice("--log=".length);
    else {
      rest.push(a);
      continue;
    }
    if (!(LOG_FORMATS as readonly string[]).includes(value)) {
      throw new UsageError(`--log must be text or json: received ${value}`);
    }
    format = value as LogFormat;
  }
  return { format, rest };
}

const LOG_HELP = [
  "Log format: text (default: one human line each) or json",
  "(one object a line: time, level, process, pid, msg, fields).",
];

/**
 * `usage` (a process's `--help`) with the `--log FORMAT` option added before its `--help`
 * line, aligned with it; at the end when it has none.
 */
export function withLogUsage(usage: string): string {
  const lines = usage.split("\n");
  const at = lines.findIndex((l) => /^\s+(-h, )?--help\s/.test(l));
  if (at < 0) return `${usage}\n  --log FORMAT  ${LOG_HELP.join(" ")}`;
  const m = /^(\s+)(-h, )?--help(\s+)/.exec(lines[at])!;
  const column = m[0].length;
  const head = `${m[1]}--log FORMAT`;
  const added = [
    head.padEnd(column) + LOG_HELP[0],
    ...LOG_HELP.slice(1).map((t) => " ".repeat(column) + t),
  ];
  lines.splice(at, 0, ...added);
  return lines.join("\n");
}
