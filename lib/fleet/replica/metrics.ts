/**
 * The replica's fleet counters in `/_cdn/metrics`: per DNS server announced to, whether it is
 * registered there and what went to and came from it; and the RTT probes run for the DNS
 * servers, or answered from another's recent result.
 *
 * @module
 */
import type { Exposition } from "../../common/prometheus.ts";
import type { ReplicaFleet } from "./fleet.ts";

/** Writes the families of `fleet` into `e` (names under its prefix, e.g. `nearcast_http_`). */
export function writeFleetMetrics(e: Exposition, fleet: ReplicaFleet): void {
  const per = (f: (a: ReplicaFleet["agents"][number]) => number) =>
    fleet.agents.map((a) => [{ dns: a.announce }, f(a)] as const);
  e.gauge(
    "fleet_registered",
    "1 while registered with that DNS server (--announce).",
    per((a) => a.registered ? 1 : 0),
  );
  e.counter(
    "fleet_registrations_total",
    "Registrations made with that DNS server.",
    per((a) => a.stats.registrations),
  );
  e.counter(
    "fleet_heartbeats_total",
    "Heartbeats sent to that DNS server.",
    per((a) => a.stats.heartbeats),
  );
  e.counter(
    "fleet_bad_replies_total",
    "Heartbeat replies dropped: not sealed by that DNS server, replayed, or not a reply.",
    per((a) => a.stats.badReplies),
  );
  const p = fleet.prober.stats;
  e.counter(
    "fleet_probes_total",
    "RTT probe requests of the DNS servers: probed, or answered from a recent probe of the subnet.",
    [[{ result: "probed" }, p.probes], [{ result: "shared" }, p.shared]],
  );
}
