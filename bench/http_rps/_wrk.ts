/**
 * `wrk --latency` for the benchmarks: one run ({@link runWrk}) and the parsing of its output
 * ({@link parseWrk}, kept pure so it can be tested on captured output).
 *
 * @module
 */

/** What one wrk run measured. */
export interface WrkResult {
  requests: number;
  seconds: number;
  bytesRead: number;
  requestsPerSec: number;
  /** Latency percentiles in milliseconds. */
  p50Ms: number;
  p99Ms: number;
  /** Socket errors (connect + read + write + timeout). */
  socketErrors: number;
  non2xx3xx: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const UNIT_BYTES: Record<string, number> = {
  B: 1,
  KB: 1024,
  MB: 1024 ** 2,
  GB: 1024 ** 3,
  TB: 1024 ** 4,
};

function duration(v: string, u: string, what: string): number {
  const k = UNIT_MS[u];
  if (k === undefined) {
    throw new SyntaxError(`Cannot parse wrk output: unknown unit "${u}" in ${what}`);
  }
  return Number(v) * k;
}

/**
 * Parses the text printed by `wrk --latency`.
 *
 * @throws {SyntaxError} when a required line is missing (wrk failed or changed its format).
 */
export function parseWrk(out: string): WrkResult {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out);
    if (!m) throw new SyntaxError(`Cannot parse wrk output: no ${what} line in:\n${out}`);
    return m;
  };
  const total = need(
    /(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)(B|KB|MB|GB|TB) read/,
    "'requests in'",
  );
  const rps = need(/Requests\/sec:\s+([\d.]+)/, "Requests/sec");
  const p50 = need(/^\s+50%\s+([\d.]+)(us|ms|s|m|h)\s*$/m, "50% latency");
  const p99 = need(/^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$/m, "99% latency");
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    seconds: duration(total[2], total[3], "duration") / 1000,
    bytesRead: Number(total[4]) * UNIT_BYTES[total[5]],
    requestsPerSec: Number(rps[1]),
    p50Ms: duration(p50[1], p50[2], "50%"),
    p99Ms: duration(p99[1], p99[2], "99%"),
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx3xx: non ? Number(non[1]) : 0,
  };
}

/** One `wrk -t1 --latency` run. */
export interface WrkRun {
  url: string;
  connections: number;
  durationS: number;
  /** Pins wrk to this core with `taskset -c` (null: not pinned). */
  core: string | null;
  /** wrk's per-request timeout in seconds (default: wrk's own, 2 s). */
  timeoutS?: number;
  /** A Lua script for `-s`. */
  script?: string;
  /** wrk is killed this long after the duration, as hung (default 30 s). */
  slackMs?: number;
}

/**
 * Runs wrk once; answers its parsed figures and its output (`raw`).
 *
 * @throws {Error} when wrk fails, with its output.
 */
export async function runWrk(o: WrkRun): Promise<WrkResult & { raw: string }> {
  const args = [
    "-t1",
    `-c${o.connections}`,
    `-d${o.durationS}s`,
    ...o.timeoutS === undefined ? [] : ["--timeout", `${o.timeoutS}s`],
    "--latency",
    ...o.script === undefined ? [] : ["-s", o.script],
    o.url,
  ];
  const child = new Deno.Command(o.core === null ? "wrk" : "taskset", {
    args: o.core === null ? args : ["-c", o.core, "wrk", ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), o.durationS * 1000 + (o.slackMs ?? 30_000));
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  const text = dec.decode(out.stdout) + dec.decode(out.stderr);
  if (!out.success) throw new Error(`wrk failed on ${o.url}:\n${text}`);
  return { ...parseWrk(text), raw: text };
}
