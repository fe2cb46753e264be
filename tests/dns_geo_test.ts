/**
 * Addresses, CIDR parsing, the longest-prefix-match table with its ECS scope, great-circle
 * distance, and the geo steering policy.
 */
import assert from "node:assert/strict";
import { formatIp, parseCidr, parseClientIp, parseIp } from "../lib/common/ip.ts";
import { type GeoEntry, GeoTable, haversineKm, newGeoMatch } from "../lib/dns/geo.ts";
import { SteeringEngine } from "../lib/dns/policy.ts";
import {
  newSelection,
  ReplicaSet,
  replicasFromConfig,
  type SteeringClient,
} from "../lib/dns/steering.ts";
import type { ReplicaConfig } from "../lib/dns/config.ts";

/** All eight words of an IPv6 address as hex strings, for readable comparisons of bytes. */
function v6(text: string): string {
  const a = parseIp(text);
  assert.ok(a && a.family === 6, text);
  const w: string[] = [];
  for (let i = 0; i < 16; i += 2) w.push(((a.bytes[i] << 8) | a.bytes[i + 1]).toString(16));
  return w.join(":");
}

Deno.test("addresses print in the RFC 5952 canonical form", () => {
  const cases: [string, string][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group is not shortened
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of equal runs
    ["1:0:0:0:0:0:0:0", "1::"],
    ["fe80::1%eth0", "fe80::1"],
  ];
  for (const [text, want] of cases) assert.equal(formatIp(parseIp(text)!), want, text);
});

Deno.test("IPv4 and IPv6 text forms parse to the right bytes", () => {
  assert.deepEqual(Array.from(parseIp("192.0.2.255")!.bytes.subarray(0, 4)), [192, 0, 2, 255]);
  assert.equal(v6("::"), "0:0:0:0:0:0:0:0");
  assert.equal(v6("::1"), "0:0:0:0:0:0:0:1");
  assert.equal(v6("2001:db8::"), "2001:db8:0:0:0:0:0:0");
  assert.equal(v6("2001:DB8:0:1::ab:c"), "2001:db8:0:1:0:0:ab:c");
  assert.equal(v6("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
  assert.equal(v6("::ffff:192.0.2.1"), "0:0:0:0:0:ffff:c000:201");
  assert.equal(v6("64:ff9b::198.51.100.7"), "64:ff9b:0:0:0:0:c633:6407");
  assert.equal(v6("fe80::1%eth0"), "fe80:0:0:0:0:0:0:1");
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.-4",
      ":::",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "12345::",
      "g::1",
      "1::2:",
      ":1::",
      "::1.2.3",
      "1:2:3:4:5:6:7:1.2.3.4",
    ]
  ) {
    assert.equal(parseIp(bad), null, bad);
  }
  // A dual-stack socket reports IPv4 clients as IPv4-mapped IPv6: treat them as IPv4.
  const mapped = parseClientIp("::ffff:203.0.113.9")!;
  assert.equal(mapped.family, 4);
  assert.deepEqual(Array.from(mapped.bytes.subarray(0, 4)), [203, 0, 113, 9]);
});

Deno.test("CIDR parsing rejects host bits and bad prefix lengths", () => {
  assert.equal(parseCidr("0.0.0.0/0").prefix, 0);
  assert.equal(parseCidr("2001:db8::/32").prefix, 32);
  assert.throws(() => parseCidr("10.0.0.1/8"), RangeError);
  assert.throws(() => parseCidr("10.0.0.0/33"), RangeError);
  assert.throws(() => parseCidr("10.0.0.0/08"), RangeError);
  assert.throws(() => parseCidr("10.0.0.0"), SyntaxError);
  assert.throws(() => parseCidr("fe80::%1/64"), SyntaxError);
});

function table(rows: [string, number][]): GeoTable {
  return new GeoTable(rows.map(([cidr, lat]) => ({ cidr: parseCidr(cidr), lat, lon: 0 })));
}

function lookup(t: GeoTable, addr: string, bits?: number): [number, number] {
  const a = parseIp(addr)!;
  const m = newGeoMatch();
  t.lookup(a.family, a.bytes, bits ?? (a.family === 4 ? 32 : 128), m);
  return [m.entry, m.scope];
}

Deno.test("longest-prefix match and the scope of each answer", () => {
  const t = table([
    ["10.0.0.0/8", 1], // 0
    ["10.1.0.0/16", 2], // 1
    ["10.1.2.0/24", 3], // 2
    ["192.168.0.0/16", 4], // 3
    ["2001:db8::/32", 5], // 4
    ["2001:db8:ff00::/40", 6], // 5
  ]);
  assert.deepEqual(lookup(t, "10.1.2.3"), [2, 24]);
  // 10.1.3.x: /16 matches; 10.1.2.0/24 shares 23 bits, so 24 bits decide.
  assert.deepEqual(lookup(t, "10.1.3.4"), [1, 24]);
  // 10.1.128.x: parts from 10.1.2.0/24 at bit 16, so 17 bits.
  assert.deepEqual(lookup(t, "10.1.128.1"), [1, 17]);
  // 10.200.x: parts from 10.1/16 at bit 8 (200 = 1100 1000 vs 1 = 0000 0001).
  assert.deepEqual(lookup(t, "10.200.0.1"), [0, 9]);
  // No match: 11.x shares 7 bits with 10/8, so 8 bits say "unknown".
  assert.deepEqual(lookup(t, "11.0.0.1"), [-1, 8]);
  assert.deepEqual(lookup(t, "192.168.77.1"), [3, 16]);
  // Only 8 bits given (ECS /8): 10/8 matches, but deeper entries need 16 bits (scope > source).
  assert.deepEqual(lookup(t, "10.0.0.0", 8), [0, 16]);
  // Bits past `bits` are ignored even when set.
  assert.deepEqual(lookup(t, "10.1.2.3", 8), [0, 16]);
  assert.deepEqual(lookup(t, "2001:db8:ff01::1"), [5, 40]);
  assert.deepEqual(lookup(t, "2001:db8:1::1"), [4, 33]);
  assert.deepEqual(lookup(t, "2001:db9::1"), [-1, 32]);
  // An empty table: nobody is located, and the answer holds for every address.
  assert.deepEqual(lookup(new GeoTable([]), "10.1.2.3"), [-1, 0]);
  // A default route /0 matches everything.
  const withDefault = table([["0.0.0.0/0", 9], ["10.0.0.0/8", 1]]);
  assert.deepEqual(lookup(withDefault, "11.0.0.1"), [0, 8]);
  assert.throws(() => table([["10.0.0.0/8", 1], ["10.0.0.0/8", 2]]), /repeats the prefix/);
});

Deno.test("haversine distances match known city pairs", () => {
  const km = (a: [number, number], b: [number, number]) => haversineKm(a[0], a[1], b[0], b[1]);
  const nyc: [number, number] = [40.7128, -74.006], lon: [number, number] = [51.5074, -0.1278];
  const tok: [number, number] = [35.6762, 139.6503];
  // Published great-circle distances, within 1 %.
  assert.ok(Math.abs(km(nyc, lon) - 5570) < 56, `${km(nyc, lon)}`);
  assert.ok(Math.abs(km(lon, tok) - 9560) < 96, `${km(lon, tok)}`);
  assert.equal(km(nyc, nyc), 0);
  assert.ok(Math.abs(km([0, 0], [0, 180]) - Math.PI * 6371.0088) < 1e-6);
  assert.equal(km([0, 179.9], [0, -179.9]) < 30, true, "across the antimeridian");
});

const REPLICAS: ReplicaConfig[] = [
  { id: "nyc", ipv4: parseIp("192.0.2.10"), ipv6: parseIp("2001:db8::10"), lat: 40.71, lon: -74 },
  { id: "lon", ipv4: parseIp("192.0.2.20"), ipv6: null, lat: 51.5, lon: -0.13 },
  { id: "tok", ipv4: parseIp("192.0.2.30"), ipv6: parseIp("2001:db8::30"), lat: 35.7, lon: 139.7 },
];
const GEO: GeoEntry[] = [
  { cidr: parseCidr("198.51.100.0/24"), lat: 48.86, lon: 2.35 }, // Paris
  { cidr: parseCidr("203.0.113.0/24"), lat: 37.57, lon: 126.98 }, // Seoul
];

function client(addr: string): SteeringClient {
  const a = parseIp(addr)!;
  return { family: a.family, bytes: a.bytes, bits: a.family === 4 ? 32 : 128 };
}

Deno.test("geo mode: nearest live replica with the family, ranked; rotation otherwise", () => {
  const set = new ReplicaSet(replicasFromConfig(REPLICAS));
  const policy = new SteeringEngine({ mode: "geo", set, geo: GEO });
  const sel = newSelection();
  const ids = () => sel.replicas.slice(0, sel.count).map((r) => r.id);
  policy.select(client("198.51.100.9"), 4, 3, sel);
  assert.deepEqual([ids(), sel.how, sel.scope], [["lon", "nyc", "tok"], "geo", 24]);
  policy.select(client("198.51.100.9"), 6, 3, sel);
  assert.deepEqual(ids(), ["nyc", "tok"], "lon has no IPv6");
  policy.select(client("203.0.113.1"), 4, 1, sel);
  assert.deepEqual(ids(), ["tok"]);
  assert.ok(set.setLive("tok", false));
  policy.select(client("203.0.113.1"), 4, 1, sel);
  assert.deepEqual(ids(), ["lon"], "dead replicas are skipped; London is nearer Seoul than NY");
  assert.ok(set.setLive("tok", true));
  assert.equal(set.setLive("nope", false), false);
  // Unknown clients: each query starts one further along the list.
  const firsts: string[] = [];
  for (let i = 0; i < 6; i++) {
    policy.select(client("10.0.0.1"), 4, 2, sel);
    assert.equal(sel.how, "rotation");
    assert.equal(sel.count, 2);
    firsts.push(sel.replicas[0].id);
  }
  assert.deepEqual(firsts, ["nyc", "lon", "tok", "nyc", "lon", "tok"]);
  // Membership changes re-rank: a replica added in Paris wins for Paris, removal undoes it.
  set.upsert({ id: "par", ipv4: 0xc0000228, ipv6: null, lat: 48.85, lon: 2.35, live: true });
  policy.select(client("198.51.100.9"), 4, 1, sel);
  assert.deepEqual(ids(), ["par"]);
  assert.ok(set.remove("par"));
  assert.equal(set.remove("par"), false);
  policy.select(client("198.51.100.9"), 4, 1, sel);
  assert.deepEqual(ids(), ["lon"]);
  // Nothing eligible: count 0.
  for (const r of ["nyc", "lon", "tok"]) set.setLive(r, false);
  policy.select(client("198.51.100.9"), 4, 3, sel);
  assert.equal(sel.count, 0);
});
