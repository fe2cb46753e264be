/**
 * The DNS steering server: a handler (codec + policy) behind a UDP transport (portable or
 * batched) and a TCP transport on the same port.
 *
 * @example Serve a zone on a free loopback port, then stop
 * ```ts
 * import { startDnsServer } from "./server.ts";
 * import { defaultConfig } from "./config.ts";
 *
 * const server = await startDnsServer({ zone: "cdn.test", config: defaultConfig(), port: 0, codec: "ts" });
 * if (server.port <= 0) throw new Error("no port");
 * await server.close();
 * ```
 *
 * @module
 */
import type { DnsCodec } from "../dnswire/types.ts";
import { ClientCache } from "./clients.ts";
import type { DnsConfig } from "./config.ts";
import { isUnspecified, parseIp, unbracket } from "../common/ip.ts";
import { DnsHandler } from "./handler.ts";
import { DEFAULT_POLICY, SteeringEngine } from "./policy.ts";
import { ReplicaSet, replicasFromConfig, type SteeringPolicy } from "./steering.ts";
import { serveTcp, type TcpServer } from "./tcp.ts";
import { serveUdp } from "./udp.ts";
import { RateLimiter, type RrlOptions } from "./rrl.ts";

/** Codec implementations: the WebAssembly one, or the TypeScript reference. */
export const CODECS = ["wasm", "ts"] as const;
/** UDP transports: `Deno.listenDatagram`, or batched recvmmsg/sendmmsg through FFI (Linux). */
export const IO_MODES = ["portable", "mmsg"] as const;

/** UDP packet slots in codec scratch memory: 64 × 4096 (the codec contract guarantees room). */
export const UDP_SLOTS = 64;
/** Bytes per UDP slot: larger than any query worth answering (EDNS sizes we honour are 1232). */
export const UDP_SLOT_SIZE = 4096;
/** The TCP slot follows the UDP slots and holds one whole message (RFC 1035 §4.2.2). */
export const TCP_SLOT_SIZE = 65536;
/** Attempts to find a port free for both UDP and TCP when asked for port 0. */
export const BIND_ATTEMPTS = 20;

/** Options of {@link startDnsServer}. */
export interface DnsServerOptions {
  /** Zone apex, e.g. `cdn.test`. */
  zone: string;
  config: DnsConfig;
  /** Address to bind; default 127.0.0.1. */
  hostname?: string;
  /** Port for both UDP and TCP; 0 picks one free for both. */
  port: number;
  /** A codec instance, or which one to create (default `wasm`). */
  codec?: DnsCodec | (typeof CODECS)[number];
  /** UDP transport (default `portable`). */
  io?: (typeof IO_MODES)[number];
  /**
   * Steering policy; default the engine in its default mode over the config's replicas and geo
   * table (with no measurements: the nearest replica, rotation for unknown clients).
   */
  policy?: SteeringPolicy;
  /**
   * The replica registry the policy reads (a live fleet changes it); default: built from
   * `config.replicas`.
   */
  replicas?: ReplicaSet;
  /** Called with each exception the handler or a transport caught. */
  onError?: (error: unknown) => void;
  /**
   * Response rate limiting of UDP answers; absent or a rate of 0: none (the command line's
   * default is 200/s, `lib/dns/flags.ts`).
   */
  rrl?: RrlOptions;
  /** Most TCP connections per client address (default 16, `tcp.ts`). */
  tcpPerClient?: number;
}

/** A running server. */
export interface DnsServer {
  readonly hostname: string;
  readonly port: number;
  readonly handler: DnsHandler;
  readonly replicas: ReplicaSet;
  /** Transport counters merged with the handler's. */
  stats(): Record<string, number>;
  /** Stops both transports; resolves when every socket is closed. */
  close(): Promise<void>;
}

/** Creates a codec by name. The WASM module must have been built (`deno task build:wasm`). */
export async function createCodec(kind: (typeof CODECS)[number]): Promise<DnsCodec> {
  if (kind === "ts") {
    const { ReferenceCodec } = await import("../dnswire/reference.ts");
    return new ReferenceCodec();
  }
  const { createWasmCodec } = await import("../dnswire/wasm.ts");
  return createWasmCodec();
}

interface UdpLike {
  readonly port: number;
  readonly stats: object;
  close(): Promise<void>;
}

/** Starts the server; throws when the codec, the zone or a socket cannot be set up. */
export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const config = opts.config;
  const codec = typeof opts.codec === "object"
    ? opts.codec
    : await createCodec(opts.codec ?? "wasm");
  const need = UDP_SLOTS * UDP_SLOT_SIZE + TCP_SLOT_SIZE;
  if (codec.scratchSize < need) {
    throw new RangeError(
      `Cannot start DNS server: the codec has ${codec.scratchSize} scratch bytes, ${need} needed`,
    );
  }
  const replicas = opts.replicas ?? new ReplicaSet(replicasFromConfig(config.replicas));
  const policy = opts.policy ??
    new SteeringEngine({ mode: DEFAULT_POLICY, set: replicas, geo: config.geo });
  const bound = parseIp(unbracket(hostname));
  const isWildcard = bound !== null && isUnspecified(bound);
  const handler = new DnsHandler({
    codec,
    zone: opts.zone,
    config,
    policy,
    serverIpv4: bound?.family === 4 && !isWildcard ? bound : null,
    serverIpv6: bound?.family === 6 && !isWildcard ? bound : null,
    onError: opts.onError,
    rrl: opts.rrl && opts.rrl.rate > 0 ? new RateLimiter(opts.rrl) : null,
  });
  const clients = new ClientCache();
  const slotBase = codec.scratchBase;
  const tcpSlot = slotBase + UDP_SLOTS * UDP_SLOT_SIZE;

  async function startUdp(port: number): Promise<UdpLike> {
    if (opts.io === "mmsg") {
      const { serveUdpBatched } = await import("./udp_mmsg.ts");
      return serveUdpBatched({
        hostname,
        port,
        memory: codec.memory,
        slotBase,
        slotSize: UDP_SLOT_SIZE,
        slots: UDP_SLOTS,
        handle: (ptr, len, client, cut) => handler.respond(ptr, len, client, false, cut),
      });
    }
    return serveUdp({
      hostname,
      port,
      handler,
      slotBase,
      slotSize: UDP_SLOT_SIZE,
      slots: UDP_SLOTS,
      clients,
      onError: opts.onError,
    });
  }

  const startTcp = (port: number): TcpServer =>
    serveTcp({
      hostname,
      port,
      handler,
      slot: tcpSlot,
      idleTimeoutMs: config.tcp.idleTimeoutMs,
      maxConnections: config.tcp.maxConnections,
      perClient: opts.tcpPerClient,
      clients,
      onError: opts.onError,
    });

  let udp: UdpLike | null = null;
  let tcp: TcpServer | null = null;
  for (let attempt = 1; tcp === null; attempt++) {
    udp = await startUdp(opts.port);
    try {
      tcp = startTcp(udp.port);
    } catch (e) {
      await udp.close();
      // With port 0 the UDP port the kernel chose may be taken for TCP: try another.
      if (opts.port !== 0 || !(e instanceof Deno.errors.AddrInUse) || attempt >= BIND_ATTEMPTS) {
        throw e;
      }
    }
  }
  const u = udp!, t = tcp;
  let closing: Promise<void> | null = null;
  return {
    hostname,
    port: u.port,
    handler,
    replicas,
    stats() {
      const out: Record<string, number> = { ...handler.counters.snapshot() };
      const rrl = handler.rrl?.counters;
      out.rrl_limited = rrl?.limited ?? 0;
      out.rrl_slipped = rrl?.slipped ?? 0;
      out.rrl_dropped = rrl?.dropped ?? 0;
      for (const [k, v] of Object.entries(u.stats)) out[`udp_${k}`] = v as number;
      for (const [k, v] of Object.entries(t.stats)) out[`tcp_${k}`] = v as number;
      return out;
    },
    close() {
      closing ??= Promise.all([u.close(), t.close()]).then(() => {});
      return closing;
    },
  };
}
