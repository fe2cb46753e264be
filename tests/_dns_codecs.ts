/**
 * Test and benchmark helper (private): the two DNS wire codecs (reference and WASM) by name,
 * configured pairs of them, the test zone, and the rcode a parse status calls for.
 *
 * @module
 */

import { ReferenceCodec } from "../lib/dnswire/reference.ts";
import { createWasmCodec } from "../lib/dnswire/wasm.ts";
import { type DnsCodec, ParseStatus, Rcode, type ZoneConfig } from "../lib/dnswire/types.ts";

/** Both codecs by name, the reference one first. */
export const CODECS: readonly (readonly [string, () => DnsCodec])[] = [
  ["reference", () => new ReferenceCodec()],
  ["wasm", createWasmCodec],
];

/**
 * The zone `cdn.test` (NS `ns1`, mail `hostmaster`, serial 1, SOA timers 3600/600/86400/60,
 * SOA TTL 300), with `over` changed.
 */
export function testZone(over: Partial<ZoneConfig> = {}): ZoneConfig {
  return {
    zone: "cdn.test",
    nsLabel: "ns1",
    mailLabel: "hostmaster",
    serial: 1,
    refresh: 3600,
    retry: 600,
    expire: 86400,
    minimum: 60,
    soaTtl: 300,
    ...over,
  };
}

/** A new reference codec and a new WASM codec, both configured for `zone`. */
export function codecPair(zone: ZoneConfig): { ref: ReferenceCodec; wasm: DnsCodec } {
  const ref = new ReferenceCodec();
  const wasm = createWasmCodec();
  ref.configure(zone);
  wasm.configure(zone);
  return { ref, wasm };
}

/** The error rcode a parse status calls for (FORMERR, NOTIMP, BADVERS); null for the others. */
export function statusRcode(status: number): number | null {
  return status === ParseStatus.FORMERR
    ? Rcode.FORMERR
    : status === ParseStatus.NOTIMP
    ? Rcode.NOTIMP
    : status === ParseStatus.BADVERS
    ? Rcode.BADVERS
    : null;
}
