/**
 * A TLS connection verified against one CA alone, as a byte stream with `Deno.Conn`'s `read`,
 * `write` and `close`. It is made with `node:tls`, whose `ca` replaces the default roots;
 * `Deno.connectTls({ caCerts })` would add the CA to Deno's public roots (see `_node_fetch.ts`).
 * Used by the routing proxy's own HTTP/1.1 client for `--ca`.
 *
 * @module
 */
import tls from "node:tls";

/** What the proxy's HTTP/1.1 client uses of a connection. */
export type ByteConn = Pick<Deno.Conn, "read" | "write" | "close">;

/** Bytes queued from the socket before it is paused. */
const HIGH_WATER = 256 * 1024;

/**
 * Opens TLS to `hostname:port` (an IP address or a DNS name, which the certificate must name),
 * verified against `caPem` alone. Rejects with the `node:tls` error (its `code` kept).
 */
export function connectPinnedTls(
  hostname: string,
  port: number,
  caPem: string,
): Promise<ByteConn & { setNoDelay(on: boolean): void }> {
  return new Promise((resolve, reject) => {
    const isIp = /^[0-9.]+$|:/.test(hostname);
    const socket = tls.connect({
      host: hostname,
      port,
      ca: caPem,
      ...(isIp ? {} : { servername: hostname }),
    });
    const queue: Uint8Array[] = [];
    let queued = 0;
    let ended = false;
    let failure: Error | null = null;
    let wake: (() => void) | null = null;
    const notify = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    socket.on("data", (d: Uint8Array) => {
      queue.push(d);
      queued += d.length;
      if (queued >= HIGH_WATER) socket.pause();
      notify();
    });
    socket.on("end", () => {
      ended = true;
      notify();
    });
    socket.on("close", () => {
      ended = true;
      notify();
    });
    socket.once("secureConnect", () => {
      socket.removeListener("error", reject);
      socket.on("error", (e: Error) => {
        failure = e;
        notify();
      });
      resolve({
        async read(p: Uint8Array): Promise<number | null> {
          while (queue.length === 0) {
            if (failure !== null) throw failure;
            if (ended) return null;
            await new Promise<void>((r) => wake = r);
          }
          const head = queue[0];
          const n = Math.min(p.length, head.length);
          p.set(head.subarray(0, n));
          if (n === head.length) queue.shift();
          else queue[0] = head.subarray(n);
          queued -= n;
          if (queued < HIGH_WATER && socket.isPaused()) socket.resume();
          return n;
        },
        write(p: Uint8Array): Promise<number> {
          if (failure !== null) return Promise.reject(failure);
          return new Promise((res, rej) => {
            // node keeps a reference to the buffer: copy it, as the caller may reuse it.
            socket.write(p.slice(), (e?: Error | null) => e ? rej(e) : res(p.length));
          });
        },
        close(): void {
          socket.destroy();
        },
        setNoDelay(on: boolean): void {
          socket.setNoDelay(on);
        },
      });
    });
    socket.once("error", reject);
  });
}
