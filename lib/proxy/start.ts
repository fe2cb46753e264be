/**
 * Starts the routing proxy from its {@link ProxyConfig}: the server list from the node, the
 * price feed, a first round of probes (so the first request is routed on measurements), then
 * the limited listener (lib/common/http_server.ts: connection cap, header and idle timeouts).
 *
 * @module
 */

import { isLoopback, parseIp } from "../common/ip.ts";
import { type LimitedServer, serveLimited, writeListenerMetrics } from "../common/http_server.ts";
import { listenError, StartError } from "../common/cli.ts";
import type { ProxyConfig } from "./config.ts";
import { createHandler } from "./handler.ts";
import { Prober } from "./probe.ts";
import { openPriceFeed } from "./prices.ts";
import type { PriceLookup, PriceQuote } from "./select.ts";
import { ServerList } from "./server_list.ts";
import { UpstreamPool } from "./upstream.ts";
import { trustCa } from "../tls/client.ts";
import { loadCa } from "../tls/files.ts";

/** Exit code when the proxy cannot listen. */
export const PROXY_EXIT_LISTEN = 4;
/** Longest wait for the first probe round before listening anyway. */
const FIRST_PROBES_MS = 3_000;

/** Prices by provider name, kept fresh (the pricing service's client). */
export interface PriceSource {
  start(): Promise<void>;
  close(): void;
  /** Price per GiB of a provider, if known. */
  quote(provider: string): PriceQuote | undefined;
  /** State for explain (version, health). */
  state(): unknown;
}

/** A running proxy. */
export interface RunningProxy {
  addr: Deno.NetAddr;
  server: LimitedServer;
  explain(): unknown;
  shutdown(): Promise<void>;
}

/** Options of {@link startProxy}. */
export interface StartOptions {
  log: (line: string) => void;
  /** Opens the price source for `--price URL` (default: the pricing service's feed). */
  openPrices?: (url: string, log: (line: string) => void) => PriceSource;
}

/** See the module doc. */
export async function startProxy(c: ProxyConfig, o: StartOptions): Promise<RunningProxy> {
  const { log } = o;
  const now = () => performance.now();
  let caPem: string | null = null;
  if (c.caFile !== undefined) {
    try {
      caPem = await loadCa(c.caFile);
    } catch (e) {
      throw new StartError((e as Error).message);
    }
    trustCa(caPem);
  }
  const pool = new UpstreamPool(caPem === null ? c.pool : { ...c.pool, caPem });
  let prober: Prober | null = null;
  const list = new ServerList({
    node: c.node,
    refreshMs: c.refreshMs,
    requestTimeoutMs: Math.max(1_000, c.pool.connectTimeoutMs),
    decayMs: c.decayMs,
    ejection: c.ejection,
    log,
    onAdded: (s) => prober?.add(s),
  });
  let prices: PriceSource | null = null;
  try {
    await list.start();
  } catch (e) {
    pool.close();
    throw new StartError(`cannot get the server list: ${(e as Error).message}`);
  }
  const names = () =>
    c.names.length > 0
      ? c.names
      : list.reportedName === null
      ? []
      : [list.reportedName.toLowerCase()];
  if (c.names.length === 0 && list.reportedName === null) await list.findName();
  if (names().length === 0) {
    list.close();
    pool.close();
    const others = list.servers.filter((s) => s.info.url !== c.node).length;
    throw new StartError(
      `--name is required: the node at ${c.node}${
        others === 0 ? "" : ` (nor any of the ${others} other servers it lists)`
      } reports no CDN name (cdnName in /_cdn/health: nodes started with --announce or ` +
        `--cdn-name report one); pass --name CDN_HOST`,
    );
  }
  if (c.price !== null) {
    prices = (o.openPrices ?? openPriceFeed)(c.price, log);
    try {
      await prices.start();
    } catch (e) {
      // The feed keeps retrying: until it answers, every price is unknown (README).
      log(`proxy: no prices yet (retrying): ${(e as Error).message}`);
    }
  }
  prober = new Prober(() => list.servers, { pool, intervalMs: c.probeIntervalMs, now, log });
  await Promise.race([prober.start(), new Promise((r) => setTimeout(r, FIRST_PROBES_MS))]);

  const lookup: PriceLookup = (p) => prices?.quote(p);
  const via = `1.1 nearcast-proxy-${crypto.randomUUID().slice(0, 6)}`;
  let port = "";
  const listenHost = c.host.toLowerCase();
  const isSelf = (_host: string, hostname: string, p: string) => {
    if (p !== port) return false;
    if (hostname === listenHost || hostname === "localhost") return true;
    const ip = parseIp(hostname.replace(/^\[|\]$/g, ""));
    return ip !== null && (isLoopback(ip) || listenHost === "0.0.0.0" || listenHost === "::");
  };
  const handler = createHandler({
    pool,
    now,
    log,
    servers: () => list.servers,
    prices: lookup,
    priceState: () => prices?.state() ?? null,
    listState: () => ({ node: c.node, ...list.last, agoMs: Math.round(Date.now() - list.last.at) }),
    listenerState: () => server === undefined ? null : { ...server.stats },
    listenerMetrics: (e) => {
      if (server !== undefined) writeListenerMetrics(e, server.stats, server.limits);
    },
    mode: c.mode,
    maxExtraMs: c.maxExtraMs,
    pick: c.pick,
    other: c.other,
    names,
    isSelf,
    via,
  });
  let server: LimitedServer | undefined;
  try {
    server = serveLimited({
      port: c.port,
      hostname: c.host,
      ...c.limits,
      name: "proxy",
      log,
      onListen: (a) => {
        port = String(a.port);
        log(
          `proxy: listening on http://${c.host}:${a.port}/ (mode ${c.mode}, CDN ${
            names().join(", ")
          }, ${list.servers.length} servers)`,
        );
      },
    }, handler);
  } catch (e) {
    list.close();
    prober.close();
    prices?.close();
    pool.close();
    throw listenError(e, `--host ${c.host} --port ${c.port}`, PROXY_EXIT_LISTEN);
  }
  return {
    addr: server.addr,
    server,
    explain: handler.explain,
    async shutdown() {
      list.close();
      prober?.close();
      prices?.close();
      await server.shutdown();
      pool.close();
    },
  };
}
