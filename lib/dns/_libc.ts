/**
 * The few libc socket calls the batched UDP path needs, through Deno FFI (`--allow-ffi`), with
 * the Linux x86_64/aarch64 (LP64, asm-generic) constants and struct layouts they use. Private to
 * `lib/dns/`: only `udp_mmsg.ts` imports it. The library is opened on first use, so importing
 * this file needs no permission.
 *
 * @module
 */

/** Socket constants (Linux, `asm-generic/socket.h`, `bits/socket.h`, `netinet/in.h`). */
export const C = {
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_DGRAM: 2,
  /** `O_NONBLOCK`: every call returns EAGAIN instead of blocking the event loop. */
  SOCK_NONBLOCK: 0o4000,
  /** `O_CLOEXEC`: subprocesses we spawn do not inherit the socket. */
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_REUSEPORT: 15,
  /** Like SO_SNDBUF/SO_RCVBUF but above `net.core.[wr]mem_max`; needs CAP_NET_ADMIN. */
  SO_SNDBUFFORCE: 32,
  SO_RCVBUFFORCE: 33,
  IPPROTO_IPV6: 41,
  IPV6_V6ONLY: 26,
  MSG_TRUNC: 0x20,
  MSG_DONTWAIT: 0x40,
  POLLIN: 0x1,
  POLLOUT: 0x4,
} as const;

/** errno values the loop reacts to (Linux `asm-generic/errno*.h`). */
export const E = {
  EPERM: 1,
  EINTR: 4,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EINVAL: 22,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENOBUFS: 105,
} as const;

/**
 * Struct layouts (LP64 Linux). `struct mmsghdr` is a `struct msghdr` (56 bytes) and the
 * `msg_len` the kernel fills, padded to 64; `struct iovec` is a base pointer and a length.
 */
export const L = {
  MMSGHDR: 64,
  MSG_NAME: 0,
  MSG_NAMELEN: 8,
  MSG_IOV: 16,
  MSG_IOVLEN: 24,
  MSG_CONTROL: 32,
  MSG_CONTROLLEN: 40,
  MSG_FLAGS: 48,
  MSG_LEN: 56,
  IOVEC: 16,
  IOV_BASE: 0,
  IOV_LEN: 8,
  /** `struct sockaddr_storage`: room for any address family. */
  SOCKADDR_STORAGE: 128,
  SOCKADDR_IN: 16,
  SOCKADDR_IN6: 28,
  /** `struct pollfd`: int fd, short events, short revents. */
  POLLFD: 8,
} as const;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  /** Runs on a worker thread and returns a Promise, so waiting never blocks the event loop. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

/** The opened libc symbols plus a reader for the main thread's errno. */
export interface Libc {
  readonly sym: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** errno of the main thread, right after a synchronous call returned -1. */
  errno(): number;
}

let cached: Libc | undefined;

/** Opens libc once per process. Throws on a non-Linux OS or without `--allow-ffi`. */
export function libc(): Libc {
  if (cached) return cached;
  if (Deno.build.os !== "linux") {
    throw new Error(
      `Cannot use the batched UDP path: it needs Linux (recvmmsg/sendmmsg): running on ${Deno.build.os}`,
    );
  }
  const lib = Deno.dlopen("libc.so.6", SYMBOLS);
  // errno is thread-local; the location of the main thread's errno is fixed for its life, so
  // one pointer view serves every read.
  const loc = lib.symbols.__errno_location();
  if (loc === null) throw new Error("Cannot read errno: __errno_location returned NULL");
  const view = new Deno.UnsafePointerView(loc);
  cached = { sym: lib.symbols, errno: () => view.getInt32(0) };
  return cached;
}

/** The C library's text for an errno value, e.g. "Address already in use". */
export function strerror(errno: number): string {
  const p = libc().sym.strerror(errno);
  return p === null ? "unknown error" : Deno.UnsafePointerView.getCString(p);
}

/**
 * An Error for a failed libc call naming the call and errno; errno values that Deno has a class
 * for (address in use, not available, permission) get that class, like `Deno.listenDatagram`.
 */
export function callError(call: string, errno: number, context = ""): Error {
  const msg = `${call} failed${context ? ` (${context})` : ""}: errno ${errno} (${
    strerror(errno)
  })`;
  switch (errno) {
    case E.EADDRINUSE:
      return new Deno.errors.AddrInUse(msg);
    case E.EADDRNOTAVAIL:
      return new Deno.errors.AddrNotAvailable(msg);
    case E.EACCES:
    case E.EPERM:
      return new Deno.errors.PermissionDenied(msg);
    default:
      return new Error(msg);
  }
}
