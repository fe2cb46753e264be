/**
 * The DNS steering server: `deno task dns -p PORT -n NAME [--config FILE] [--host ADDR]`.
 * See docs/notes/dns.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, defaultConfig, loadConfig } from "./lib/dns/config.ts";
import { CODECS, IO_MODES, startDnsServer } from "./lib/dns/server.ts";

const HELP = `Usage: deno task dns -p PORT -n NAME [options]

Authoritative DNS (UDP and TCP on one port) for the CDN zone NAME: A/AAAA at NAME answer the
live replica nearest to the client (EDNS Client Subnet, else the source address).

  -p, --port PORT      UDP and TCP port (0 picks a free one; the chosen one is printed)
  -n, --name NAME      zone to serve, e.g. cdn.test
  -c, --config FILE    JSON config: ttl, answers, replicas, geo, ns, soa, tcp (docs/notes/dns.md)
      --host ADDR      address to bind (default 127.0.0.1; 0.0.0.0 or :: for all)
      --codec KIND     DNS wire codec: wasm (default) or ts (the TypeScript reference)
      --io MODE        UDP transport: portable (default, Deno sockets) or mmsg (Linux
                       recvmmsg/sendmmsg through FFI; needs --allow-ffi)
  -h, --help           show this help`;

/** Parses the command line, or explains what is wrong and exits 2. */
function args(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", short: "p" },
      name: { type: "string", short: "n" },
      config: { type: "string", short: "c" },
      host: { type: "string", default: "127.0.0.1" },
      codec: { type: "string", default: "wasm" },
      io: { type: "string", default: "portable" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const port = Number(values.port);
  const problems = [
    !/^[0-9]{1,5}$/.test(values.port ?? "") || port > 65535 ? "-p PORT: 0..65535 required" : "",
    !values.name ? "-n NAME: the zone name is required" : "",
    !(CODECS as readonly string[]).includes(values.codec) ? `--codec: one of ${CODECS}` : "",
    !(IO_MODES as readonly string[]).includes(values.io) ? `--io: one of ${IO_MODES}` : "",
  ].filter(Boolean);
  if (problems.length) throw new SyntaxError(problems.join("\n"));
  return {
    ...values,
    port,
    name: values.name!,
    codec: values.codec as (typeof CODECS)[number],
    io: values.io as (typeof IO_MODES)[number],
  };
}

/** Runs the server until SIGINT/SIGTERM. */
export async function main(argv: string[]): Promise<void> {
  const a = args(argv);
  const config = a.config ? await loadConfig(a.config) : defaultConfig();
  let logged = 0;
  const server = await startDnsServer({
    zone: a.name,
    config,
    hostname: a.host,
    port: a.port,
    codec: a.codec,
    io: a.io,
    // Log the first errors, then one in a thousand: a flood must not become a log flood.
    onError: (e) => (logged++ < 10 || logged % 1000 === 0) && console.error(`dns error:`, e),
  });
  console.log(
    `dns: serving ${a.name} on ${a.host} port ${server.port} (udp+tcp, codec ${a.codec}, io ${a.io}, ${config.replicas.length} replicas)`,
  );
  const stop = async () => {
    await server.close();
    console.log(`dns: stopped ${JSON.stringify(server.stats())}`);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    const msg = e instanceof ConfigError || e instanceof SyntaxError || e instanceof RangeError
      ? e.message
      : String(e);
    console.error(`dns: cannot start:\n${msg}\n(run with --help for usage)`);
    Deno.exit(e instanceof ConfigError ? 3 : 2);
  }
}
