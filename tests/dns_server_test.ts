/**
 * The DNS server as a real process, queried by real dig and kdig over UDP and TCP.
 */
import assert from "node:assert/strict";
import {
  buildQuery,
  dig,
  type DigResult,
  kdig,
  readHeader,
  runClient,
  startServer,
  udpClient,
} from "../lib/dns/_testing.ts";

const ZONE = "cdn.test";

/** Three replicas (nyc has IPv6, lon does not, tok has IPv6) and a geo table. */
const CONFIG = {
  ttl: 17,
  replicas: [
    { id: "nyc", ipv4: "192.0.2.10", ipv6: "2001:db8::10", lat: 40.71, lon: -74.01 },
    { id: "lon", ipv4: "192.0.2.20", lat: 51.51, lon: -0.13 },
    { id: "tok", ipv4: "192.0.2.30", ipv6: "2001:db8::30", lat: 35.68, lon: 139.69 },
  ],
  geo: [
    { cidr: "198.51.100.0/24", lat: 48.86, lon: 2.35 }, // Paris
    { cidr: "203.0.113.0/24", lat: 34.69, lon: 135.5 }, // Osaka
    { cidr: "100.64.0.0/10", lat: 42.36, lon: -71.06 }, // Boston
    { cidr: "100.64.5.0/24", lat: 37.57, lon: 126.98 }, // Seoul, inside the Boston /10
    { cidr: "127.0.0.0/8", lat: 35.0, lon: 139.0 }, // the test's own source: near Tokyo
    { cidr: "2001:db8:aaaa::/48", lat: 48.86, lon: 2.35 }, // Paris, IPv6
  ],
  soa: { serial: 2024010101, minimum: 30 },
};

/** The unsigned TSIG RR of a BADKEY answer as dig and kdig print it (MAC size 0, other len 0). */
const BADKEY_TSIG = /somekey\.\s+0\s+ANY\s+TSIG\s+hmac-sha256\. \d+ 300 0 \d+ BADKEY 0/;

const ADDR = { nyc: "192.0.2.10", lon: "192.0.2.20", tok: "192.0.2.30" };

function answers(r: DigResult): string[] {
  return r.answer.map((a) => a.data);
}

function assertAuthoritative(r: DigResult, status: string): void {
  assert.equal(r.status, status, r.raw);
  assert.ok(r.flags.has("qr"), r.raw);
  assert.ok(r.flags.has("aa"), `aa expected:\n${r.raw}`);
  assert.ok(!r.flags.has("ra"), `ra must be clear:\n${r.raw}`);
}

function assertSoaAuthority(r: DigResult): void {
  assert.equal(r.answer.length, 0, r.raw);
  assert.equal(r.authority.length, 1, r.raw);
  assert.equal(r.authority[0].type, "SOA", r.raw);
  assert.equal(r.authority[0].name, "cdn.test.", r.raw);
  // RFC 2308 §5: the SOA's TTL in a negative answer is min(SOA TTL, MINIMUM).
  assert.equal(r.authority[0].ttl, 30, r.raw);
}

Deno.test("dns server answers dig and kdig over UDP and TCP", async (t) => {
  const server = await startServer(ZONE, CONFIG);
  const port = server.port;
  try {
    for (const [name, client] of [["dig", dig], ["kdig", kdig]] as const) {
      for (const tcp of [false, true]) {
        const via = tcp ? ["+tcp"] : [];
        await t.step(
          `${name} ${tcp ? "TCP" : "UDP"}: ECS subnets get the nearest replica`,
          async () => {
            // [subnet sent, replica expected, ECS echoed: ADDRESS/SOURCE/SCOPE]
            const cases: [string, string, string][] = [
              ["198.51.100.7/24", ADDR.lon, "198.51.100.0/24/24"], // Paris → London
              ["203.0.113.0/24", ADDR.tok, "203.0.113.0/24/24"], // Osaka → Tokyo
              // Boston → New York; the /10 holds a /24 elsewhere, so the scope narrows to
              // where 100.64.9.0 and 100.64.5.0 part (20 common bits) + 1.
              ["100.64.9.0/24", ADDR.nyc, "100.64.9.0/24/21"],
              ["100.64.5.0/24", ADDR.tok, "100.64.5.0/24/24"], // Seoul → Tokyo (longest prefix)
              // Only 16 bits given: Boston's /10 answers, but the Seoul /24 inside the /16
              // would need 22 bits to tell apart (SCOPE > SOURCE, RFC 7871 §7.2.1).
              ["100.64.0.0/16", ADDR.nyc, "100.64.0.0/16/22"],
            ];
            for (const [subnet, want, echo] of cases) {
              const r = await client(port, ...via, "cdn.test", "A", `+subnet=${subnet}`);
              assertAuthoritative(r, "NOERROR");
              assert.deepEqual(answers(r), [want], `${subnet}\n${r.raw}`);
              assert.equal(r.answer[0].ttl, 17);
              assert.equal(r.ecs, echo, r.raw);
            }
          },
        );
      }
    }

    await t.step("no ECS: the source address 127.0.0.1 is located (near Tokyo)", async () => {
      for (const via of [[], ["+tcp"]]) {
        const r = await dig(port, ...via, "cdn.test", "A");
        assertAuthoritative(r, "NOERROR");
        assert.deepEqual(answers(r), [ADDR.tok], r.raw);
        assert.equal(r.ecs, null);
      }
    });

    await t.step("ECS SOURCE PREFIX-LENGTH 0: steered by source, SCOPE 0", async () => {
      const r = await dig(port, "cdn.test", "A", "+subnet=0.0.0.0/0");
      assertAuthoritative(r, "NOERROR");
      assert.deepEqual(answers(r), [ADDR.tok], r.raw);
      assert.equal(r.ecs, "0.0.0.0/0/0", r.raw);
    });

    await t.step("IPv6 ECS and AAAA: replicas without IPv6 are skipped", async () => {
      // Paris is nearest to London, which has no IPv6: New York is next.
      const r = await kdig(port, "cdn.test", "AAAA", "+subnet=2001:db8:aaaa:1::/56");
      assertAuthoritative(r, "NOERROR");
      assert.deepEqual(answers(r), ["2001:db8::10"], r.raw);
      assert.equal(r.ecs, "2001:db8:aaaa::/56/48", r.raw);
      const v4 = await dig(port, "cdn.test", "A", "+subnet=2001:db8:aaaa::/48");
      assert.deepEqual(answers(v4), [ADDR.lon], v4.raw);
    });

    await t.step("unknown clients get the replicas in rotation", async () => {
      const seen: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await dig(port, "cdn.test", "A", "+subnet=10.1.2.0/24");
        assertAuthoritative(r, "NOERROR");
        assert.equal(r.answer.length, 1, r.raw);
        seen.push(r.answer[0].data);
        // 10.1.2.0 shares 1 leading bit with 100.64/10 and 127/8, none with the rest.
        assert.equal(r.ecs, "10.1.2.0/24/2", r.raw);
      }
      assert.deepEqual(new Set(seen), new Set(Object.values(ADDR)), seen.join(" "));
      for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], seen.join(" "));
    });

    await t.step("flags: AA set, RD copied, RA clear, question case echoed", async () => {
      const rd = await dig(port, "CdN.TeSt", "A", "+subnet=198.51.100.0/24");
      assertAuthoritative(rd, "NOERROR");
      assert.ok(rd.flags.has("rd"), rd.raw);
      assert.equal(rd.question, "CdN.TeSt.", rd.raw);
      assert.equal(rd.answer[0].name, "CdN.TeSt.", rd.raw);
      // RFC 4035 §3.2.2: CD is copied; RFC 3225: DO is copied into the OPT record.
      const cd = await dig(port, "+cdflag", "+dnssec", "cdn.test", "SOA");
      assert.ok(cd.flags.has("cd"), cd.raw);
      assert.match(cd.raw, /; EDNS: version: 0, flags: do;/, cd.raw);
      const nocd = await dig(port, "cdn.test", "SOA");
      assert.ok(!nocd.flags.has("cd"), nocd.raw);
      assert.doesNotMatch(nocd.raw, /flags: do;/, nocd.raw);
      const norec = await kdig(port, "+norecurse", "cdn.test", "A");
      assertAuthoritative(norec, "NOERROR");
      assert.ok(!norec.flags.has("rd"), norec.raw);
    });

    await t.step("EDNS: advertises 1232; BADVERS for version 1", async () => {
      const r = await dig(port, "cdn.test", "A", "+bufsize=4096");
      assert.equal(r.udpSize, 1232, r.raw);
      const bad = await dig(port, "cdn.test", "A", "+edns=1", "+noednsneg");
      assert.equal(bad.status, "BADVERS", bad.raw);
      assert.equal(bad.answer.length, 0, bad.raw);
      const plain = await dig(port, "cdn.test", "A", "+noedns");
      assert.equal(plain.udpSize, null, plain.raw);
      assert.equal(plain.answer.length, 1, plain.raw);
    });

    await t.step("SOA and NS at the apex, ns1 answers with the server's address", async () => {
      for (const client of [dig, kdig]) {
        const soa = await client(port, "cdn.test", "SOA");
        assertAuthoritative(soa, "NOERROR");
        assert.equal(soa.answer.length, 1, soa.raw);
        assert.equal(
          soa.answer[0].data,
          "ns1.cdn.test. hostmaster.cdn.test. 2024010101 3600 600 86400 30",
        );
        const ns = await client(port, "+tcp", "cdn.test", "NS");
        assertAuthoritative(ns, "NOERROR");
        assert.deepEqual(answers(ns), ["ns1.cdn.test."], ns.raw);
        assert.deepEqual(ns.additional.map((a) => [a.name, a.type, a.data]), [
          ["ns1.cdn.test.", "A", "127.0.0.1"],
        ]);
        // kdig lower-cases the name it sends; dig sends it as typed.
        const a = await client(port, "NS1.cdn.test", "A");
        assertAuthoritative(a, "NOERROR");
        assert.deepEqual(answers(a), ["127.0.0.1"], a.raw);
        assert.equal(a.answer[0].name, client === dig ? "NS1.cdn.test." : "ns1.cdn.test.");
        const aaaa = await client(port, "ns1.cdn.test", "AAAA");
        assertAuthoritative(aaaa, "NOERROR");
        assertSoaAuthority(aaaa);
      }
    });

    await t.step("NXDOMAIN and NODATA carry the SOA in authority", async () => {
      for (const via of [[], ["+tcp"]]) {
        for (const name of ["www.cdn.test", "a.b.cdn.test", "x.ns1.cdn.test"]) {
          const nx = await dig(port, ...via, name, "A");
          assertAuthoritative(nx, "NXDOMAIN");
          assertSoaAuthority(nx);
        }
        const nodata = await kdig(port, ...via, "cdn.test", "TXT");
        assertAuthoritative(nodata, "NOERROR");
        assertSoaAuthority(nodata);
      }
    });

    await t.step("REFUSED: out of zone, class CH, AXFR and IXFR", async () => {
      for (const args of [["example.com", "A"], ["test", "SOA"], ["xcdn.test", "A"]]) {
        const r = await dig(port, ...args);
        assert.equal(r.status, "REFUSED", r.raw);
        assert.ok(!r.flags.has("aa"), r.raw);
      }
      const ch = await dig(port, "-c", "CH", "cdn.test", "TXT");
      assert.equal(ch.status, "REFUSED", ch.raw);
      const axfr = await runClient("kdig", ["@127.0.0.1", "-p", `${port}`, "cdn.test", "AXFR"]);
      assert.notEqual(axfr.code, 0, axfr.stdout);
      assert.match(axfr.stdout + axfr.stderr, /replied with error 'REFUSED'/, axfr.stderr);
      // dig prints IXFR replies as a transfer, without the header: check it from a raw socket.
      const udp = udpClient(port);
      try {
        for (const type of [251, 252]) {
          await udp.send(buildQuery("cdn.test", { id: type, type }));
          const h = readHeader(await udp.receive());
          assert.deepEqual([h.id, h.qr, h.aa, h.rcode], [type, true, false, 5]);
        }
      } finally {
        udp.close();
      }
    });

    await t.step("TSIG with a key the server does not have: NOTAUTH, BADKEY", async () => {
      // RFC 8945 §5.2: the response carries a TSIG RR with error BADKEY and is not signed.
      const d = await dig(port, "-y", "hmac-sha256:somekey:c2VjcmV0", "cdn.test", "A");
      assert.equal(d.status, "NOTAUTH", d.raw);
      assert.match(d.raw, BADKEY_TSIG, d.raw);
      const k = await kdig(port, "-y", "hmac-sha256:somekey:c2VjcmV0", "cdn.test", "A");
      // kdig shows the TSIG error in place of the header's NOTAUTH.
      assert.equal(k.status, "BADKEY", k.raw);
      assert.match(k.raw, BADKEY_TSIG, k.raw);
    });

    await t.step("EDNS Padding: a padded query gets a 468-byte answer (RFC 8467)", async () => {
      for (const args of [["+padding=64"], ["+padding=64", "+tcp"]]) {
        const d = await dig(port, ...args, "cdn.test", "A");
        assert.equal(d.status, "NOERROR", d.raw);
        assert.match(d.raw, /PAD: \(\d+ bytes\)/, d.raw);
        assert.match(d.raw, /MSG SIZE\s+rcvd: 468/, d.raw);
      }
      const k = await kdig(port, "+padding", "cdn.test", "A");
      assert.match(k.raw, /PADDING: \d+ B/, k.raw);
      assert.match(k.raw, /Received 468 B/, k.raw);
      const plain = await dig(port, "cdn.test", "A");
      assert.doesNotMatch(plain.raw, /PAD:/, plain.raw);
    });

    await t.step("NOTIMP for opcodes other than QUERY", async () => {
      for (const opcode of ["1", "2", "4", "5"]) {
        const r = await dig(port, `+opcode=${opcode}`, "cdn.test", "A");
        assert.equal(r.status, "NOTIMP", `opcode ${opcode}\n${r.raw}`);
      }
    });
  } finally {
    await server.close();
  }
});

Deno.test("dns server without a config: SOA works, A/AAAA are NODATA", async () => {
  const server = await startServer("Example.Test.", null);
  try {
    for (const type of ["A", "AAAA"]) {
      const r = await dig(server.port, "example.test", type);
      assertAuthoritative(r, "NOERROR");
      assert.equal(r.answer.length, 0, r.raw);
      assert.equal(r.authority[0]?.type, "SOA", r.raw);
    }
    const soa = await kdig(server.port, "+tcp", "EXAMPLE.test", "SOA");
    assertAuthoritative(soa, "NOERROR");
    assert.match(soa.answer[0]?.data ?? "", /^ns1\.example\.test\. hostmaster\.example\.test\. 1 /);
  } finally {
    await server.close();
  }
});

for (const extra of [["--io", "portable"], ["--io", "mmsg"], ["--codec", "ts"]]) {
  Deno.test(`dns server with ${extra.join(" ")} gives the same answers`, async () => {
    const server = await startServer(ZONE, CONFIG, extra);
    const port = server.port;
    try {
      const near = await dig(port, "cdn.test", "A", "+subnet=203.0.113.0/24");
      assertAuthoritative(near, "NOERROR");
      assert.deepEqual(answers(near), [ADDR.tok], near.raw);
      assert.equal(near.ecs, "203.0.113.0/24/24", near.raw);
      const tcp = await kdig(port, "+tcp", "cdn.test", "A", "+subnet=198.51.100.0/24");
      assert.deepEqual(answers(tcp), [ADDR.lon], tcp.raw);
      const nx = await dig(port, "www.cdn.test", "A");
      assertAuthoritative(nx, "NXDOMAIN");
      assertSoaAuthority(nx);
      const bad = await dig(port, "cdn.test", "A", "+edns=1", "+noednsneg");
      assert.equal(bad.status, "BADVERS", bad.raw);
      const refused = await dig(port, "example.com", "A");
      assert.equal(refused.status, "REFUSED", refused.raw);
    } finally {
      await server.close();
    }
  });
}

Deno.test("dns server lists several name servers: NS, glue, SOA MNAME, their A/AAAA", async () => {
  const config = {
    ...CONFIG,
    ns: [
      { label: "ns1", ipv4: "127.0.0.1" },
      { label: "ns2", ipv4: "127.0.0.2", ipv6: "2001:db8::53" },
      { label: "dns3", ipv6: "2001:db8::3" },
    ],
  };
  // Two servers with the same config (two DNS servers of one fleet) answer the same.
  const servers = [await startServer(ZONE, config), await startServer(ZONE, config)];
  try {
    for (const { port } of servers) {
      const ns = await dig(port, "cdn.test", "NS");
      assertAuthoritative(ns, "NOERROR");
      assert.deepEqual(answers(ns), ["ns1.cdn.test.", "ns2.cdn.test.", "dns3.cdn.test."], ns.raw);
      assert.deepEqual(
        ns.additional.filter((r) => r.type !== "OPT").map((r) => [r.name, r.type, r.data]),
        [
          ["ns1.cdn.test.", "A", "127.0.0.1"],
          ["ns2.cdn.test.", "A", "127.0.0.2"],
          ["ns2.cdn.test.", "AAAA", "2001:db8::53"],
          ["dns3.cdn.test.", "AAAA", "2001:db8::3"],
        ],
        ns.raw,
      );
      const tcp = await kdig(port, "+tcp", "cdn.test", "NS");
      assert.deepEqual(answers(tcp), answers(ns), tcp.raw);
      const soa = await dig(port, "cdn.test", "SOA");
      assert.match(soa.answer[0]?.data ?? "", /^ns1\.cdn\.test\. hostmaster\.cdn\.test\. /);
      assert.deepEqual(answers(await dig(port, "NS2.cdn.test", "A")), ["127.0.0.2"]);
      assert.deepEqual(answers(await dig(port, "ns2.cdn.test", "AAAA")), ["2001:db8::53"]);
      const v4less = await dig(port, "dns3.cdn.test", "A");
      assertAuthoritative(v4less, "NOERROR");
      assertSoaAuthority(v4less);
      assert.equal((await dig(port, "ns3.cdn.test", "A")).status, "NXDOMAIN");
    }
  } finally {
    for (const s of servers) await s.close();
  }
});
