/**
 * Helpers for the listener-limit tests: a process started under `prlimit`, raw idle and
 * slowloris connections, chunked uploads that stop when the server answers, and RSS.
 *
 * @module
 */

import { type LineProc, spawnLines } from "./_proc.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A child process and its output so far. */
export interface Child {
  pid: number;
  output(): string;
  /** Resolves with the exit code; null while it runs. */
  exited(): number | null;
  /** Waits for a line matching a pattern (see {@link LineProc.waitFor}). */
  waitFor: LineProc["waitFor"];
  stop(): Promise<void>;
}

/** Runs `deno run -A ARGS` under `prlimit --nofile=N:N` (both limits), in the repo root. */
export function spawnLimited(nofile: number, args: string[]): Child {
  const p = spawnLines("prlimit", [
    `--nofile=${nofile}:${nofile}`,
    Deno.execPath(),
    "run",
    "-A",
    ...args,
  ]);
  let code: number | null = null;
  p.child.status.then((s) => code = s.code);
  return {
    pid: p.pid,
    output: p.output,
    exited: () => code,
    waitFor: p.waitFor,
    stop: () => p.stop("SIGKILL"),
  };
}

/** Waits until `re` matches a line of the child's output; throws with the output if it exits first. */
export async function waitOutput(
  c: Child,
  re: RegExp,
  timeoutMs = 20_000,
): Promise<RegExpExecArray> {
  return re.exec(await c.waitFor(re, timeoutMs))!;
}

/** A server started by {@link limitedReplica} or {@link limitedDns}, with the port it printed. */
export interface LimitedServer {
  p: Child;
  port: number;
  /** `http://127.0.0.1:PORT`. */
  url: string;
}

async function limitedServer(nofile: number, args: string[], re: RegExp) {
  const p = spawnLimited(nofile, args);
  try {
    const m = await waitOutput(p, re);
    return { p, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}` };
  } catch (e) {
    await p.stop();
    throw e;
  }
}

/** `main_http.ts -p 0 --host 127.0.0.1 ...args` under `ulimit -n nofile`, once listening. */
export function limitedReplica(args: string[], nofile = 1024): Promise<LimitedServer> {
  return limitedServer(
    nofile,
    ["main_http.ts", "-p", "0", "--host", "127.0.0.1", ...args],
    /http: listening on http:\/\/127\.0\.0\.1:(\d+)\//,
  );
}

/**
 * `main_dns.ts -p 0 --control 0 -n cdn.test ...args` under `ulimit -n nofile`, once its control
 * API listens (`port` and `url` are the control API's).
 */
export function limitedDns(args: string[], nofile = 1024): Promise<LimitedServer> {
  return limitedServer(
    nofile,
    ["main_dns.ts", "-p", "0", "--control", "0", "-n", "cdn.test", ...args],
    /control API on http:\/\/\S+:(\d+)\//,
  );
}

/**
 * Runs `fn` with `server`; afterwards closes the connections `fn` left in `conns` and stops
 * the server.
 */
export async function withServer(
  server: LimitedServer,
  fn: (s: LimitedServer, conns: Deno.TcpConn[]) => Promise<void>,
): Promise<void> {
  const conns: Deno.TcpConn[] = [];
  try {
    await fn(server, conns);
  } finally {
    closeAll(conns);
    await server.p.stop();
  }
}

/** Resident memory of a process in bytes (Linux). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Opens `n` TCP connections that send nothing (or `prefix`), in batches. */
export async function openIdle(port: number, n: number, prefix = ""): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.allSettled(
      Array.from(
        { length: Math.min(100, n - i) },
        () => Deno.connect({ hostname: "127.0.0.1", port }),
      ),
    );
    for (const r of batch) if (r.status === "fulfilled") conns.push(r.value);
    if (prefix !== "") {
      await Promise.allSettled(conns.slice(i).map((c) => c.write(enc.encode(prefix))));
    }
  }
  return conns;
}

/** Whether the server has closed `conn` (a read answers EOF or an error) within `ms`. */
export async function closedWithin(conn: Deno.TcpConn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(4096);
  const timer = sleep(ms).then(() => "open" as const);
  for (;;) {
    const r = await Promise.race([conn.read(buf).catch(() => null), timer]);
    if (r === "open") return false;
    if (r === null) return true;
    // Bytes (an error answer): keep reading until EOF.
  }
}

export function closeAll(conns: Deno.Conn[]) {
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
}

/**
 * Sends `head` (ending in a blank line, with `Transfer-Encoding: chunked`) then up to
 * `totalBytes` of chunks of 64 KiB, stopping as soon as the server answers or closes. Answers
 * the status code (0 when none came) and the bytes of body sent.
 */
export async function chunkedUpload(
  port: number,
  head: string,
  totalBytes: number,
): Promise<{ status: number; sent: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let answer = "";
  let answered = false;
  const { promise: whenAnswered, resolve: gotAnswer } = Promise.withResolvers<void>();
  const reader = (async () => {
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        answer += dec.decode(buf.subarray(0, n));
        if (answer.includes("\r\n")) {
          answered = true;
          gotAnswer();
        }
      }
    } catch { /* reset */ }
    answered = true;
    gotAnswer();
  })();
  const piece = 64 * 1024;
  const chunk = new Uint8Array(piece + 16);
  const hdr = enc.encode(piece.toString(16) + "\r\n");
  chunk.set(hdr);
  chunk.fill(120, hdr.length, hdr.length + piece);
  chunk.set(enc.encode("\r\n"), hdr.length + piece);
  const frame = chunk.subarray(0, hdr.length + piece + 2);
  let sent = 0;
  try {
    await conn.write(enc.encode(head));
    while (sent < totalBytes && !answered) {
      // A server that answered without reading stops reading: the write would never end.
      await Promise.race([conn.write(frame), whenAnswered]);
      sent += piece;
    }
    if (!answered) await conn.write(enc.encode("0\r\n\r\n"));
  } catch { /* the server closed: expected once it answered */ }
  // The status line is enough: give the rest of the answer a moment, then hang up.
  await Promise.race([reader, sleep(answered ? 200 : 10_000)]);
  try {
    conn.close();
  } catch { /* closed */ }
  const m = /^HTTP\/1\.1 (\d{3})/.exec(answer);
  return { status: m ? Number(m[1]) : 0, sent };
}
