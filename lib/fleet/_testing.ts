/**
 * Test helpers for the fleet (private): start the real `main_dns.ts` and `main_http.ts` as
 * subprocesses, read their ports from what they print, wait for conditions with a deadline,
 * and stop everything in `finally`.
 *
 * @module
 */

import { FleetAgent } from "./replica/agent.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Longest wait for a process to print what it is waiting for (a cold start compiles). */
export const START_TIMEOUT_MS = 30_000;

/** A running subprocess with its output. */
export interface Proc {
  child: Deno.ChildProcess;
  output(): string;
  /** Resolves once the process has exited and its output is drained. */
  done: Promise<unknown>;
  /** SIGKILL (default) or another signal, then waits for the exit; idempotent. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** Starts `deno run -A ...args` from the repository root (so deno.json applies). */
export function spawnDeno(args: string[]): Proc {
  return track(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
  );
}

/** Keeps the output of a child started with piped stdout and stderr, and stops it on demand. */
export function track(child: Deno.ChildProcess): Proc {
  let text = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s.pipeThrough(new TextDecoderStream())) text = (text + c).slice(-50_000);
  };
  const done = Promise.all([pump(child.stdout), pump(child.stderr), child.status]);
  let stopping: Promise<void> | null = null;
  return {
    child,
    output: () => text,
    done,
    stop(signal: Deno.Signal = "SIGKILL") {
      stopping ??= (async () => {
        try {
          child.kill(signal);
        } catch { /* exited */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* exited */ }
        }, 5_000);
        await done;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/** Polls `fn` every `everyMs` until it returns a value other than undefined, or throws. */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = START_TIMEOUT_MS,
  everyMs = 50,
  context: () => string = () => "",
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${
          last ? ` (last error: ${last})` : ""
        }\n${context()}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A DNS server with its fleet, started by {@link startDns}. */
export interface DnsProc extends Proc {
  port: number;
  control: number;
}

/** Starts `main_dns.ts -p 0 --control 0` with `args`; resolves once both ports are printed. */
export async function startDns(args: string[]): Promise<DnsProc> {
  const p = spawnDeno(["main_dns.ts", "-p", "0", "--control", "0", ...args]);
  try {
    const m = await waitFor(
      "the DNS server's ports",
      async () => {
        const m = /port (\d+) \(udp[\s\S]*control API on https?:\/\/\S+:(\d+)\//.exec(p.output());
        if (m) return m;
        const status = await Promise.race([p.child.status, Promise.resolve(null)]);
        if (status) throw new Error(`exited ${status.code}: ${p.output()}`);
        return undefined;
      },
      START_TIMEOUT_MS,
      50,
      p.output,
    );
    return { ...p, port: Number(m[1]), control: Number(m[2]) };
  } catch (e) {
    await p.stop();
    throw e;
  }
}

/**
 * A fleet agent (not started) for a replica `id` at 127.0.0.1:9 with no location and no load,
 * announcing to the DNS server whose control API is on 127.0.0.1:`control`.
 */
export function testAgent(id: string, control: number, adminToken: string): FleetAgent {
  return new FleetAgent({
    id,
    address: "127.0.0.1",
    port: 9,
    lat: null,
    lon: null,
    provider: "",
    announce: `127.0.0.1:${control}`,
    adminToken,
    load: () => ({ requests: 0, hits: 0, misses: 0, cacheBytes: 0 }),
  });
}

/** Starts a replica: `main_http.ts -p 0 -o http://127.0.0.1:9 ...args`. */
export function startReplica(args: string[]): Proc {
  return spawnDeno(["main_http.ts", "-p", "0", "-o", "http://127.0.0.1:9", ...args]);
}

/** The port a replica printed (`http: listening on http://H:P/`), once it has. */
export function replicaPort(p: Proc): Promise<number> {
  return waitFor(
    "the replica's port",
    () => {
      const m = /http: listening on http:\/\/\S+?:(\d+)\//.exec(p.output());
      return m ? Number(m[1]) : undefined;
    },
    START_TIMEOUT_MS,
    50,
    p.output,
  );
}

/** GET/POST/... JSON from a URL; returns status and parsed body. */
export async function http(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    body = { text };
  }
  return { status: res.status, body };
}

/** One A query over UDP to 127.0.0.1:port from `source`; the answer's address, "" if none. */
export async function resolveA(port: number, zone: string, source = "127.0.0.1"): Promise<string> {
  const sock = Deno.listenDatagram({ hostname: source, port: 0, transport: "udp" });
  try {
    const id = Math.floor(Math.random() * 65536);
    const q = [id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for (const label of zone.split(".")) q.push(label.length, ...new TextEncoder().encode(label));
    q.push(0, 0, 1, 0, 1);
    await sock.send(new Uint8Array(q), { transport: "udp", hostname: "127.0.0.1", port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const got = await Promise.race([
      sock.receive(),
      new Promise<never>((_, rej) =>
        timer = setTimeout(() => rej(new Error("no DNS reply")), 2000)
      ),
    ]).finally(() => clearTimeout(timer));
    const m = got[0];
    const ancount = (m[6] << 8) | m[7];
    return ancount === 0 ? "" : Array.from(m.subarray(m.length - 4)).join(".");
  } finally {
    sock.close();
  }
}
