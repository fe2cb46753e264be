/**
 * Test helpers of the routing proxy: `main_proxy.ts` started as users start it (a subprocess,
 * `-p 0` on loopback), a delaying TCP forwarder (a server made slower on loopback), and curl
 * and wget runs through the proxy.
 *
 * @module
 */

import { spawnDenoLines, startedLine } from "./_proc.ts";

const MAIN = new URL("../main_proxy.ts", import.meta.url).pathname;

/** A running proxy process. */
export interface ProxyProc {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  pid: number;
  output(): string;
  /** The proxy's `/_proxy/explain`. */
  explain(): Promise<Explain>;
  close(): Promise<void>;
}

/** The parts of `/_proxy/explain` the tests read. */
export interface Explain {
  choice: string | null;
  upstream: { connects: number; reused: number };
  reason: string | null;
  servers: {
    id: string;
    rank: number | null;
    eligible: boolean;
    ejectedForMs: number;
    latencyMs: number | null;
    pricePerGiB: number | null;
    failures: number;
    lastError: string | null;
  }[];
}

/** Starts the proxy with `args` (after `-p 0 --host 127.0.0.1`). */
export async function startProxyProc(args: string[]): Promise<ProxyProc> {
  const p = spawnDenoLines([MAIN, "-p", "0", "--host", "127.0.0.1", ...args], {
    name: "main_proxy.ts",
  });
  const m = await startedLine(p, /listening on http:\/\/127\.0\.0\.1:(\d+)\//, "proxy");
  const port = Number(m[1]);
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    pid: p.pid,
    output: p.output,
    explain: async () => {
      const res = await fetch(`${url}/_proxy/explain`, { signal: AbortSignal.timeout(10_000) });
      return await res.json() as Explain;
    },
    close: () => p.stop("SIGTERM"),
  };
}

/** A command's exit code, stdout bytes and stderr text. */
export interface CmdResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

/** Runs `cmd args` to completion (bounded by `timeoutMs`). */
export async function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<CmdResult> {
  const r = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  return { code: r.code, stdout: r.stdout, stderr: new TextDecoder().decode(r.stderr) };
}

/** Runs main_proxy.ts with `args` to completion. */
export function runProxyCli(args: string[], timeoutMs = 30_000): Promise<CmdResult> {
  return run(Deno.execPath(), ["run", "-A", MAIN, ...args], timeoutMs);
}

/** `curl -si -x PROXY URL ...`: status, headers (lower case) and body text. */
export async function curlVia(
  proxy: string,
  url: string,
  more: string[] = [],
): Promise<{ status: number; headers: Map<string, string>; body: string }> {
  const r = await run("curl", ["-si", "--max-time", "20", "-x", proxy, ...more, url]);
  if (r.code !== 0) throw new Error(`curl ${url} via ${proxy} failed (${r.code}): ${r.stderr}`);
  const text = new TextDecoder().decode(r.stdout);
  const split = text.indexOf("\r\n\r\n");
  const lines = text.slice(0, split).split("\r\n");
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    headers.set(l.slice(0, i).toLowerCase(), l.slice(i + 1).trim());
  }
  return { status: Number(lines[0].split(" ")[1]), headers, body: text.slice(split + 4) };
}

/**
 * A TCP forwarder to `127.0.0.1:target` that holds every chunk from the server `delayMs`
 * (both may be changed while it runs: a server's `--advertise` can name it before the server
 * has a port).
 */
export interface Delayer {
  port: number;
  url: string;
  target: number;
  delayMs: number;
  close(): void;
}

/** Starts a {@link Delayer} on a free loopback port. */
export function startDelayer(delayMs: number, target = 0): Delayer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const d: Delayer = {
    port: (listener.addr as Deno.NetAddr).port,
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    target,
    delayMs,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn, delay: boolean) => {
    try {
      for await (const b of from.readable) {
        if (delay && d.delayMs > 0) await new Promise((r) => setTimeout(r, d.delayMs));
        const w = to.writable.getWriter();
        await w.write(b);
        w.releaseLock();
      }
    } catch { /* either side closed */ }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch { /* closed */ }
      conns.delete(c);
    }
  };
  (async () => {
    for await (const client of listener) {
      try {
        const server = await Deno.connect({ hostname: "127.0.0.1", port: d.target });
        conns.add(client).add(server);
        pipe(client, server, false);
        pipe(server, client, true);
      } catch {
        client.close();
      }
    }
  })().catch(() => {});
  return d;
}
