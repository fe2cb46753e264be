/**
 * The few libc calls the network tools need (TUN device, raw ICMP socket), through Deno FFI.
 * Linux only. Private to `tests/tools/`.
 */

/** Linux constants used by the tools (x86_64 and aarch64 share these values). */
export const O_RDWR = 2;
export const AF_INET = 2;
export const SOCK_RAW = 3;
export const IPPROTO_ICMP = 1;
export const SOL_SOCKET = 1;
export const SO_RCVTIMEO = 20;
/** `_IOW('T', 202, int)`: attach the open /dev/net/tun file to a named TUN/TAP device. */
export const TUNSETIFF = 0x400454ca;
/** A layer-3 device: reads and writes carry bare IP packets. */
export const IFF_TUN = 0x0001;
/** No 4-byte packet-information header in front of each packet. */
export const IFF_NO_PI = 0x1000;
/** `struct ifreq` is 40 bytes on 64-bit Linux: a 16-byte name, then a union (flags first). */
export const IFREQ_SIZE = 40;
export const IFNAMSIZ = 16;
export const EAGAIN = 11;
export const EINTR = 4;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** Blocking read, run on a worker thread so the event loop (and the timers) keep running. */
  readAsync: {
    name: "read",
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  /** Sleeps on a worker thread: a timer far finer than setTimeout's ~1-2 ms lateness. */
  usleepAsync: { name: "usleep", parameters: ["u32"], result: "i32", nonblocking: true },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  recvAsync: {
    name: "recv",
    parameters: ["i32", "buffer", "usize", "i32"],
    result: "isize",
    nonblocking: true,
  },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Libc | undefined;

/** Opens libc once per process. */
export function libc(): Libc {
  if (lib) return lib;
  if (Deno.build.os !== "linux") {
    throw new Error(`Cannot load libc: the network tools need Linux: received ${Deno.build.os}`);
  }
  const candidates = [
    "libc.so.6",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/aarch64-linux-gnu/libc.so.6",
  ];
  let last: unknown;
  for (const path of candidates) {
    try {
      lib = Deno.dlopen(path, SYMBOLS).symbols;
      return lib;
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`Cannot load libc: ${last}`);
}

/** The calling thread's errno. Only meaningful right after a synchronous call that failed. */
export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/** `strerror(code)` as a string. */
export function strerror(code: number): string {
  const p = libc().strerror(code);
  return p === null ? `errno ${code}` : `${Deno.UnsafePointerView.getCString(p)} (errno ${code})`;
}

/** A NUL-terminated copy of `s`, for `const char *` parameters. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A `struct sockaddr_in` for an IPv4 address in dotted form and a port. */
export function sockaddrIn(address: string, port = 0): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(16);
  const view = new DataView(buf.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  buf.set(parseIPv4(address), 4);
  return buf;
}

/** Dotted-quad IPv4 to 4 bytes; throws SyntaxError on anything else. */
export function parseIPv4(address: string): Uint8Array {
  const parts = address.split(".");
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  if (bytes.length !== 4 || bytes.some((b) => !(b >= 0 && b <= 255))) {
    throw new SyntaxError(`Cannot parse IPv4 address: received ${JSON.stringify(address)}`);
  }
  return new Uint8Array(bytes);
}
