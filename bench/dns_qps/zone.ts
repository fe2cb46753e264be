/**
 * The zone both servers of the benchmark serve, in the two forms they read: our JSON config
 * (`main_dns.ts --config`) and an NSD zone file plus a throwaway `nsd.conf`. Both answer the
 * apex A with one address, the apex SOA and NS, `ns1` with an A record, and NXDOMAIN with the
 * SOA for any other name.
 *
 * @module
 */

/** SOA and TTL values shared by both forms (our config's defaults, spelled out). */
export const SOA = {
  mailbox: "hostmaster",
  serial: 1,
  refresh: 3600,
  retry: 600,
  expire: 86400,
  minimum: 60,
  ttl: 3600,
} as const;
/** TTL of the apex A answer. */
export const ANSWER_TTL = 20;
/** The replica addresses (the demo's); NSD's apex A holds the first. */
export const REPLICAS = [
  { id: "r1", ipv4: "127.0.0.11", lat: 52.37, lon: 4.9 },
  { id: "r2", ipv4: "127.0.0.12", lat: 40.71, lon: -74.0 },
  { id: "r3", ipv4: "127.0.0.13", lat: 1.35, lon: 103.82 },
];
/** Where the ECS networks of the query file are, so ECS queries go through the geo table. */
const GEO = [
  { cidr: "192.0.2.0/24", lat: 48.85, lon: 2.35 },
  { cidr: "198.51.100.0/24", lat: 37.77, lon: -122.42 },
  { cidr: "203.0.113.0/24", lat: 35.68, lon: 139.69 },
  { cidr: "10.0.0.0/8", lat: 51.5, lon: -0.12 },
];
/**
 * The replica our server must answer for each ECS network of the query file (its first three
 * octets), worked out by hand from the coordinates above: Paris and London are nearest
 * Amsterdam, San Francisco New York, Tokyo Singapore. null: not in the geo table, so any
 * replica (rotation).
 */
const EXPECTED: Record<string, string | null> = {
  "192.0.2": "127.0.0.11",
  "198.51.100": "127.0.0.12",
  "203.0.113": "127.0.0.13",
  "10.1.2": "127.0.0.11",
  "172.16.5": null,
  "100.64.7": null,
};

/** The address our server answers a client of the /24 `net` with, or null for any replica. */
export function expectedReplica(net: readonly number[]): string | null {
  const key = net.join(".");
  if (!(key in EXPECTED)) throw new RangeError(`no expected answer for ECS network ${key}`);
  return EXPECTED[key];
}

/** The name server host is `ns1.ZONE` at this address. */
export const NS_IPV4 = "127.0.0.1";

/** Our server's config file (JSON text). One answer per query, as NSD gives. */
export function ourConfig(): string {
  return JSON.stringify(
    {
      ttl: ANSWER_TTL,
      answers: 1,
      replicas: REPLICAS,
      geo: GEO,
      ns: { label: "ns1", ipv4: NS_IPV4 },
      soa: SOA,
    },
    null,
    2,
  );
}

/** The NSD zone file with the same data (the apex A is the first replica). */
export function nsdZone(zone: string): string {
  const z = `${zone.replace(/\.$/, "")}.`;
  return [
    `$ORIGIN ${z}`,
    `$TTL ${SOA.ttl}`,
    `@ IN SOA ns1.${z} ${SOA.mailbox}.${z} ${SOA.serial} ${SOA.refresh} ${SOA.retry} ${SOA.expire} ${SOA.minimum}`,
    `@ IN NS ns1.${z}`,
    `@ ${ANSWER_TTL} IN A ${REPLICAS[0].ipv4}`,
    `ns1 IN A ${NS_IPV4}`,
    "",
  ].join("\n");
}

/**
 * A throwaway NSD config: everything (pid file, state, logs, zone) under `dir`, no privilege
 * drop, no chroot, no control socket, one server process, rate limiting off (RRL would drop
 * most of a benchmark's queries), minimal responses (no NS in authority, as our server).
 */
export function nsdConf(dir: string, zone: string, port: number): string {
  return `server:
  ip-address: 127.0.0.1
  port: ${port}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  database: ""
  pidfile: "${dir}/nsd.pid"
  xfrdfile: "${dir}/xfrd.state"
  xfrdir: "${dir}"
  zonelistfile: "${dir}/zone.list"
  logfile: "${dir}/nsd.log"
  server-count: 1
  verbosity: 1
  hide-version: yes
  minimal-responses: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "${zone}"
  zonefile: "${dir}/zone.db"
`;
}
