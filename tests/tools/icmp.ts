/**
 * ICMP echo ("ping") over a raw IPv4 socket through Deno FFI, for machines without a `ping`
 * binary. Needs root (CAP_NET_RAW). Runs in the network namespace of the calling process.
 *
 * @example
 * ```ts ignore
 * import { ping } from "./icmp.ts";
 * const rttMs = await ping("10.77.1.2", { timeoutMs: 1000 }); // null on timeout
 * ```
 */
import {
  AF_INET,
  errno,
  IPPROTO_ICMP,
  libc,
  parseIPv4,
  SO_RCVTIMEO,
  SOCK_RAW,
  sockaddrIn,
  SOL_SOCKET,
  strerror,
} from "./_libc.ts";

/** The RFC 1071 Internet checksum of `b`. */
export function internetChecksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An ICMP echo request (type 8) with `id`, `seq` and a 16-byte payload. */
export function echoRequest(id: number, seq: number): Uint8Array<ArrayBuffer> {
  const p = new Uint8Array(24);
  const v = new DataView(p.buffer);
  v.setUint8(0, 8);
  v.setUint16(4, id & 0xffff);
  v.setUint16(6, seq & 0xffff);
  for (let i = 8; i < p.length; i++) p[i] = i;
  v.setUint16(2, internetChecksum(p));
  return p;
}

/**
 * True when `packet` (an IPv4 packet as a raw socket returns it) is the echo reply from `from`
 * to the request (`id`, `seq`).
 */
export function isEchoReply(packet: Uint8Array, from: Uint8Array, id: number, seq: number) {
  if (packet.length < 20 || packet[0] >> 4 !== 4) return false;
  const ihl = (packet[0] & 0x0f) * 4;
  if (packet.length < ihl + 8 || packet[9] !== IPPROTO_ICMP) return false;
  for (let i = 0; i < 4; i++) if (packet[12 + i] !== from[i]) return false;
  const v = new DataView(packet.buffer, packet.byteOffset + ihl);
  return v.getUint8(0) === 0 && v.getUint16(4) === (id & 0xffff) &&
    v.getUint16(6) === (seq & 0xffff);
}

let nextSeq = 1;

/** Sends one echo request to `host` (IPv4) and resolves with the RTT in ms, or null on timeout. */
export async function ping(
  host: string,
  options: { timeoutMs?: number } = {},
): Promise<number | null> {
  const timeoutMs = Math.round(options.timeoutMs ?? 2000);
  if (!(timeoutMs >= 1 && timeoutMs <= 60_000)) {
    throw new RangeError(`Cannot ping: timeoutMs must be 1-60000: received ${options.timeoutMs}`);
  }
  const from = parseIPv4(host);
  const c = libc();
  const fd = c.socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (fd < 0) throw new Error(`Cannot open raw ICMP socket: ${strerror(errno())}`);
  try {
    // The receive timeout bounds each blocking recv on the worker thread.
    const tv = new Uint8Array(16);
    const tvv = new DataView(tv.buffer);
    tvv.setBigInt64(0, BigInt(Math.floor(timeoutMs / 1000)), true);
    tvv.setBigInt64(8, BigInt((timeoutMs % 1000) * 1000), true);
    if (c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) < 0) {
      throw new Error(`Cannot set SO_RCVTIMEO: ${strerror(errno())}`);
    }
    const id = (Deno.pid ^ 0x4e43) & 0xffff;
    const seq = nextSeq++ & 0xffff;
    const req = echoRequest(id, seq);
    const addr = sockaddrIn(host);
    const buf = new Uint8Array(1500);
    const start = performance.now();
    if (Number(c.sendto(fd, req, BigInt(req.length), 0, addr, addr.length)) < 0) {
      throw new Error(`Cannot send ICMP echo to ${host}: ${strerror(errno())}`);
    }
    while (performance.now() - start < timeoutMs) {
      const n = Number(await c.recvAsync(fd, buf, BigInt(buf.length), 0));
      const elapsed = performance.now() - start;
      if (n < 0) return null; // timed out (or failed) on the worker thread
      if (isEchoReply(buf.subarray(0, n), from, id, seq)) return elapsed;
    }
    return null;
  } finally {
    c.close(fd);
  }
}
