/**
 * Test and benchmark helper (private): a child process whose stdout and stderr are read line by
 * line as they come, with a bounded wait for a line (a "listening" or ready line) and the log
 * kept for failure messages. The servers' start-up helpers (`_http_replica.ts`,
 * `_price_service.ts`, the benchmarks) are built on it.
 *
 * @module
 */

/** The repository root (where deno.json applies). */
export const ROOT = new URL("../", import.meta.url).pathname;
/** Longest wait for a line by default (a cold start compiles). */
export const START_TIMEOUT_MS = 30_000;

/** How to start a {@link LineProc}. */
export interface LineProcOptions {
  /** Working directory (default: the repository root). */
  cwd?: string;
  /** Added environment. */
  env?: Record<string, string>;
  /** Keeps only the newest `maxLines` lines (default: all). */
  maxLines?: number;
  /** Names the process in error messages (default: the command's base name). */
  name?: string;
  /** `inherit`: standard error goes to ours, live, and only standard output is read. */
  stderr?: "piped" | "inherit";
}

/** A child process with piped stdout and stderr, read line by line. */
export interface LineProc {
  child: Deno.ChildProcess;
  pid: number;
  /** stdout and stderr lines so far (each stream's lines whole, in arrival order). */
  lines: string[];
  /** The lines so far, joined with newlines. */
  output(): string;
  /** Whether the process has exited. */
  readonly exited: boolean;
  /** Resolves once the process has exited and its output is drained. */
  done: Promise<Deno.CommandStatus>;
  /**
   * Waits until a line matching `re` appears and answers it; rejects with the log if the
   * process exits first or none comes within `timeoutMs`.
   */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (default SIGTERM) unless exited, then waits for the exit and the output. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** Starts `cmd args` with stdin closed and both outputs read line by line. */
export function spawnLines(cmd: string, args: string[], opts: LineProcOptions = {}): LineProc {
  const child = new Deno.Command(cmd, {
    args,
    env: opts.env,
    cwd: opts.cwd ?? ROOT,
    stdout: "piped",
    stderr: opts.stderr ?? "piped",
    stdin: "null",
  }).spawn();
  const name = opts.name ?? cmd.split("/").pop();
  const max = opts.maxLines ?? Infinity;
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const add = (parts: string[]) => {
    lines.push(...parts);
    if (lines.length > max) lines.splice(0, lines.length - max);
    wake();
  };
  const pump = async (s: ReadableStream<Uint8Array>) => {
    let rest = "";
    try {
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const parts = rest.split("\n");
        rest = parts.pop()!;
        add(parts);
      }
    } catch { /* a read error ends this stream's lines */ }
    add(rest === "" ? [] : [rest]);
  };
  const pumps = Promise.all(
    opts.stderr === "inherit" ? [pump(child.stdout)] : [pump(child.stdout), pump(child.stderr)],
  );
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    wake();
    return s;
  });
  const done = pumps.then(() => status);
  const waitFor = (re: RegExp, timeoutMs = START_TIMEOUT_MS) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = lines.find((l) => re.test(l));
        if (hit !== undefined) {
          end();
          resolve(hit);
        } else if (exited) {
          end();
          reject(new Error(`${name} exited before ${re}:\n${lines.join("\n")}`));
        }
      };
      const timer = setTimeout(() => {
        end();
        reject(new Error(`no line ${re} within ${timeoutMs} ms:\n${lines.join("\n")}`));
      }, timeoutMs);
      const end = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (!exited) {
      try {
        child.kill(signal);
      } catch { /* gone */ }
    }
    await done;
  };
  return {
    child,
    pid: child.pid,
    lines,
    output: () => lines.join("\n"),
    get exited() {
      return exited;
    },
    done,
    waitFor,
    stop,
  };
}

/** Starts `deno run FLAGS ...args` (flags default `-A`) as a {@link LineProc}. */
export function spawnDenoLines(
  args: string[],
  opts: LineProcOptions & { denoFlags?: string[] } = {},
): LineProc {
  return spawnLines(Deno.execPath(), ["run", ...opts.denoFlags ?? ["-A"], ...args], {
    name: "deno",
    ...opts,
  });
}

/**
 * Waits for a line matching `re` and answers its match; on failure kills the process (SIGKILL)
 * and rethrows, with `what` in front of the message when given.
 */
export async function startedLine(
  p: LineProc,
  re: RegExp,
  what?: string,
  timeoutMs = START_TIMEOUT_MS,
): Promise<RegExpExecArray> {
  try {
    return re.exec(await p.waitFor(re, timeoutMs))!;
  } catch (e) {
    await p.stop("SIGKILL");
    if (what === undefined) throw e;
    throw new Error(`${what} did not start: ${(e as Error).message}`);
  }
}

/** What {@link runDeno} answers: the exit code and both outputs as text. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run FLAGS ...args` (flags default `-A`) to completion, stdin closed. */
export async function runDeno(
  args: string[],
  opts: Pick<LineProcOptions, "cwd" | "env"> & { denoFlags?: string[] } = {},
): Promise<RunResult> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...opts.denoFlags ?? ["-A"], ...args],
    env: opts.env,
    cwd: opts.cwd ?? ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}
