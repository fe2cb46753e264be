/**
 * A user-space link emulator: every IP packet the kernel routes into a TUN device is held for
 * the one-way delay configured for its (source, destination) pair, then written back to the
 * TUN device, from where the kernel forwards it on. Delaying both directions of a host pair
 * by half the round trip makes a real TCP connect(), a refused one included, take that RTT.
 *
 * The kernel here has no `netem` qdisc, hence this tool. It is meant for scenario tests in
 * network namespaces (see `topology.ts`), and has three layers:
 *
 * - `DelayQueue` and `LinkEmulator`: pure logic with an injected clock and packet sink;
 * - `main()`: `deno run -A tests/tools/link_emulator.ts --tun tun0`, run inside the router
 *   namespace, reading JSON-line commands on stdin and answering on stdout;
 * - `EmulatorProcess`: the test-side handle that starts that process and sends it commands.
 *
 * @example Pure use, with a fake clock and sink
 * ```ts
 * import { LinkEmulator } from "./link_emulator.ts";
 * const sent: Uint8Array[] = [];
 * let now = 0;
 * const emu = new LinkEmulator({ send: (p) => sent.push(p), now: () => now });
 * emu.setDelay("10.77.1.2", "10.77.2.2", 20); // RTT 20 ms: 10 ms each way
 * ```
 */
import { parseArgs } from "node:util";
import { MAX_PACKET, TunDevice } from "./tun.ts";
import { libc } from "./_libc.ts";

/** Source and destination of an IP packet, as text. */
export interface PacketAddresses {
  src: string;
  dst: string;
  /** The IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6). */
  protocol: number;
}

/** Reads the addresses of an IPv4 or IPv6 packet; null when it is neither or too short. */
export function packetAddresses(p: Uint8Array): PacketAddresses | null {
  if (p.length < 1) return null;
  const version = p[0] >> 4;
  if (version === 4 && p.length >= 20) {
    return { src: p.subarray(12, 16).join("."), dst: p.subarray(16, 20).join("."), protocol: p[9] };
  }
  if (version === 6 && p.length >= 40) {
    return { src: ipv6Text(p.subarray(8, 24)), dst: ipv6Text(p.subarray(24, 40)), protocol: p[6] };
  }
  return null;
}

/** 16 bytes to the canonical compressed IPv6 text form (RFC 5952). */
export function ipv6Text(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

interface Held<T> {
  due: number;
  seq: number;
  item: T;
}

/**
 * A time-ordered queue (binary min-heap on release time, ties in arrival order). A key keeps
 * its items in FIFO order even when its delay shrinks mid-flight, as a real path would.
 */
export class DelayQueue<T> {
  #heap: Held<T>[] = [];
  #seq = 0;
  #lastDue = new Map<string, number>();

  /** Items held. */
  get size(): number {
    return this.#heap.length;
  }

  /** Holds `item` until `now + delayMs` (or until the previous item of `key`, if later). */
  push(key: string, item: T, now: number, delayMs: number): number {
    const due = Math.max(now + delayMs, this.#lastDue.get(key) ?? -Infinity);
    this.#lastDue.set(key, due);
    const h = this.#heap;
    h.push({ due, seq: this.#seq++, item });
    for (let i = h.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
    return due;
  }

  /** Release time of the earliest item, or undefined when empty. */
  nextDue(): number | undefined {
    return this.#heap[0]?.due;
  }

  /** Removes and returns every item due at or before `now`, earliest first. */
  popDue(now: number): T[] {
    const out: T[] = [];
    const h = this.#heap;
    while (h.length > 0 && h[0].due <= now) {
      out.push(h[0].item);
      const last = h.pop()!;
      if (h.length === 0) break;
      h[0] = last;
      for (let i = 0;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    if (h.length === 0) this.#lastDue.clear();
    return out;
  }
}

function before<T>(a: Held<T>, b: Held<T>): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

/** Counters reported by `LinkEmulator.stats()`. */
export interface EmulatorStats {
  /** Packets read from the device. */
  received: number;
  /** Packets written back after their delay. */
  forwarded: number;
  /** Packets dropped: queue full, unparsable, failed writes, or emulated loss. */
  dropped: number;
  /** Of `dropped`, those dropped by the configured loss rate. */
  lost: number;
  /** Packets held right now. */
  queueDepth: number;
  /** The largest queue depth seen. */
  maxQueueDepth: number;
  /** Packets per direction, keyed `SRC>DST`. */
  pairs: Record<string, number>;
  /** The configured one-way delays in ms, keyed `SRC>DST`. */
  delays: Record<string, number>;
  /** The configured loss rates (0-1), keyed `SRC>DST`. */
  loss: Record<string, number>;
}

/** Options of `LinkEmulator`. */
export interface LinkEmulatorOptions {
  /** Where a packet goes once its delay has passed (the TUN device). */
  send: (packet: Uint8Array<ArrayBuffer>) => void;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
  /** One-way delay for pairs with none configured; default 0. */
  defaultOneWayMs?: number;
  /** The most packets held at once; more are dropped. Default 10000. */
  maxQueue?: number;
  /** Uniform random numbers in [0, 1) for emulated loss; default `Math.random`. */
  random?: () => number;
  /** Timer functions, injectable for tests; default the global ones. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (id: unknown) => void;
}

/** Delays packets per (source, destination) pair; see the module comment. */
export class LinkEmulator {
  #send: (packet: Uint8Array<ArrayBuffer>) => void;
  #now: () => number;
  #defaultMs: number;
  #maxQueue: number;
  #setTimer: (fn: () => void, ms: number) => unknown;
  #clearTimer: (id: unknown) => void;
  #delays = new Map<string, number>();
  #loss = new Map<string, number>();
  #random: () => number;
  #queue = new DelayQueue<Uint8Array<ArrayBuffer>>();
  #timer: unknown;
  #timerDue = Infinity;
  #stats = { received: 0, forwarded: 0, dropped: 0, lost: 0, maxQueueDepth: 0 };
  #pairs = new Map<string, number>();

  constructor(options: LinkEmulatorOptions) {
    this.#send = options.send;
    this.#now = options.now ?? (() => performance.now());
    this.#defaultMs = checkMs(options.defaultOneWayMs ?? 0, "defaultOneWayMs");
    this.#maxQueue = options.maxQueue ?? 10000;
    this.#random = options.random ?? Math.random;
    this.#setTimer = options.setTimer ?? preciseTimer;
    this.#clearTimer = options.clearTimer ?? clearPreciseTimer;
  }

  /** Sets the one-way delay of packets from `src` to `dst` (IP addresses as text). */
  setOneWayDelay(src: string, dst: string, ms: number): void {
    this.#delays.set(`${src}>${dst}`, checkMs(ms, "delay"));
  }

  /** Sets the round trip between `a` and `b`: half of `rttMs` each way. */
  setDelay(a: string, b: string, rttMs: number): void {
    checkMs(rttMs, "rttMs");
    this.setOneWayDelay(a, b, rttMs / 2);
    this.setOneWayDelay(b, a, rttMs / 2);
  }

  /**
   * Drops packets from `src` to `dst` at random with probability `rate` (0 to 1);
   * 1 cuts the direction off entirely (a partition), 0 restores it.
   */
  setOneWayLoss(src: string, dst: string, rate: number): void {
    if (!(rate >= 0 && rate <= 1)) {
      throw new RangeError(`Cannot set loss: rate must be 0-1: received ${rate}`);
    }
    if (rate === 0) this.#loss.delete(`${src}>${dst}`);
    else this.#loss.set(`${src}>${dst}`, rate);
  }

  /** Sets the loss rate of both directions between `a` and `b`. */
  setLoss(a: string, b: string, rate: number): void {
    this.setOneWayLoss(a, b, rate);
    this.setOneWayLoss(b, a, rate);
  }

  /** The one-way delay from `src` to `dst`. */
  oneWayDelay(src: string, dst: string): number {
    return this.#delays.get(`${src}>${dst}`) ?? this.#defaultMs;
  }

  /** Takes one packet read from the device; it is copied, so the caller may reuse the buffer. */
  handle(packet: Uint8Array): void {
    this.#stats.received++;
    const addr = packetAddresses(packet);
    if (!addr || this.#queue.size >= this.#maxQueue) {
      this.#stats.dropped++;
      return;
    }
    const key = `${addr.src}>${addr.dst}`;
    this.#pairs.set(key, (this.#pairs.get(key) ?? 0) + 1);
    const loss = this.#loss.get(key);
    if (loss !== undefined && this.#random() < loss) {
      this.#stats.dropped++;
      this.#stats.lost++;
      return;
    }
    const now = this.#now();
    const due = this.#queue.push(key, packet.slice(), now, this.oneWayDelay(addr.src, addr.dst));
    this.#stats.maxQueueDepth = Math.max(this.#stats.maxQueueDepth, this.#queue.size);
    if (due <= now) this.#flush();
    else this.#arm();
  }

  /** Current counters. */
  stats(): EmulatorStats {
    return {
      ...this.#stats,
      queueDepth: this.#queue.size,
      pairs: Object.fromEntries(this.#pairs),
      delays: Object.fromEntries(this.#delays),
      loss: Object.fromEntries(this.#loss),
    };
  }

  /** Stops the timer; packets still held are dropped. */
  close(): void {
    if (this.#timer !== undefined) this.#clearTimer(this.#timer);
    this.#timer = undefined;
    this.#stats.dropped += this.#queue.popDue(Infinity).length;
  }

  #flush(): void {
    for (const p of this.#queue.popDue(this.#now())) {
      try {
        this.#send(p);
        this.#stats.forwarded++;
      } catch {
        this.#stats.dropped++;
      }
    }
    this.#arm();
  }

  #arm(): void {
    const due = this.#queue.nextDue();
    if (due === undefined || due >= this.#timerDue) return;
    if (this.#timer !== undefined) this.#clearTimer(this.#timer);
    this.#timerDue = due;
    // A timer that fires early releases nothing and re-arms for the rest: no packet leaves
    // before its delay has passed.
    this.#timer = this.#setTimer(() => {
      this.#timer = undefined;
      this.#timerDue = Infinity;
      this.#flush();
    }, Math.max(0, due - this.#now()));
  }
}

interface PreciseTimer {
  cancelled: boolean;
  coarse?: ReturnType<typeof setTimeout>;
}

/** Waits longer than this go through setTimeout first, waking this much early. */
const COARSE_LEAD_MS = 4;

/**
 * A timer good to a fraction of a millisecond: setTimeout fires 1-2 ms late in Deno, which
 * would add 2-4 ms to every emulated round trip, so the last few milliseconds of each wait are
 * slept with usleep(3) on a worker thread (through FFI). Long waits start with setTimeout,
 * waking early; the caller then re-arms for the rest.
 */
export function preciseTimer(fn: () => void, ms: number): PreciseTimer {
  const t: PreciseTimer = { cancelled: false };
  if (ms > 2 * COARSE_LEAD_MS) {
    t.coarse = setTimeout(() => t.cancelled || fn(), ms - COARSE_LEAD_MS);
  } else {
    libc().usleepAsync(Math.ceil(ms * 1000)).then(() => t.cancelled || fn());
  }
  return t;
}

/** Cancels a `preciseTimer` (a sleep already under way ends on its own, doing nothing). */
export function clearPreciseTimer(t: unknown): void {
  const timer = t as PreciseTimer;
  timer.cancelled = true;
  if (timer.coarse !== undefined) clearTimeout(timer.coarse);
}

function checkMs(ms: number, what: string): number {
  if (!Number.isFinite(ms) || ms < 0 || ms > 60_000) {
    throw new RangeError(`Cannot set delay: ${what} must be 0-60000 ms: received ${ms}`);
  }
  return ms;
}

/** A command sent to the emulator process, one JSON object per line. */
export type EmulatorCommand =
  | { id?: number; op: "setDelay"; a: string; b: string; rttMs: number }
  | { id?: number; op: "setOneWayDelay"; src: string; dst: string; ms: number }
  | { id?: number; op: "setLoss"; a: string; b: string; rate: number }
  | { id?: number; op: "setOneWayLoss"; src: string; dst: string; rate: number }
  | { id?: number; op: "stats" }
  | { id?: number; op: "quit" };

/** Applies one command; returns the reply (without id). */
export function applyCommand(emu: LinkEmulator, cmd: EmulatorCommand): Record<string, unknown> {
  switch (cmd.op) {
    case "setDelay":
      emu.setDelay(cmd.a, cmd.b, cmd.rttMs);
      return { ok: true };
    case "setOneWayDelay":
      emu.setOneWayDelay(cmd.src, cmd.dst, cmd.ms);
      return { ok: true };
    case "setLoss":
      emu.setLoss(cmd.a, cmd.b, cmd.rate);
      return { ok: true };
    case "setOneWayLoss":
      emu.setOneWayLoss(cmd.src, cmd.dst, cmd.rate);
      return { ok: true };
    case "stats":
      return { ok: true, stats: emu.stats() };
    case "quit":
      return { ok: true };
    default:
      throw new TypeError(`Cannot apply command: unknown op: ${JSON.stringify(cmd)}`);
  }
}

/** Reads stdin as lines. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let nl;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl);
      rest = rest.slice(nl + 1);
    }
  }
  if (rest) yield rest;
}

/** The emulator process: `deno run -A tests/tools/link_emulator.ts --tun tun0`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      tun: { type: "string", default: "tun0" },
      "default-delay": { type: "string", default: "0" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(`Usage: deno run -A tests/tools/link_emulator.ts [--tun NAME] [--default-delay MS]

Delays every IP packet routed into a TUN device by the one-way delay of its
(source, destination) pair, then writes it back. Run it in the namespace that
owns the device. Commands arrive on stdin as JSON lines, replies go to stdout:
  {"id":1,"op":"setDelay","a":"10.77.1.2","b":"10.77.2.2","rttMs":20}
  {"id":2,"op":"setOneWayDelay","src":"10.77.1.2","dst":"10.77.2.2","ms":5}
  {"id":3,"op":"setLoss","a":"10.77.1.2","b":"10.77.2.2","rate":1}
  {"id":4,"op":"setOneWayLoss","src":"10.77.1.2","dst":"10.77.2.2","rate":0.1}
  {"id":5,"op":"stats"}
  {"id":6,"op":"quit"}
The process exits on "quit" or when stdin closes.

Options:
  --tun NAME           TUN device to attach (created if missing)   [tun0]
  --default-delay MS   one-way delay for pairs with none configured [0]
  -h, --help           show this help`);
    return;
  }
  const tun = TunDevice.open(values.tun);
  const emu = new LinkEmulator({
    send: (p) => tun.write(p),
    defaultOneWayMs: Number(values["default-delay"]),
  });
  const out = (o: unknown) => console.log(JSON.stringify(o));
  const pump = async () => {
    const buf = new Uint8Array(MAX_PACKET);
    for (;;) emu.handle(buf.subarray(0, await tun.read(buf)));
  };
  pump().catch((e) => {
    console.error(`link_emulator: ${e}`);
    Deno.exit(1);
  });
  out({ ready: true, tun: values.tun, pid: Deno.pid });
  for await (const line of lines(Deno.stdin.readable)) {
    if (!line.trim()) continue;
    let cmd: EmulatorCommand;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      out({ ok: false, error: `${e}` });
      continue;
    }
    try {
      out({ id: cmd.id, ...applyCommand(emu, cmd) });
    } catch (e) {
      out({ id: cmd.id, ok: false, error: e instanceof Error ? e.message : `${e}` });
    }
    if (cmd.op === "quit") break;
  }
  // A read may still be blocked on a worker thread; exiting ends it.
  Deno.exit(0);
}

/** The test-side handle of an emulator process (see `EmulatorProcess.start`). */
export class EmulatorProcess {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<number, (reply: Record<string, unknown>) => void>();
  #nextId = 1;
  #done: Promise<void>;
  #stderr = "";
  #stderrDone: Promise<void>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#stderrDone = this.#collectStderr();
    this.#done = this.#readReplies();
  }

  /**
   * Starts the emulator. `prefix` runs it where the TUN device must live, e.g.
   * `["ip", "netns", "exec", "nc-router"]`. Resolves once the device is attached.
   */
  static async start(
    prefix: string[],
    options: { tun?: string; defaultOneWayMs?: number; timeoutMs?: number } = {},
  ): Promise<EmulatorProcess> {
    const script = new URL(import.meta.url).pathname;
    const cmd = [
      ...prefix,
      Deno.execPath(),
      "run",
      "-A",
      "--no-config",
      script,
      "--tun",
      options.tun ?? "tun0",
      "--default-delay",
      String(options.defaultOneWayMs ?? 0),
    ];
    const child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    const emu = new EmulatorProcess(child);
    const ready = new Promise<Record<string, unknown>>((resolve) => emu.#pending.set(0, resolve));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("link emulator did not start in time")),
        options.timeoutMs ?? 30_000,
      );
    });
    try {
      await Promise.race([
        ready,
        timeout,
        emu.#done.then(() => {
          throw new Error(`link emulator exited before it was ready: ${emu.#stderr.trim()}`);
        }),
      ]);
    } catch (e) {
      await emu.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return emu;
  }

  /** The emulator's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Sets the round trip between two addresses (half each way). */
  async setDelay(a: string, b: string, rttMs: number): Promise<void> {
    await this.#call({ op: "setDelay", a, b, rttMs });
  }

  /** Sets the one-way delay from `src` to `dst`. */
  async setOneWayDelay(src: string, dst: string, ms: number): Promise<void> {
    await this.#call({ op: "setOneWayDelay", src, dst, ms });
  }

  /** Sets the loss rate (0-1) of both directions between two addresses; 1 partitions them. */
  async setLoss(a: string, b: string, rate: number): Promise<void> {
    await this.#call({ op: "setLoss", a, b, rate });
  }

  /** Sets the loss rate (0-1) of packets from `src` to `dst`. */
  async setOneWayLoss(src: string, dst: string, rate: number): Promise<void> {
    await this.#call({ op: "setOneWayLoss", src, dst, rate });
  }

  /** The emulator's counters. */
  async stats(): Promise<EmulatorStats> {
    return (await this.#call({ op: "stats" })).stats as EmulatorStats;
  }

  /** Stops the emulator (quit, then SIGKILL if it does not exit within 3 s). */
  async close(): Promise<void> {
    try {
      await this.#writer.write(new TextEncoder().encode('{"op":"quit"}\n'));
      await this.#writer.close();
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already exited */ }
    }, 3000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#done;
    await this.#stderrDone;
  }

  async #call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const reply = new Promise<Record<string, unknown>>((resolve) => this.#pending.set(id, resolve));
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ ...cmd, id }) + "\n"));
    const r = await reply;
    if (!r.ok) throw new Error(`link emulator: ${r.error}`);
    return r;
  }

  async #readReplies(): Promise<void> {
    for await (const line of lines(this.#child.stdout)) {
      let r: Record<string, unknown>;
      try {
        r = JSON.parse(line);
      } catch {
        continue;
      }
      const id = r.ready ? 0 : Number(r.id);
      this.#pending.get(id)?.(r);
      this.#pending.delete(id);
    }
    await this.#stderrDone;
    for (const resolve of this.#pending.values()) {
      resolve({ ok: false, error: `emulator exited: ${this.#stderr.trim()}` });
    }
    this.#pending.clear();
  }

  async #collectStderr(): Promise<void> {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
    }
  }
}

if (import.meta.main) await main(Deno.args);
