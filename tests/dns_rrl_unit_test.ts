/**
 * The rate limiter alone, on a fake clock: buckets per /24 (IPv4) and /56 (IPv6) and per
 * response kind, refill at the rate, slip every Kth limited response, exempt prefixes, and a
 * bucket table that never grows past its cap under a flood of distinct (spoofed) prefixes.
 */
import assert from "node:assert/strict";
import { parseCidr, parseIp } from "../lib/common/ip.ts";
import type { ClientAddr } from "../lib/dns/handler.ts";
import { RateLimiter, ResponseKind, responseKind, RrlAction } from "../lib/dns/rrl.ts";

const { ANSWER, NXDOMAIN } = ResponseKind;
const { SEND, SLIP, DROP } = RrlAction;

function addr(text: string): ClientAddr {
  const a = parseIp(text);
  if (a === null) throw new Error(`bad address ${text}`);
  return a;
}

function limiter(rate: number, slip: number, extra: { exempt?: string[]; max?: number } = {}) {
  let now = 0;
  const rrl = new RateLimiter({
    rate,
    slip,
    exempt: (extra.exempt ?? []).map(parseCidr),
    maxEntries: extra.max,
    now: () => now,
  });
  return { rrl, advance: (ms: number) => (now += ms) };
}

function decisions(rrl: RateLimiter, client: ClientAddr, kind: number, n: number): number[] {
  return Array.from({ length: n }, () => rrl.decide(client, kind));
}

Deno.test("rrl: a burst of `rate`, then every slip-th limited response slips", () => {
  const { rrl } = limiter(4, 2);
  const got = decisions(rrl, addr("192.0.2.1"), ANSWER, 10);
  assert.deepEqual(got, [SEND, SEND, SEND, SEND, DROP, SLIP, DROP, SLIP, DROP, SLIP]);
  assert.deepEqual(rrl.counters, { limited: 6, slipped: 3, dropped: 3, evicted: 0 });
});

Deno.test("rrl: slip 0 drops every limited response; tokens refill at the rate", () => {
  const { rrl, advance } = limiter(10, 0);
  const c = addr("192.0.2.1");
  assert.deepEqual(decisions(rrl, c, ANSWER, 12).filter((d) => d === SEND).length, 10);
  assert.equal(rrl.counters.slipped, 0);
  advance(300); // 3 tokens
  assert.deepEqual(decisions(rrl, c, ANSWER, 4), [SEND, SEND, SEND, DROP]);
});

Deno.test("rrl: one bucket per /24, /56 and response kind", () => {
  const { rrl } = limiter(1, 0);
  assert.equal(rrl.decide(addr("192.0.2.1"), ANSWER), SEND);
  assert.equal(rrl.decide(addr("192.0.2.200"), ANSWER), DROP, "same /24");
  assert.equal(rrl.decide(addr("192.0.3.1"), ANSWER), SEND, "another /24");
  assert.equal(rrl.decide(addr("192.0.2.1"), NXDOMAIN), SEND, "another kind");
  assert.equal(rrl.decide(addr("2001:db8:0:100::1"), ANSWER), SEND);
  assert.equal(rrl.decide(addr("2001:db8:0:1ff::2"), ANSWER), DROP, "same /56");
  assert.equal(rrl.decide(addr("2001:db8:0:200::1"), ANSWER), SEND, "another /56");
});

Deno.test("rrl: exempt prefixes are never limited", () => {
  const { rrl } = limiter(1, 0, { exempt: ["198.51.100.128/25", "2001:db8::/32"] });
  const all = [
    ...decisions(rrl, addr("198.51.100.200"), ANSWER, 50),
    ...decisions(rrl, addr("2001:db8:ffff::1"), ANSWER, 50),
  ];
  assert.ok(all.every((d) => d === SEND));
  assert.equal(rrl.decide(addr("198.51.100.1"), ANSWER), SEND);
  assert.equal(rrl.decide(addr("198.51.100.2"), ANSWER), DROP, "outside the /25");
});

Deno.test("rrl: the bucket table stays under its cap with distinct prefixes", () => {
  const { rrl, advance } = limiter(5, 2, { max: 1000 });
  for (let i = 0; i < 50_000; i++) {
    rrl.decide(addr(`10.${(i >> 8) & 255}.${i & 255}.1`), ANSWER);
    assert.ok(rrl.size <= 1000, `size ${rrl.size} at ${i}`);
    if (i % 100 === 0) advance(1);
  }
  assert.ok(rrl.counters.evicted >= 49_000, JSON.stringify(rrl.counters));
});

Deno.test("rrl: response kinds from RCODE and ANCOUNT", () => {
  assert.equal(responseKind(0, 3), ResponseKind.ANSWER);
  assert.equal(responseKind(0, 0), ResponseKind.NODATA);
  assert.equal(responseKind(3, 0), ResponseKind.NXDOMAIN);
  assert.equal(responseKind(5, 0), ResponseKind.ERROR);
  assert.equal(responseKind(1, 0), ResponseKind.ERROR);
});
