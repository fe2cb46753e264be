/**
 * Client addresses by their text form, parsed once: transports get a `hostname` string per
 * datagram or connection, and the handler wants bytes.
 *
 * @module
 */
import type { ClientAddr } from "./handler.ts";
import { parseClientIp } from "../common/ip.ts";

/**
 * Most addresses cached: bounds memory under a flood of spoofed sources; when full the cache is
 * emptied (a re-parse is cheap, an unbounded map is not).
 */
export const MAX_CACHED_CLIENTS = 65_536;

/** The unspecified IPv4 address, for a hostname that does not parse (never expected). */
const UNKNOWN: ClientAddr = { family: 4, bytes: new Uint8Array(16) };

/** Parses and caches client addresses. */
export class ClientCache {
  readonly #map = new Map<string, ClientAddr>();

  /** The address for a hostname as a socket reports it (IPv4-mapped IPv6 becomes IPv4). */
  get(hostname: string): ClientAddr {
    let a = this.#map.get(hostname);
    if (a === undefined) {
      a = parseClientIp(hostname) ?? UNKNOWN;
      if (this.#map.size >= MAX_CACHED_CLIENTS) this.#map.clear();
      this.#map.set(hostname, a);
    }
    return a;
  }
}
