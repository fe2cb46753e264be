/**
 * `TCP_NODELAY` for TLS connections. Deno sets it on every accepted plain TCP connection it
 * serves, but not on TLS ones (Deno 2.9, `ext/http/http_next.rs`), and a TLS response written in
 * two pieces then waits for the client's delayed ACK: about 40 ms per request on a kept-alive
 * connection (`bench/listener/tls_hits.ts`). Deno has no API to set it on a TLS connection or a
 * listener, so this sets it with libc's `setsockopt` (Deno FFI, Linux) on the process's listening
 * sockets of a port, found through `/proc/net/tcp*` and `/proc/self/fd`; Linux copies the option
 * to every connection they accept.
 *
 * @module
 */

const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
/** `st` of a listening socket in `/proc/net/tcp`. */
const LISTEN = "0A";

let libc:
  | Deno.DynamicLibrary<{
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"]; result: "i32" };
  }>
  | null = null;

/** Inodes of the listening TCP sockets on `port` (IPv4 and IPv6), from `/proc/net`. */
function listeningInodes(port: number): Set<string> {
  const out = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[1].endsWith(`:${hexPort}`) && f[3] === LISTEN) out.add(f[9]);
    }
  }
  return out;
}

/**
 * Sets `TCP_NODELAY` on this process's listening sockets on `port`; returns how many, or throws
 * when it cannot (not Linux, no FFI permission) so the caller can say so once.
 */
export function noDelayOnListeners(port: number): number {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) throw new Error(`no listening socket on port ${port} in /proc/net/tcp`);
  libc ??= Deno.dlopen("libc.so.6", {
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  });
  const one = new Uint8Array(new Int32Array([1]).buffer);
  let set = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m === null || !inodes.has(m[1])) continue;
    if (libc.symbols.setsockopt(Number(e.name), IPPROTO_TCP, TCP_NODELAY, one, 4) === 0) set++;
  }
  return set;
}
