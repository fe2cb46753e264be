/**
 * The steering engine's cost per answer (`SteeringEngine.select`), the part of a DNS answer that
 * is ours besides the codec: every policy on the DNS benchmark's static config (3 replicas, the
 * same geo table and client mix as `bench/dns_qps`), and the latency policy on a live-fleet
 * shape (64 replicas, RTTs measured for the client's subnet).
 *
 * Run: `deno bench -A bench/steering_bench.ts`. Before timing, each engine is checked to answer
 * a located client with the replica expected for it, so a broken engine cannot post a figure.
 */
import { parseConfig } from "../lib/dns/config.ts";
import { POLICIES, SteeringEngine } from "../lib/dns/policy.ts";
import {
  newSelection,
  type Replica,
  ReplicaSet,
  replicasFromConfig,
  type SteeringClient,
} from "../lib/dns/steering.ts";
import { RttCache } from "../lib/fleet/dns/rtt.ts";
import { ourConfig } from "./dns_qps/zone.ts";

const CONFIG = parseConfig(ourConfig(), "bench zone");

function client(a: number, b: number, c: number, d: number, bits = 32): SteeringClient {
  const bytes = new Uint8Array(16);
  bytes.set([a, b, c, d]);
  return { family: 4, bytes, bits };
}

/** Source addresses (unlocated: rotation) and ECS /24s, as in the DNS benchmark's query mix. */
const CLIENTS = [
  client(127, 0, 0, 1),
  client(192, 0, 2, 0, 24),
  client(198, 51, 100, 0, 24),
  client(127, 0, 0, 1),
  client(203, 0, 113, 0, 24),
  client(10, 1, 2, 0, 24),
  client(172, 16, 5, 0, 24),
  client(127, 0, 0, 1),
];

function check(engine: SteeringEngine, want: string): void {
  const sel = newSelection();
  engine.select(client(192, 0, 2, 0, 24), 4, 1, sel);
  const got = sel.count === 1 ? sel.replicas[0].id : "(none)";
  if (got !== want) {
    throw new Error(`${engine.mode}: answered ${got} for 192.0.2.0/24, not ${want}`);
  }
}

for (const mode of POLICIES) {
  const engine = new SteeringEngine({
    mode,
    set: new ReplicaSet(replicasFromConfig(CONFIG.replicas)),
    geo: CONFIG.geo,
  });
  if (mode !== "load") check(engine, "r1");
  const sel = newSelection();
  let i = 0;
  Deno.bench({
    name: `select, static config of 3, ${mode}`,
    group: "static",
    baseline: mode === "latency",
    fn() {
      engine.select(CLIENTS[i++ & 7], 4, 1, sel);
    },
  });
}

{
  // 64 registered-like replicas spread over the globe, every one measured for the client's /24.
  const replicas: Replica[] = [];
  for (let k = 0; k < 64; k++) {
    replicas.push({
      id: `r${k}`,
      ipv4: (10 << 24) + k + 1,
      ipv6: null,
      lat: -60 + (k * 37) % 120,
      lon: -180 + (k * 71) % 360,
      live: true,
    });
  }
  const rtt = new RttCache();
  replicas.forEach((r, k) => rtt.record("192.0.2.0/24", r.id, 5 + ((k * 13) % 64)));
  const engine = new SteeringEngine({
    mode: "latency",
    set: new ReplicaSet(replicas),
    geo: CONFIG.geo,
    rtt,
  });
  check(engine, "r0");
  const sel = newSelection();
  const c = client(192, 0, 2, 0, 24);
  Deno.bench({
    name: "select, 64 replicas, latency, all measured",
    group: "fleet",
    fn() {
      engine.select(c, 4, 1, sel);
    },
  });
}
