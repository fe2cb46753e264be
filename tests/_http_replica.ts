/**
 * Starts `main_http.ts` as users do (a subprocess) on 127.0.0.1 with a free port, and waits
 * for its "listening" line.
 *
 * @module
 */

import { runDeno, spawnDenoLines, startedLine } from "./_proc.ts";

const MAIN = new URL("../main_http.ts", import.meta.url).pathname;

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
  const p = spawnDenoLines([MAIN, "-p", "0", "--host", "127.0.0.1", ...args], {
    ...opts,
    name: "replica",
  });
  // http://127.0.0.1:PORT/ by default; https and another --host with --tls.
  const [, base, port] = await startedLine(p, /listening on (https?:\/\/[^/\s]+:(\d+))\//);
  return {
    url: base,
    port: Number(port),
    pid: p.pid,
    lines: p.lines,
    waitFor: p.waitFor,
    close: () => p.stop("SIGTERM"),
    kill9: () => p.stop("SIGKILL"),
  };
}

/** Runs main_http.ts with `args` to completion; returns exit code and output. */
export async function runReplicaCli(
  args: string[],
  opts: SpawnOptions = {},
): Promise<{ code: number; out: string }> {
  const r = await runDeno([MAIN, ...args], opts);
  return { code: r.code, out: r.stdout + r.stderr };
}
