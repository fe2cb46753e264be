/**
 * Starts `main_http.ts` as users do (a subprocess) on 127.0.0.1 with a free port, and waits
 * for its "listening" line.
 *
 * @module
 */

const MAIN = new URL("../main_http.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;
/** Longest wait for a replica to start. */
const START_TIMEOUT_MS = 30_000;

/** A replica process. */
export interface ReplicaProc {
  url: string;
  port: number;
  /** Process id of the replica (for /proc figures). */
  pid: number;
  /** stdout and stderr lines so far. */
  lines: string[];
  /** Waits until a line matching `re` appears (bounded). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM and wait. */
  close(): Promise<void>;
  /** SIGKILL and wait. */
  kill9(): Promise<void>;
}

/** How to run deno: its flags before the script (default `-A`) and added environment. */
export interface SpawnOptions {
  denoFlags?: string[];
  env?: Record<string, string>;
}

/** Starts a replica with `args` (after `-p 0 --host 127.0.0.1`). */
export async function startReplica(args: string[], opts: SpawnOptions = {}): Promise<ReplicaProc> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...opts.denoFlags ?? ["-A"], MAIN, "-p", "0", "--host", "127.0.0.1", ...args],
    env: opts.env,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
      for (const w of [...waiters]) w();
    }
    if (rest !== "") lines.push(rest);
    for (const w of [...waiters]) w();
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    for (const w of [...waiters]) w();
    return s;
  });
  const waitFor = (re: RegExp, timeoutMs = START_TIMEOUT_MS) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = lines.find((l) => re.test(l));
        if (hit !== undefined) {
          done();
          resolve(hit);
        } else if (exited) {
          done();
          reject(new Error(`replica exited before ${re}:\n${lines.join("\n")}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no line ${re} within ${timeoutMs} ms:\n${lines.join("\n")}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  const stop = async (sig: Deno.Signal) => {
    if (!exited) {
      try {
        child.kill(sig);
      } catch { /* gone */ }
    }
    await status;
    await pumps;
  };
  try {
    // http://127.0.0.1:PORT/ by default; https and another --host with --tls.
    const line = await waitFor(/listening on https?:\/\/[^/\s]+:(\d+)\//);
    const [, base, p] = /listening on (https?:\/\/[^/\s]+:(\d+))\//.exec(line)!;
    const port = Number(p);
    return {
      url: base,
      port,
      pid: child.pid,
      lines,
      waitFor,
      close: () => stop("SIGTERM"),
      kill9: () => stop("SIGKILL"),
    };
  } catch (e) {
    await stop("SIGKILL");
    throw e;
  }
}

/** Runs main_http.ts with `args` to completion; returns exit code and output. */
export async function runReplicaCli(
  args: string[],
  opts: SpawnOptions = {},
): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...opts.denoFlags ?? ["-A"], MAIN, ...args],
    env: opts.env,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}
