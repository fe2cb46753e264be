/**
 * Batched UDP I/O for the DNS server: libc `recvmmsg`/`sendmmsg` through Deno FFI on a socket of
 * our own, with packets landing straight in the codec's memory and answered in place, so a batch
 * of up to `slots` datagrams costs two system calls and no copy. It is the `--io mmsg` option of
 * `main_dns.ts`, beside the portable `Deno.listenDatagram` path, which cannot reach half of NSD's
 * rate on one core (see `docs/notes/dns_qps.md`). Linux only; needs `--allow-ffi`.
 *
 * The socket has SO_REUSEPORT, so several processes can serve one port (the kernel spreads
 * clients over them by a hash of the 4-tuple).
 *
 * @example
 * ```ts
 * import { serveUdpBatched } from "./udp_mmsg.ts";
 *
 * const memory = new Uint8Array(64 * 4096);
 * const server = serveUdpBatched({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   memory,
 *   slotBase: 0,
 *   slotSize: 4096,
 *   slots: 64,
 *   handle: (_ptr, len) => len, // echo every datagram back as it came
 * });
 * console.log(`echoing on 127.0.0.1:${server.port}`);
 * await server.close();
 * ```
 *
 * @module
 */
import { hasZone, parseIp, unbracket } from "../common/ip.ts";
import { C, callError, E, L, libc } from "./_libc.ts";
import type { ClientAddr } from "./handler.ts";

/**
 * The client address handed to `handle` (defined by the DNS handler): 16 bytes, an IPv4 address
 * in the first 4 and the rest zero. IPv4-mapped IPv6 sources (`::ffff:a.b.c.d` on a dual-stack
 * socket) are reported as family 4. The object is reused: read it during the call only.
 */
export type { ClientAddr };

/** Options of {@link serveUdpBatched}. */
export interface BatchedUdpOptions {
  /** IPv4 or IPv6 literal to bind (`0.0.0.0`, `::` for every address; brackets allowed). */
  hostname: string;
  /** UDP port; 0 picks a free one (read it back from `port`). */
  port: number;
  /** The codec's memory (a WASM memory view); packets land here. It must never grow. */
  memory: Uint8Array;
  /** Offset in `memory` of the first packet slot. */
  slotBase: number;
  /** Bytes per slot: the largest datagram read whole; larger ones are cut and counted. */
  slotSize: number;
  /** Number of slots: the most datagrams read (and answered) per system call. */
  slots: number;
  /**
   * Answers the datagram of `len` bytes at `ptr` (an offset into `memory`) in place and returns
   * the response length (at most `slotSize`); 0 sends nothing. `client` is reused: read it during
   * the call only. An exception drops that datagram and is counted in `stats.handlerErrors`.
   * `cut`: the datagram was longer than a slot and `len` bytes of it (a whole slot) are there.
   */
  handle(ptr: number, len: number, client: ClientAddr, cut: boolean): number;
}

/** Counters of a {@link BatchedUdpServer}; the object is live (updated in place). */
export interface BatchedUdpStats {
  /** Datagrams read, truncated ones included. */
  received: number;
  /** Responses handed to the kernel. */
  sent: number;
  /** `recvmmsg` calls that returned at least one datagram. */
  batches: number;
  /** Datagrams larger than a slot, handed to `handle` cut to the slot (`cut` true). */
  truncated: number;
  /** Datagrams dropped because `handle` threw or returned a bad length. */
  handlerErrors: number;
  /** Responses dropped because the kernel refused them or the socket stayed full. */
  sendErrors: number;
}

/** A running batched UDP server. */
export interface BatchedUdpServer {
  /** The bound port (the chosen one when `port` was 0). */
  readonly port: number;
  /** Stops reading, closes the socket and resolves once the loop has ended. */
  close(): Promise<void>;
  readonly stats: BatchedUdpStats;
}

/** The kernel caps `vlen` of recvmmsg/sendmmsg at UIO_MAXIOV (1024). */
export const MAX_SLOTS = 1024;
/** RFC 1035 §4.2.1: every DNS server must take 512-octet UDP messages. */
export const MIN_SLOT_SIZE = 512;
/** The largest UDP payload (a 16-bit length); nothing bigger can arrive. */
export const MAX_SLOT_SIZE = 65536;
/**
 * Socket buffers we ask for: ~4000 queries of ~1 KiB kernel truesize, a burst that can arrive
 * while the loop is yielding to the event loop. Forced past `net.core.rmem_max` when we have
 * CAP_NET_ADMIN, else capped by it.
 */
export const SOCKET_BUFFER_BYTES = 4 << 20;
/**
 * Longest run of batches before the loop yields to the event loop, so TCP, HTTP and timers in
 * the same process keep being served under a UDP flood.
 */
export const SLICE_MS = 2;
/**
 * How long the loop keeps retrying `recvmmsg` after the last datagram before it parks in
 * `poll` on a worker thread: under load the next query comes within microseconds, and a
 * retry (one system call) is much cheaper than the thread round trip of a wait (measured under
 * dnsperf: 1.3-2.8 k context switches/s instead of 15-22 k, at the same CPU per query).
 */
export const SPIN_MS = 0.05;
/**
 * Spin only after a batch of at least this many datagrams, i.e. under sustained load; a lightly
 * loaded server (one datagram per wake-up) parks at once instead of burning CPU per query.
 */
export const SPIN_MIN_BATCH = 2;
/** Bound of an idle wait for readability, so `close()` is noticed within about this long. */
export const IDLE_POLL_MS = 20;
/** Bound of one wait for the socket to become writable after EAGAIN/ENOBUFS. */
export const SEND_WAIT_MS = 5;
/** Waits for writability per batch before its remaining responses are dropped and counted. */
export const SEND_RETRIES = 8;
/** Consecutive failed `poll` calls (its errno is on a worker thread) before we give up. */
export const POLL_FAILURE_LIMIT = 100;

const POLLNVAL = 0x20;
const STEP_GOT = 0, STEP_EMPTY = 1, STEP_BLOCKED = 2;
const TWO32 = 2 ** 32;

/** A bind address in `struct sockaddr` form. */
interface BindAddr {
  family: number;
  sockaddr: Uint8Array;
}

function fail(msg: string, cls: ErrorConstructor = TypeError): never {
  throw new cls(`Cannot serve batched UDP: ${msg}`);
}

/** Builds the sockaddr to bind; throws a SyntaxError for anything but an IP literal. */
function bindAddr(hostname: unknown, port: unknown): BindAddr {
  if (typeof hostname !== "string") fail(`hostname must be a string: received ${typeof hostname}`);
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`port must be an integer in 0..65535: received ${String(port)}`, RangeError);
  }
  const bare = unbracket(hostname);
  const ip = hasZone(bare) ? null : parseIp(bare);
  if (ip?.family === 4) {
    const sa = new Uint8Array(L.SOCKADDR_IN);
    new DataView(sa.buffer).setUint16(0, C.AF_INET, true);
    new DataView(sa.buffer).setUint16(2, port, false);
    sa.set(ip.bytes.subarray(0, 4), 4);
    return { family: C.AF_INET, sockaddr: sa };
  }
  if (ip === null) {
    fail(
      `hostname must be an IPv4 or IPv6 literal (no names, no zone ids): received "${hostname}"`,
      SyntaxError,
    );
  }
  const sa = new Uint8Array(L.SOCKADDR_IN6);
  new DataView(sa.buffer).setUint16(0, C.AF_INET6, true);
  new DataView(sa.buffer).setUint16(2, port, false);
  sa.set(ip.bytes, 8);
  return { family: C.AF_INET6, sockaddr: sa };
}

/** Checks the memory and slot layout; throws TypeError/RangeError naming the bad field. */
function checkLayout(opts: BatchedUdpOptions): void {
  if (!(opts.memory instanceof Uint8Array)) fail("memory must be a Uint8Array");
  if (opts.memory.byteLength === 0) fail("memory is empty or detached", RangeError);
  if (typeof opts.handle !== "function") fail("handle must be a function");
  const { slotBase, slotSize, slots } = opts;
  if (!Number.isInteger(slotSize) || slotSize < MIN_SLOT_SIZE || slotSize > MAX_SLOT_SIZE) {
    fail(
      `slotSize must be an integer in ${MIN_SLOT_SIZE}..${MAX_SLOT_SIZE}: received ${slotSize}`,
      RangeError,
    );
  }
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) {
    fail(`slots must be an integer in 1..${MAX_SLOTS}: received ${slots}`, RangeError);
  }
  if (!Number.isInteger(slotBase) || slotBase < 0) {
    fail(`slotBase must be a non-negative integer: received ${slotBase}`, RangeError);
  }
  const end = slotBase + slotSize * slots;
  if (end > opts.memory.byteLength) {
    fail(
      `slots [${slotBase}, ${end}) do not fit in memory of ${opts.memory.byteLength} bytes`,
      RangeError,
    );
  }
}

/** Address of the first byte of a view as a number (user-space addresses are below 2^53). */
function addressOf(view: ArrayBuffer | Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(view)));
}

/** Opens, configures and binds the socket; returns its fd and bound port. */
function openSocket(addr: BindAddr): { fd: number; port: number } {
  const { sym, errno } = libc();
  const fd = sym.socket(addr.family, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw callError("socket", errno());
  try {
    const one = new Uint8Array(new Int32Array([1]).buffer);
    for (
      const [name, opt] of [["SO_REUSEADDR", C.SO_REUSEADDR], ["SO_REUSEPORT", C.SO_REUSEPORT]]
    ) {
      if (sym.setsockopt(fd, C.SOL_SOCKET, opt as number, one, 4) < 0) {
        throw callError("setsockopt", errno(), name as string);
      }
    }
    const size = new Uint8Array(new Int32Array([SOCKET_BUFFER_BYTES]).buffer);
    for (
      const [force, plain, name] of [
        [C.SO_RCVBUFFORCE, C.SO_RCVBUF, "SO_RCVBUF"],
        [C.SO_SNDBUFFORCE, C.SO_SNDBUF, "SO_SNDBUF"],
      ] as const
    ) {
      // The forced form needs CAP_NET_ADMIN; without it the plain form is capped by sysctl.
      if (sym.setsockopt(fd, C.SOL_SOCKET, force, size, 4) < 0) {
        if (sym.setsockopt(fd, C.SOL_SOCKET, plain, size, 4) < 0) {
          throw callError("setsockopt", errno(), name);
        }
      }
    }
    if (sym.bind(fd, addr.sockaddr, addr.sockaddr.length) < 0) {
      const ip = addr.family === C.AF_INET ? "IPv4" : "IPv6";
      const port = new DataView(addr.sockaddr.buffer).getUint16(2, false);
      throw callError("bind", errno(), `${ip} port ${port}`);
    }
    const bound = new Uint8Array(L.SOCKADDR_STORAGE);
    const len = new Uint8Array(new Uint32Array([L.SOCKADDR_STORAGE]).buffer);
    if (sym.getsockname(fd, bound, len) < 0) throw callError("getsockname", errno());
    return { fd, port: (bound[2] << 8) | bound[3] };
  } catch (e) {
    sym.close(fd);
    throw e;
  }
}

/**
 * Serves UDP on `hostname:port` with batched reads and writes: each datagram is read into a
 * slot of `memory`, `handle` answers it in place, and the answers leave in one `sendmmsg`.
 * Throws synchronously on a bad option or a failed socket/bind; a later fatal socket error
 * closes the socket and is reported as an uncaught error (`reportError`), like an exception in
 * a listener loop.
 */
export function serveUdpBatched(opts: BatchedUdpOptions): BatchedUdpServer {
  if (opts === null || typeof opts !== "object") fail("options must be an object");
  checkLayout(opts);
  const addr = bindAddr(opts.hostname, opts.port);
  const { sym, errno } = libc();
  const { memory, slotBase, slotSize, slots } = opts;
  const { fd, port } = openSocket(addr);

  // Control block, set up once: receive headers, send headers, iovecs, sockaddrs, one pollfd.
  const RECV_HDRS = 0;
  const SEND_HDRS = RECV_HDRS + slots * L.MMSGHDR;
  const RECV_IOV = SEND_HDRS + slots * L.MMSGHDR;
  const SEND_IOV = RECV_IOV + slots * L.IOVEC;
  const NAMES = SEND_IOV + slots * L.IOVEC;
  const POLLFD = NAMES + slots * L.SOCKADDR_STORAGE;
  const ctrl = new ArrayBuffer(POLLFD + L.POLLFD);
  const u8 = new Uint8Array(ctrl);
  const u32 = new Uint32Array(ctrl);
  const dv = new DataView(ctrl);
  const base = addressOf(ctrl);
  const memBase = addressOf(memory);
  const setPtr = (off: number, addr: number) => {
    dv.setUint32(off, addr % TWO32, true);
    dv.setUint32(off + 4, Math.floor(addr / TWO32), true);
  };
  for (let i = 0; i < slots; i++) {
    const h = RECV_HDRS + i * L.MMSGHDR, s = SEND_HDRS + i * L.MMSGHDR;
    setPtr(h + L.MSG_NAME, base + NAMES + i * L.SOCKADDR_STORAGE);
    dv.setUint32(h + L.MSG_NAMELEN, L.SOCKADDR_STORAGE, true);
    setPtr(h + L.MSG_IOV, base + RECV_IOV + i * L.IOVEC);
    dv.setUint32(h + L.MSG_IOVLEN, 1, true);
    setPtr(RECV_IOV + i * L.IOVEC + L.IOV_BASE, memBase + slotBase + i * slotSize);
    dv.setUint32(RECV_IOV + i * L.IOVEC + L.IOV_LEN, slotSize, true);
    setPtr(s + L.MSG_IOV, base + SEND_IOV + i * L.IOVEC);
    dv.setUint32(s + L.MSG_IOVLEN, 1, true);
  }
  dv.setInt32(POLLFD, fd, true);
  const recvView = new Uint8Array(ctrl, RECV_HDRS, slots * L.MMSGHDR);
  // sendmmsg resumes after a partial send from header `j`: one view per start, made once.
  const sendViews = Array.from(
    { length: slots },
    (_, j) => new Uint8Array(ctrl, SEND_HDRS + j * L.MMSGHDR, (slots - j) * L.MMSGHDR),
  );
  const pollView = new Uint8Array(ctrl, POLLFD, L.POLLFD);
  // Which receive slot each send header points at now (-1: none yet); rewritten only on change.
  const sendSlot = new Int32Array(slots).fill(-1);

  const stats: BatchedUdpStats = {
    received: 0,
    sent: 0,
    batches: 0,
    truncated: 0,
    handlerErrors: 0,
    sendErrors: 0,
  };
  const client: ClientAddr = { family: 4, bytes: new Uint8Array(16) };
  const cb = client.bytes;
  let lastCount = 0; // headers whose msg_namelen the kernel overwrote
  let sendFrom = 0, sendCount = 0, sendWaits = 0;
  let closing = false;
  let busy = false; // the last batch was big enough to spin for the next

  function checkMemory(): void {
    if (memory.byteLength === 0) {
      throw new Error(
        "Batched UDP: the codec memory was detached (it grew); packets would land in freed memory",
      );
    }
  }

  /** Sends headers [sendFrom, sendCount); STEP_BLOCKED when the socket is full. */
  function flush(): number {
    while (sendFrom < sendCount) {
      const k = sym.sendmmsg(fd, sendViews[sendFrom], sendCount - sendFrom, 0);
      if (k > 0) {
        sendFrom += k;
        stats.sent += k;
        continue;
      }
      const e = k < 0 ? errno() : E.EAGAIN;
      if (e === E.EINTR) continue;
      if (e === E.EAGAIN || e === E.ENOBUFS || e === E.ENOMEM) return STEP_BLOCKED;
      // An error about this one datagram (a firewall's EPERM, EINVAL for source port 0, an
      // unreachable network): drop it and go on with the rest.
      stats.sendErrors++;
      sendFrom++;
    }
    sendFrom = sendCount = sendWaits = 0;
    return STEP_GOT;
  }

  /** One batch: read, answer, send. */
  function step(): number {
    checkMemory();
    for (let i = 0; i < lastCount; i++) {
      u32[(RECV_HDRS + i * L.MMSGHDR + L.MSG_NAMELEN) >> 2] = L.SOCKADDR_STORAGE;
    }
    const n = sym.recvmmsg(fd, recvView, slots, C.MSG_DONTWAIT, null);
    if (n <= 0) {
      lastCount = 0;
      if (n === 0) return STEP_EMPTY;
      const e = errno();
      if (e === E.EAGAIN || e === E.ENOMEM || e === E.ENOBUFS) return STEP_EMPTY;
      if (e === E.EINTR) return STEP_GOT;
      throw callError("recvmmsg", e);
    }
    lastCount = n;
    busy = n >= SPIN_MIN_BATCH;
    stats.batches++;
    stats.received += n;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const h = (RECV_HDRS + i * L.MMSGHDR) >> 2;
      const cut = (u32[h + (L.MSG_FLAGS >> 2)] & C.MSG_TRUNC) !== 0;
      if (cut) stats.truncated++;
      const nb = NAMES + i * L.SOCKADDR_STORAGE;
      const fam = u8[nb] | (u8[nb + 1] << 8);
      if (fam === C.AF_INET) {
        client.family = 4;
        cb[0] = u8[nb + 4], cb[1] = u8[nb + 5], cb[2] = u8[nb + 6], cb[3] = u8[nb + 7];
        for (let k = 4; k < 16; k++) cb[k] = 0;
      } else {
        // AF_INET6: address at offset 8; ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket.
        const a = nb + 8;
        let mapped = u8[a + 10] === 0xff && u8[a + 11] === 0xff;
        for (let k = 0; k < 10 && mapped; k++) mapped = u8[a + k] === 0;
        if (mapped) {
          client.family = 4;
          cb[0] = u8[a + 12], cb[1] = u8[a + 13], cb[2] = u8[a + 14], cb[3] = u8[a + 15];
          for (let k = 4; k < 16; k++) cb[k] = 0;
        } else {
          client.family = 6;
          for (let k = 0; k < 16; k++) cb[k] = u8[a + k];
        }
      }
      let r: number;
      try {
        r = opts.handle(
          slotBase + i * slotSize,
          cut ? slotSize : u32[h + (L.MSG_LEN >> 2)],
          client,
          cut,
        );
      } catch {
        stats.handlerErrors++;
        continue;
      }
      if (r === 0) continue;
      if (!((r >>> 0) === r && r <= slotSize)) {
        stats.handlerErrors++;
        continue;
      }
      const s = SEND_HDRS + m * L.MMSGHDR;
      if (sendSlot[m] !== i) {
        sendSlot[m] = i;
        setPtr(s + L.MSG_NAME, base + nb);
        setPtr(SEND_IOV + m * L.IOVEC + L.IOV_BASE, memBase + slotBase + i * slotSize);
      }
      u32[(s + L.MSG_NAMELEN) >> 2] = u32[h + (L.MSG_NAMELEN >> 2)];
      u32[(SEND_IOV + m * L.IOVEC + L.IOV_LEN) >> 2] = r;
      m++;
    }
    if (m === 0) return STEP_GOT;
    checkMemory();
    sendFrom = 0;
    sendCount = m;
    return flush();
  }

  let pollFailures = 0;
  /** Waits (on a worker thread) until the socket is ready for `events` or `ms` pass. */
  async function wait(events: number, ms: number): Promise<void> {
    dv.setInt16(POLLFD + 4, events, true);
    dv.setInt16(POLLFD + 6, 0, true);
    const r = await sym.poll(pollView, 1n, ms);
    if (r < 0) {
      if (++pollFailures >= POLL_FAILURE_LIMIT) {
        throw new Error(`poll failed ${pollFailures} times in a row on the batched UDP socket`);
      }
      return;
    }
    pollFailures = 0;
    if (r > 0 && dv.getInt16(POLLFD + 6, true) & POLLNVAL) {
      throw new Error(`poll: the batched UDP socket (fd ${fd}) is no longer open (POLLNVAL)`);
    }
  }

  async function run(): Promise<void> {
    while (!closing) {
      let now = performance.now(), lastWork = now;
      const sliceEnd = now + SLICE_MS;
      let state: number;
      do {
        state = step();
        now = performance.now();
        if (state === STEP_GOT) lastWork = now;
        else if (state === STEP_EMPTY && busy && now - lastWork < SPIN_MS) state = STEP_GOT;
      } while (state === STEP_GOT && !closing && now < sliceEnd);
      if (state === STEP_BLOCKED) {
        // The socket buffer is full: wait for room, a bounded number of times per batch.
        do {
          if (++sendWaits > SEND_RETRIES) {
            stats.sendErrors += sendCount - sendFrom;
            sendFrom = sendCount = sendWaits = 0;
            break;
          }
          await wait(C.POLLOUT, SEND_WAIT_MS);
        } while (flush() === STEP_BLOCKED && !closing);
      } else if (state === STEP_EMPTY) {
        await wait(C.POLLIN, IDLE_POLL_MS);
      } else {
        // Slice used up under load: a zero-timeout poll is a real turn of the event loop
        // (setTimeout(0) would be clamped to milliseconds once nested).
        await wait(C.POLLIN, 0);
      }
    }
  }

  const done = run().finally(() => {
    sym.close(fd);
  }).catch((err) => {
    reportError(err);
  });

  return {
    port,
    stats,
    close(): Promise<void> {
      closing = true;
      return done;
    },
  };
}
