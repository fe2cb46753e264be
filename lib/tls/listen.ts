/**
 * TLS listeners whose certificate can be replaced without a restart. `Deno.listenTls` fixes its
 * certificate for the listener's life (and Deno's SNI resolver caches the first answer per
 * name), so a new certificate means a new listener: every TLS listener is opened with
 * `SO_REUSEPORT`, the new one is bound beside it on the same address and port, then the old one
 * is closed. Connections already accepted keep the certificate they were made with and go on;
 * new ones get the new certificate. Linux hands each new connection to one of the two sockets
 * while both are open, so a connection that was still in the old socket's accept queue at the
 * moment it closes is reset (a window of microseconds; `sysctl net.ipv4.tcp_migrate_req=1`
 * moves them to the new socket instead).
 *
 * @module
 */

import { noDelayOnListeners } from "./_nodelay.ts";

/** A PEM certificate chain and its PEM private key. */
export interface TlsKeyPair {
  cert: string;
  key: string;
}

/**
 * Listens with TLS on `hostname:port` (0: a free port). Fails with `AddrInUse` when anything
 * else holds the port, as a plain listener would: `SO_REUSEPORT` alone would let two nodes
 * (same user) share it silently, so a plain bind checks first.
 */
export function listenTlsSwappable(
  hostname: string,
  port: number,
  pair: TlsKeyPair,
  log: (line: string) => void = console.error,
): Deno.TlsListener {
  const probe = Deno.listen({ hostname, port });
  const bound = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return noDelay(Deno.listenTls({ hostname, port: bound, ...pair, reusePort: true }), log);
}

/** A second TLS listener on `old`'s address and port with `pair` (close `old` after it). */
export function relistenTls(
  old: Deno.TlsListener,
  pair: TlsKeyPair,
  log: (line: string) => void = console.error,
): Deno.TlsListener {
  const { hostname, port } = old.addr as Deno.NetAddr;
  return noDelay(Deno.listenTls({ hostname, port, ...pair, reusePort: true }), log);
}

/** Applies `TCP_NODELAY` to the listener's sockets (see `_nodelay.ts`); says once when it cannot. */
function noDelay(l: Deno.TlsListener, log: (line: string) => void): Deno.TlsListener {
  try {
    noDelayOnListeners((l.addr as Deno.NetAddr).port);
  } catch (e) {
    if (!warned) {
      warned = true;
      log(
        `tls: cannot set TCP_NODELAY on the listener (${(e as Error).message}): ` +
          "requests on kept-alive TLS connections may wait ~40 ms for delayed ACKs",
      );
    }
  }
  return l;
}
let warned = false;
