/**
 * A UDP-only DNS server for the benchmark: the same handler, codec and steering as `main_dns.ts`
 * but no TCP listener, so several processes can share one port through SO_REUSEPORT (the
 * batched socket sets it; `main_dns.ts` also binds TCP on the port, which a second process
 * cannot). Used by `run.ts --reuseport N`; not a production entry point.
 *
 * `deno run -A bench/dns_qps/udp_server.ts -p PORT -n ZONE --config FILE [--io mmsg|portable]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../../lib/dns/config.ts";
import { DnsHandler } from "../../lib/dns/handler.ts";
import { createCodec, UDP_SLOT_SIZE, UDP_SLOTS } from "../../lib/dns/server.ts";
import { DEFAULT_POLICY, SteeringEngine } from "../../lib/dns/policy.ts";
import { ReplicaSet, replicasFromConfig } from "../../lib/dns/steering.ts";
import { serveUdp } from "../../lib/dns/udp.ts";
import { serveUdpBatched } from "../../lib/dns/udp_mmsg.ts";

const HELP = `Usage: deno run -A bench/dns_qps/udp_server.ts -p PORT -n ZONE --config FILE [options]

UDP-only DNS server for the throughput benchmark (several may share a port: SO_REUSEPORT).

  -p, --port PORT     UDP port (required; 0 picks one, printed)
  -n, --name ZONE     zone, e.g. cdn.test (required)
  -c, --config FILE   the server's JSON config (required)
      --io MODE       mmsg (default; shares the port) or portable (Deno.listenDatagram)
      --codec KIND    wasm (default) or ts
  -h, --help          show this help`;

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", short: "p" },
      name: { type: "string", short: "n" },
      config: { type: "string", short: "c" },
      io: { type: "string", default: "mmsg" },
      codec: { type: "string", default: "wasm" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const port = Number(v.port);
  if (
    !v.port || !Number.isInteger(port) || port < 0 || port > 65535 || !v.name || !v.config ||
    (v.io !== "mmsg" && v.io !== "portable") || (v.codec !== "wasm" && v.codec !== "ts")
  ) {
    console.error(`udp_server: bad arguments\n\n${HELP}`);
    Deno.exit(2);
  }
  const config = await loadConfig(v.config);
  const codec = await createCodec(v.codec);
  const replicas = new ReplicaSet(replicasFromConfig(config.replicas));
  const handler = new DnsHandler({
    codec,
    zone: v.name,
    config,
    policy: new SteeringEngine({ mode: DEFAULT_POLICY, set: replicas, geo: config.geo }),
  });
  const common = {
    hostname: "127.0.0.1",
    port,
    slotBase: codec.scratchBase,
    slotSize: UDP_SLOT_SIZE,
    slots: UDP_SLOTS,
  };
  const server = v.io === "mmsg"
    ? serveUdpBatched({
      ...common,
      memory: codec.memory,
      handle: (ptr, len, client) => handler.respond(ptr, len, client, false),
    })
    : serveUdp({ ...common, handler });
  console.log(`udp_server: serving ${v.name} on 127.0.0.1 port ${server.port} (io ${v.io})`);
  const stop = async () => {
    await server.close();
    console.log(`udp_server: stopped ${JSON.stringify(server.stats)}`);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
