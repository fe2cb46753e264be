/**
 * The DNS steering server: `deno task dns -p PORT -n NAME [--config FILE] [--host ADDR]`.
 * Flags, defaults and exit codes: `lib/dns/flags.ts` (`--help`).
 *
 * @module
 */
import { Logger, takeLogFlag, withLogUsage } from "./lib/common/log.ts";
import { listenError, runMain, StartError } from "./lib/common/cli.ts";
import { ConfigError, defaultConfig, type DnsConfig, loadConfig } from "./lib/dns/config.ts";
import { DNS_EXIT, dnsUsage, parseDnsFlags, shareConnections } from "./lib/dns/flags.ts";
import { FleetListenError, startFleetDns } from "./lib/fleet/dns/dns_fleet.ts";
import { PriceFeed } from "./lib/price/client.ts";
import { trustCa } from "./lib/tls/client.ts";
import { loadCa, loadKeyPair } from "./lib/tls/files.ts";

async function main(): Promise<void> {
  const { format, rest } = takeLogFlag(Deno.args);
  const logger = new Logger({ process: "dns", format });
  const a = parseDnsFlags(rest, Deno.env.toObject());
  if (a === "help") {
    console.log(withLogUsage(dnsUsage()));
    return;
  }
  let config: DnsConfig;
  try {
    config = a.configFile === null ? defaultConfig() : await loadConfig(a.configFile);
    if (a.dataDir !== null) await Deno.mkdir(a.dataDir, { recursive: true });
  } catch (e) {
    const what = e instanceof ConfigError ? "--config" : `--data ${a.dataDir}`;
    throw new StartError(`${what}: ${(e as Error).message}`, DNS_EXIT.config);
  }
  let controlTls;
  try {
    if (a.caFile !== null) trustCa(await loadCa(a.caFile));
    if (a.controlTls !== null) {
      const t = a.controlTls;
      controlTls = (await loadKeyPair(t.certFile, t.keyFile, a.caFile)).pair;
    }
  } catch (e) {
    throw new StartError((e as Error).message);
  }
  const shares = shareConnections(config.tcp.maxConnections, a.controlLimits.maxConns);
  if (shares.note !== null) logger.line(shares.note);
  config.tcp.maxConnections = shares.tcp;
  // Prices never hold the server up: with the pricing service down it starts without them,
  // and the feed keeps trying in the background (README, Steering).
  const prices = a.priceUrl === null
    ? null
    : new PriceFeed(a.priceUrl, { log: (line) => logger.line(`dns: ${line}`) });
  await prices?.start().then(
    () => logger.line(`dns: prices from ${a.priceUrl} (version ${prices.version})`),
    (e) => logger.line(`dns: ${e.message}; going on without prices, retrying`),
  );
  let logged = 0;
  const fleet = await startFleetDns({
    zone: a.name,
    config,
    hostname: a.host,
    port: a.port,
    codec: a.codec,
    io: a.io,
    rrl: a.rrl,
    tcpPerClient: a.tcpPerClient,
    controlPort: a.controlPort,
    controlLimits: { ...a.controlLimits, maxConns: shares.control },
    data: a.dataDir ?? ":memory:",
    adminToken: a.adminToken,
    policy: a.policy,
    weights: a.weights,
    maxExtraMs: a.maxExtraMs,
    prices,
    overloadRps: a.overloadRps,
    refreshMs: a.refreshMs,
    rttTtlMs: a.rttTtlMs,
    shortTtl: a.shortTtl,
    probePort: a.probePort,
    replicaScheme: a.caFile === null ? "http" : "https",
    controlTls,
    // Log the first errors, then one in a thousand: a flood must not become a log flood.
    onError: (e) =>
      (logged++ < 10 || logged % 1000 === 0) &&
      logger.error(`dns error: ${(e as Error)?.stack ?? String(e)}`),
    log: logger.line,
  }).catch((e) => {
    if (!(e instanceof FleetListenError)) throw e;
    const flags = e.socket === "dns"
      ? `--host ${a.host} --port ${e.port} (DNS, UDP and TCP)`
      : `--host ${a.host} --control ${e.port} (control API and heartbeats)`;
    throw listenError(e.cause, flags, DNS_EXIT.listen);
  });
  const server = fleet.dns;
  logger.line(
    `dns: serving ${a.name} on ${a.host} port ${server.port} (udp+tcp, codec ${a.codec}, ` +
      `io ${a.io}, ${config.replicas.length} replicas, ` +
      (a.rrl.rate > 0 ? `rrl ${a.rrl.rate}/s slip ${a.rrl.slip})` : "rrl off)"),
  );
  const shown = a.host.includes(":") ? `[${a.host}]` : a.host;
  const registry = a.dataDir ? `${a.dataDir}/fleet.sqlite` : "in memory";
  logger.line(
    fleet.control === null
      ? `dns: no control API (--control off): static replicas only, policy ${a.policy}`
      : `dns: control API on ${
        controlTls ? "https" : "http"
      }://${shown}:${fleet.control.port}/ (heartbeats udp ` +
        `${fleet.control.port}, policy ${a.policy}, ${fleet.registry.entries().length} ` +
        `replicas known, registry ${registry})`,
  );
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      prices?.close();
      await fleet.close();
      logger.line(`dns: stopped ${JSON.stringify(server.stats())} (${signal})`);
      Deno.exit(0);
    });
  }
  // No config reload yet: a hang-up (closed terminal, `kill -HUP`) must not stop the server.
  Deno.addSignalListener("SIGHUP", () => {
    logger.line("dns: SIGHUP ignored (no config reload yet; restart to apply a new --config)");
  });
}

if (import.meta.main) await runMain("dns", main);
