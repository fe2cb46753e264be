/**
 * Config parsing and validation, and the server refusing to start on a bad file or flag.
 */
import assert from "node:assert/strict";
import { ConfigError, DEFAULTS, MAX_ANSWERS, parseConfig } from "../lib/dns/config.ts";
import { runMain } from "../lib/dns/_testing.ts";

/** The problems parseConfig reports for `json`, or [] when it accepts it. */
function problems(json: unknown, file = "cdn.json"): string[] {
  try {
    parseConfig(typeof json === "string" ? json : JSON.stringify(json), file);
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
}

const GOOD = {
  ttl: 20,
  replicas: [
    { id: "nyc", ipv4: "192.0.2.10", ipv6: "2001:db8::10", lat: 40.71, lon: -74.01 },
    { id: "lon", ipv4: "192.0.2.20", lat: 51.51, lon: -0.13 },
  ],
  geo: [{ cidr: "198.51.100.0/24", lat: 48.86, lon: 2.35 }],
};

Deno.test("the example config parses, with defaults filled in", () => {
  const c = parseConfig(JSON.stringify(GOOD), "cdn.json");
  assert.equal(c.ttl, 20);
  assert.equal(c.answers, DEFAULTS.answers);
  assert.deepEqual(c.replicas.map((r) => [r.id, r.ipv4?.family, r.ipv6?.family ?? null]), [
    ["nyc", 4, 6],
    ["lon", 4, null],
  ]);
  assert.deepEqual(Array.from(c.replicas[0].ipv6!.bytes), [
    0x20,
    0x01,
    0x0d,
    0xb8,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x10,
  ]);
  assert.equal(c.geo[0].cidr.prefix, 24);
  assert.deepEqual(c.ns, [{ label: "ns1", ipv4: null, ipv6: null }]);
  assert.equal(c.soa.minimum, DEFAULTS.minimum);
  assert.equal(c.tcp.idleTimeoutMs, DEFAULTS.idleTimeoutMs);
  const all = parseConfig(
    JSON.stringify({
      ...GOOD,
      answers: 3,
      ns: { label: "dns", ipv4: "127.0.0.1", ipv6: "::1" },
      soa: { mailbox: "ops", serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 4, ttl: 5 },
      tcp: { idleTimeoutMs: 500, maxConnections: 3 },
    }),
    "x.json",
  );
  assert.equal(all.answers, 3);
  assert.deepEqual(all.ns.map((n) => n.label), ["dns"], "one object: the older form");
  assert.deepEqual(all.ns[0].ipv4?.bytes.slice(0, 4), Uint8Array.of(127, 0, 0, 1));
  assert.deepEqual(
    [all.soa.serial, all.soa.minimum, all.soa.ttl, all.soa.mailbox],
    [7, 4, 5, "ops"],
  );
  assert.deepEqual(all.tcp, { idleTimeoutMs: 500, maxConnections: 3 });
});

Deno.test("ns: a list of name servers, labels ns1, ns2, ... by default", () => {
  const c = parseConfig(
    JSON.stringify({
      ...GOOD,
      ns: [{ ipv4: "127.0.0.1" }, { label: "b", ipv4: "127.0.0.2", ipv6: "::2" }, {}],
    }),
    "x.json",
  );
  assert.deepEqual(c.ns.map((n) => n.label), ["ns1", "b", "ns3"]);
  assert.deepEqual(c.ns.map((n) => [n.ipv4 !== null, n.ipv6 !== null]), [
    [true, false],
    [true, true],
    [false, false],
  ]);
});

Deno.test("every bad value is reported with the file and the key path", () => {
  const cases: [unknown, string][] = [
    [
      { ...GOOD, replicas: [GOOD.replicas[0], { ...GOOD.replicas[1], lat: 91 }] },
      "cdn.json: replicas[1].lat: must be a number from -90 to 90: received 91",
    ],
    [
      { ...GOOD, replicas: [{ ...GOOD.replicas[0], lon: "x" }] },
      'cdn.json: replicas[0].lon: must be a number from -180 to 180: received "x"',
    ],
    [
      { ...GOOD, replicas: [{ id: "a", ipv4: "192.0.2.1", lon: 0 }] },
      "cdn.json: replicas[0].lat: is required",
    ],
    [{ ...GOOD, colour: "red" }, "cdn.json: colour: unknown key"],
    [
      { ...GOOD, replicas: [{ ...GOOD.replicas[0], port: 80 }] },
      "cdn.json: replicas[0].port: unknown key",
    ],
    [{ ...GOOD, ttl: -1 }, "cdn.json: ttl: must be an integer from 0 to 2147483647"],
    [{ ...GOOD, ttl: 1.5 }, "cdn.json: ttl: must be an integer"],
    [
      { ...GOOD, answers: MAX_ANSWERS + 1 },
      `cdn.json: answers: must be an integer from 1 to ${MAX_ANSWERS}`,
    ],
    [
      { ...GOOD, replicas: [{ ...GOOD.replicas[0], ipv4: "300.1.1.1" }] },
      'cdn.json: replicas[0].ipv4: must be an IPv4 address string: received "300.1.1.1"',
    ],
    [
      { ...GOOD, replicas: [{ ...GOOD.replicas[0], ipv6: "192.0.2.1" }] },
      "cdn.json: replicas[0].ipv6: must be an IPv6 address string",
    ],
    [
      { ...GOOD, replicas: [{ id: "z", lat: 0, lon: 0 }] },
      "cdn.json: replicas[0]: needs an address",
    ],
    [
      { ...GOOD, replicas: [GOOD.replicas[0], GOOD.replicas[0]] },
      'cdn.json: replicas[1].id: repeats the id of replicas[0]: "nyc"',
    ],
    [
      { ...GOOD, replicas: [{ ...GOOD.replicas[0], id: "a b" }] },
      "cdn.json: replicas[0].id: must be",
    ],
    [{ ...GOOD, replicas: {} }, "cdn.json: replicas: must be an array"],
    [
      { ...GOOD, geo: [{ cidr: "198.51.100.1/24", lat: 0, lon: 0 }] },
      'cdn.json: geo[0].cidr: has bits set after the /24 prefix: received "198.51.100.1/24"',
    ],
    [
      { ...GOOD, geo: [{ cidr: "198.51.100.0/33", lat: 0, lon: 0 }] },
      "cdn.json: geo[0].cidr: prefix length must be an integer from 0 to 32",
    ],
    [
      { ...GOOD, geo: [{ cidr: "2001:db8::/129", lat: 0, lon: 0 }] },
      "cdn.json: geo[0].cidr: prefix length must be an integer from 0 to 128",
    ],
    [
      { ...GOOD, geo: [{ cidr: "example.com/8", lat: 0, lon: 0 }] },
      "cdn.json: geo[0].cidr: is not an IPv4 or IPv6 address",
    ],
    [
      { ...GOOD, geo: [{ cidr: "10.0.0.0", lat: 0, lon: 0 }] },
      "cdn.json: geo[0].cidr: must be ADDRESS/PREFIX",
    ],
    [
      { ...GOOD, geo: [GOOD.geo[0], { ...GOOD.geo[0], lat: 1 }] },
      "cdn.json: geo[1].cidr: repeats the prefix of geo[0]",
    ],
    [{ ...GOOD, ns: { label: "a.b" } }, "cdn.json: ns.label: must be one DNS label"],
    [{ ...GOOD, ns: { ipv4: "::1" } }, "cdn.json: ns.ipv4: must be an IPv4 address string"],
    [{ ...GOOD, ns: [{}, { ipv6: "1.2.3.4" }] }, "cdn.json: ns[1].ipv6: must be an IPv6 address"],
    [{ ...GOOD, ns: [] }, "cdn.json: ns: must list at least one name server"],
    [{ ...GOOD, ns: Array(9).fill({}) }, "cdn.json: ns: must have at most 8 entries"],
    [
      { ...GOOD, ns: [{ label: "A" }, { label: "a" }] },
      'cdn.json: ns[1].label: repeats the label of ns[0]: "a"',
    ],
    [
      { ...GOOD, soa: { serial: 2 ** 32 } },
      "cdn.json: soa.serial: must be an integer from 0 to 4294967295",
    ],
    [{ ...GOOD, soa: { minimun: 5 } }, "cdn.json: soa.minimun: unknown key"],
    [
      { ...GOOD, tcp: { idleTimeoutMs: 0 } },
      "cdn.json: tcp.idleTimeoutMs: must be an integer from 1 to 60000",
    ],
    [
      { ...GOOD, tcp: { maxConnections: 0 } },
      "cdn.json: tcp.maxConnections: must be an integer from 1",
    ],
    [[], "cdn.json: the top level must be an object"],
    ["{ not json", "cdn.json: not valid JSON"],
  ];
  for (const [json, expected] of cases) {
    const got = problems(json);
    assert.equal(got.length, 1, `${JSON.stringify(json)} → ${got.join(" | ")}`);
    assert.ok(got[0].startsWith(expected), `expected "${expected}", got "${got[0]}"`);
  }
});

Deno.test("all problems of a file are listed at once", () => {
  const got = problems({
    ttl: "20",
    replicas: [{ id: "x", ipv4: "1.2.3", lat: 100, lon: 0 }],
    extra: 1,
  }, "dir/cdn.json");
  assert.deepEqual(got.map((p) => p.split(":").slice(0, 2).join(":")), [
    "dir/cdn.json: extra",
    "dir/cdn.json: ttl",
    "dir/cdn.json: replicas[0].ipv4",
    "dir/cdn.json: replicas[0].lat",
  ]);
});

Deno.test("the server refuses to start on bad config files and flags", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_dns_config_test_" });
  try {
    await t.step("a bad value: exit 3, file and key path on stderr", async () => {
      const file = `${dir}/cdn.json`;
      await Deno.writeTextFile(
        file,
        JSON.stringify({
          ...GOOD,
          replicas: [GOOD.replicas[0], { ...GOOD.replicas[1], lat: -95 }],
        }),
      );
      const r = await runMain(["-p", "0", "-n", "cdn.test", "--config", "cdn.json"], dir);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /cdn\.json: replicas\[1\]\.lat: must be a number from -90 to 90/);
      assert.doesNotMatch(r.stdout, /serving/);
    });
    await t.step("a missing file and invalid JSON: exit 3", async () => {
      const missing = await runMain(["-p", "0", "-n", "cdn.test", "--config", `${dir}/none.json`]);
      assert.equal(missing.code, 3);
      assert.match(missing.stderr, /none\.json: cannot read/);
      await Deno.writeTextFile(`${dir}/bad.json`, '{"ttl": 20,');
      const bad = await runMain(["-p", "0", "-n", "cdn.test", "--config", `${dir}/bad.json`]);
      assert.equal(bad.code, 3);
      assert.match(bad.stderr, /bad\.json: not valid JSON/);
    });
    await t.step("bad flags: exit 2 with what is wrong", async () => {
      const cases: [string[], RegExp][] = [
        [["-n", "cdn.test"], /--port is required/],
        [
          ["-p", "70000", "-n", "cdn.test"],
          /--port must be a port number in 0..65535: received 70000/,
        ],
        [["-p", "0"], /--name is required/],
        [["-p", "0", "-n", "cdn.test", "--codec", "rust"], /--codec/],
        [["-p", "0", "-n", "cdn.test", "--io", "magic"], /--io/],
        [["-p", "0", "-n", "bad..name"], /zone label/],
        [["-p", "0", "-n", "cdn.test", "--bogus"], /bogus/],
      ];
      for (const [args, re] of cases) {
        const r = await runMain(args);
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, re, r.stderr);
      }
    });
    await t.step("--help prints every flag and exits 0", async () => {
      const r = await runMain(["--help"]);
      assert.equal(r.code, 0);
      for (const flag of ["--port", "--name", "--config", "--host", "--codec", "--io"]) {
        assert.ok(r.stdout.includes(flag), flag);
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the config examples in README.md, docs/notes/dns.md and the demo config parse", async () => {
  for (const file of ["../README.md", "../docs/notes/dns.md"]) {
    const text = await Deno.readTextFile(new URL(file, import.meta.url));
    const blocks = [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]);
    // Only the DNS config examples (README has other JSON): those with a "replicas" key, but
    // not the deploy scripts' fleet files (a "dns" key).
    const configs = blocks.filter((b) => b.includes('"replicas"') && !b.includes('"dns"'));
    for (const b of configs) parseConfig(b, file.slice(3));
  }
  const doc = await Deno.readTextFile(new URL("../docs/notes/dns.md", import.meta.url));
  const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 1, "no json block in docs/notes/dns.md");
  for (const b of blocks) parseConfig(b, "docs/notes/dns.md");
  const demo = new URL("../scripts/demo/cdn.json", import.meta.url);
  const demoText = await Deno.readTextFile(demo);
  const c = parseConfig(demoText, "scripts/demo/cdn.json");
  // The demo's replicas register themselves (--announce): no static ones, and a geo table that
  // places loopback and the example subnets the demo prints.
  assert.deepEqual(c.replicas, []);
  assert.ok(c.geo.length > 0);
  const cidrs = (JSON.parse(demoText).geo as { cidr: string }[]).map((g) => g.cidr);
  for (const want of ["127.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]) {
    assert.ok(cidrs.includes(want), `demo geo table lacks ${want}: ${cidrs}`);
  }
});
