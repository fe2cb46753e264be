/**
 * Test harness for the DNS server (private to the tests): start `main_dns.ts` as a real
 * subprocess with a temporary config, run real `dig`/`kdig` against it and parse what they
 * print. Everything it starts is stopped and removed by `close()`, which tests call in
 * `finally`.
 *
 * @module
 */

/** Longest wait for a server to print its port: a cold start compiles the modules. */
export const START_TIMEOUT_MS = 20_000;
/** Longest wait for a server to exit after SIGTERM before it is killed. */
export const STOP_TIMEOUT_MS = 5_000;
/** Longest a `dig`/`kdig` run may take (they also get +time=2 +tries=1 / +retry=0). */
export const CLIENT_TIMEOUT_MS = 10_000;

const MAIN = new URL("../../main_dns.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** Rejects after `ms` with `what` unless `p` settles first. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A running server subprocess. */
export interface ServerProcess {
  readonly port: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Stops the process (SIGTERM, then SIGKILL) and removes its temp files. */
  close(): Promise<Deno.CommandStatus>;
}

/** Result of a process that ran to its end. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `main_dns.ts` with `args` to completion (for bad-config cases that must exit). */
export async function runMain(args: string[], cwd?: string): Promise<RunResult> {
  const out = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      cwd,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output(),
    START_TIMEOUT_MS,
    `main_dns.ts ${args.join(" ")}`,
  );
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * Starts `main_dns.ts -p 0 -n ZONE` with `config` written to a temp file (none when null) and
 * `extra` arguments; resolves once it has printed its port.
 */
export async function startServer(
  zone: string,
  config: unknown | null,
  extra: string[] = [],
): Promise<ServerProcess> {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_dns_test_" });
  const args = ["run", "-A", MAIN, "-p", "0", "-n", zone, ...extra];
  if (config !== null) {
    const file = `${dir}/cdn.json`;
    await Deno.writeTextFile(file, JSON.stringify(config, null, 2));
    args.push("--config", file);
  }
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let text = "";
  let portFound: (port: number) => void = () => {};
  const portSeen = new Promise<number>((resolve) => (portFound = resolve));
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      const m = /dns: serving \S+ on \S+ port (\d+)/.exec(text);
      if (m) portFound(Number(m[1]));
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let closed: Promise<Deno.CommandStatus> | null = null;
  const close = () => {
    closed ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
      let status: Deno.CommandStatus;
      try {
        status = await within(child.status, STOP_TIMEOUT_MS, "server exit after SIGTERM");
      } catch {
        try {
          child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
        status = await child.status;
      }
      await pumps;
      await Deno.remove(dir, { recursive: true });
      return status;
    })();
    return closed;
  };
  try {
    const port = await within(
      Promise.race([
        portSeen,
        child.status.then((s) => {
          throw new Error(`server exited with ${s.code} before serving:\n${text}`);
        }),
      ]),
      START_TIMEOUT_MS,
      "server start",
    );
    return { port, output: () => text, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** One resource record as dig/kdig print it. */
export interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

/** What dig/kdig printed, parsed. */
export interface DigResult {
  /** RCODE name, e.g. NOERROR, NXDOMAIN, BADVERS. */
  status: string;
  flags: Set<string>;
  question: string;
  answer: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  /** The ECS option of the reply, e.g. `198.51.100.0/24/24`, or null. */
  ecs: string | null;
  /** The EDNS UDP size the server advertised, or null without OPT. */
  udpSize: number | null;
  raw: string;
}

function section(raw: string, name: string): DigRecord[] {
  const at = raw.indexOf(`;; ${name} SECTION:`);
  if (at === -1) return [];
  const lines = raw.slice(at).split("\n").slice(1);
  const out: DigRecord[] = [];
  for (const line of lines) {
    if (line.trim() === "" || line.startsWith(";;")) break;
    if (line.startsWith(";")) continue;
    const f = line.trim().split(/\s+/);
    out.push({ name: f[0], ttl: Number(f[1]), type: f[3], data: f.slice(4).join(" ") });
  }
  return out;
}

/** Parses dig or kdig output (both are accepted; kdig capitalises some words). */
export function parseDig(raw: string): DigResult {
  const status = /status: ([A-Z]+)/.exec(raw)?.[1] ?? "";
  const flagText = /;; flags: ([a-z ]*);/i.exec(raw)?.[1] ?? "";
  const q = /;; QUESTION SECTION:\n;;?\s*(\S+)/.exec(raw)?.[1] ?? "";
  const size = /udp: (\d+)|UDP size: (\d+)/.exec(raw);
  return {
    status,
    flags: new Set(flagText.trim().split(/\s+/).filter(Boolean)),
    question: q,
    answer: section(raw, "ANSWER"),
    authority: section(raw, "AUTHORITY"),
    additional: section(raw, "ADDITIONAL"),
    ecs: /CLIENT-SUBNET: (\S+)/.exec(raw)?.[1] ?? null,
    udpSize: size ? Number(size[1] ?? size[2]) : null,
    raw,
  };
}

/** Runs a client program (dig, kdig) with `args` to its end, bounded in time. */
export async function runClient(program: string, args: string[]): Promise<RunResult> {
  const out = await within(
    new Deno.Command(program, { args, stdout: "piped", stderr: "piped", stdin: "null" }).output(),
    CLIENT_TIMEOUT_MS,
    `${program} ${args.join(" ")}`,
  );
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Runs a client program with `args` and returns its stdout; throws if it fails. */
async function client(program: string, args: string[]): Promise<string> {
  const out = await runClient(program, args);
  if (out.code !== 0) {
    throw new Error(`${program} ${args.join(" ")} failed: ${out.stdout}${out.stderr}`);
  }
  return out.stdout;
}

/** `dig @127.0.0.1 -p PORT ARGS` (one try, 2 s), parsed. */
export async function dig(port: number, ...args: string[]): Promise<DigResult> {
  return parseDig(
    await client("dig", ["@127.0.0.1", "-p", String(port), "+time=2", "+tries=1", ...args]),
  );
}

/** `kdig @127.0.0.1 -p PORT ARGS` (no retry, 2 s), parsed. */
export async function kdig(port: number, ...args: string[]): Promise<DigResult> {
  return parseDig(
    await client("kdig", ["@127.0.0.1", "-p", String(port), "+time=2", "+retry=0", ...args]),
  );
}

/** Options of {@link buildQuery}. */
export interface QueryOptions {
  id?: number;
  type?: number;
  qclass?: number;
  /** Header flags word (default 0x0100: RD). */
  flags?: number;
  /** Append an OPT record advertising this UDP size. */
  ednsSize?: number;
}

/** A DNS query in wire form, for raw-socket tests (the server itself never builds bytes). */
export function buildQuery(name: string, o: QueryOptions = {}): Uint8Array {
  const bytes: number[] = [];
  const u16 = (v: number) => bytes.push((v >> 8) & 0xff, v & 0xff);
  u16(o.id ?? 0x1234);
  u16(o.flags ?? 0x0100);
  u16(1);
  u16(0);
  u16(0);
  u16(o.ednsSize === undefined ? 0 : 1);
  for (const label of name.split(".").filter(Boolean)) {
    bytes.push(label.length, ...new TextEncoder().encode(label));
  }
  bytes.push(0);
  u16(o.type ?? 1);
  u16(o.qclass ?? 1);
  if (o.ednsSize !== undefined) {
    bytes.push(0); // root owner
    u16(41);
    u16(o.ednsSize);
    u16(0);
    u16(0);
    u16(0);
  }
  return Uint8Array.from(bytes);
}

/** The header fields of a response, for raw-socket tests. */
export interface Header {
  id: number;
  qr: boolean;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

/** Reads the 12-octet header of a DNS message. */
export function readHeader(m: Uint8Array): Header {
  if (m.length < 12) throw new RangeError(`not a DNS message: ${m.length} bytes`);
  const flags = (m[2] << 8) | m[3];
  const u16 = (at: number) => (m[at] << 8) | m[at + 1];
  return {
    id: u16(0),
    qr: (flags & 0x8000) !== 0,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0x0f,
    qdcount: u16(4),
    ancount: u16(6),
    nscount: u16(8),
    arcount: u16(10),
  };
}

/** A UDP socket on loopback for raw exchanges with a server on `port`. */
export function udpClient(port: number) {
  const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const server: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  return {
    send: (m: Uint8Array) => sock.send(m, server),
    /** The next datagram, or a timeout error after `ms`. */
    receive: async (ms = CLIENT_TIMEOUT_MS) => (await within(sock.receive(), ms, "udp reply"))[0],
    close: () => sock.close(),
  };
}

/** Reads one length-prefixed DNS message from a TCP stream; null at EOF. */
export async function readFramed(conn: Deno.Conn): Promise<Uint8Array | null> {
  const head = await readExactly(conn, 2);
  if (head === null) return null;
  const body = await readExactly(conn, (head[0] << 8) | head[1]);
  if (body === null) throw new Error("connection closed inside a message");
  return body;
}

/** Reads exactly `n` bytes; null when the stream ends before the first byte. */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const buf = new Uint8Array(n);
  let have = 0;
  while (have < n) {
    const r = await conn.read(buf.subarray(have));
    if (r === null) {
      if (have === 0) return null;
      throw new Error(`connection closed after ${have} of ${n} bytes`);
    }
    have += r;
  }
  return buf;
}

/** A message with its 2-octet length prefix (RFC 1035 §4.2.2). */
export function frame(m: Uint8Array): Uint8Array {
  const out = new Uint8Array(m.length + 2);
  out[0] = m.length >> 8;
  out[1] = m.length & 0xff;
  out.set(m, 2);
  return out;
}
