/**
 * "Parse + build one response" for a query for the apex A record with EDNS (DO) and ECS
 * 192.0.2.0/24, answered with one A record and the ECS echo: the WASM codec vs the reference
 * codec vs npm:dns-packet (decode the query, encode a response with the same content).
 *
 * Run: `deno task build:wasm && deno bench -A bench/dnswire_bench.ts` (or `deno task bench`).
 * Before timing, the three outputs are checked to carry the same content, so a broken codec
 * cannot post a good figure.
 *
 * On a busy machine, `deno run -A bench/dnswire_bench.ts [--rounds N]` is steadier: it times
 * the three in interleaved batches, prints the median per call and the ratios, and exits 1 if
 * the WASM codec is not at least 3× faster than dns-packet.
 */
import { Buffer } from "node:buffer";
import { parseArgs } from "node:util";
import dnsPacket from "dns-packet";
import {
  type DnsCodec,
  newQuery,
  Owner,
  ParseStatus,
  Rcode,
  Section,
  type ZoneConfig,
} from "../lib/dnswire/types.ts";
import { codecPair, testZone } from "../tests/_dns_codecs.ts";

const ZONE: ZoneConfig = testZone();

/** `dig cdn.test A +dnssec +subnet=192.0.2.0/24`, as a resolver sends it. */
const QUERY = new Uint8Array(dnsPacket.encode({
  type: "query",
  id: 0xbeef,
  flags: dnsPacket.RECURSION_DESIRED,
  questions: [{ type: "A", name: "cdn.test" }],
  additionals: [{
    type: "OPT",
    name: ".",
    udpPayloadSize: 4096,
    flags: dnsPacket.DNSSEC_OK,
    options: [{
      code: "CLIENT_SUBNET",
      family: 1,
      sourcePrefixLength: 24,
      scopePrefixLength: 0,
      ip: "192.0.2.0",
    }],
  }],
  // deno-lint-ignore no-explicit-any
} as any));
const QUERY_BUF = Buffer.from(QUERY);
const ANSWER_IP = 0x7f00000b; // 127.0.0.11

function codecRound(c: DnsCodec, ptr: number, q: ReturnType<typeof newQuery>): number {
  c.memory.set(QUERY, ptr); // the response overwrote the query: put it back
  c.parse(ptr, QUERY.length, q);
  if (q.status !== ParseStatus.OK) throw new Error(`unexpected status ${q.status}`);
  c.begin(ptr, q, Rcode.NOERROR, true, 1232);
  c.addA(Section.ANSWER, Owner.QNAME, 30, ANSWER_IP);
  return c.finish(24);
}

function dnsPacketRound(): Buffer {
  const d = dnsPacket.decode(QUERY_BUF);
  // deno-lint-ignore no-explicit-any
  const opt = d.additionals?.find((r: any) => r.type === "OPT") as any;
  // deno-lint-ignore no-explicit-any
  const ecs = opt?.options?.find((o: any) => o.code === 8);
  return dnsPacket.encode({
    type: "response",
    id: d.id,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | (d.flags ?? 0) & 0x0110,
    questions: d.questions,
    answers: [{ type: "A", name: d.questions![0].name, ttl: 30, data: "127.0.0.11" }],
    additionals: [{
      type: "OPT",
      name: ".",
      udpPayloadSize: 1232,
      flags: opt.flags & dnsPacket.DNSSEC_OK,
      options: ecs
        ? [{
          code: "CLIENT_SUBNET",
          family: ecs.family,
          sourcePrefixLength: ecs.sourcePrefixLength,
          scopePrefixLength: 24,
          ip: ecs.ip,
        }]
        : [],
    }],
    // deno-lint-ignore no-explicit-any
  } as any);
}

const { ref, wasm } = codecPair(ZONE);
const qw = newQuery(), qr = newQuery();
const PTR = wasm.scratchBase;

// The three must say the same thing before any of them is timed.
{
  const lw = codecRound(wasm, PTR, qw);
  const lr = codecRound(ref, PTR, qr);
  const a = wasm.memory.slice(PTR, PTR + lw), b = ref.memory.slice(PTR, PTR + lr);
  if (a.length !== b.length || a.some((x, i) => x !== b[i])) {
    throw new Error("WASM and reference responses differ");
  }
  const ours = dnsPacket.decode(Buffer.from(a)), theirs = dnsPacket.decode(dnsPacketRound());
  const strip = (p: typeof ours) =>
    JSON.stringify(
      [p.id, p.flags, p.questions, p.answers, p.additionals],
      (_k, v) => v?.type === "Buffer" ? undefined : v,
    );
  if (strip(ours) !== strip(theirs)) {
    throw new Error(`dns-packet output differs:\n${strip(ours)}\n${strip(theirs)}`);
  }
}

let sink = 0;

Deno.bench({
  name: "wasm codec",
  group: "parse + build one response",
  fn: () => {
    sink ^= codecRound(wasm, PTR, qw);
  },
});

Deno.bench({
  name: "reference codec (TypeScript)",
  group: "parse + build one response",
  fn: () => {
    sink ^= codecRound(ref, PTR, qr);
  },
});

Deno.bench({
  name: "npm:dns-packet decode + encode",
  group: "parse + build one response",
  baseline: true,
  fn: () => {
    sink ^= dnsPacketRound().length;
  },
});

Deno.bench({
  name: "wasm parse only",
  group: "parse only",
  fn: () => {
    wasm.memory.set(QUERY, PTR);
    wasm.parse(PTR, QUERY.length, qw);
    sink ^= qw.status;
  },
});

Deno.bench({
  name: "reference parse only",
  group: "parse only",
  baseline: true,
  fn: () => {
    ref.memory.set(QUERY, PTR);
    ref.parse(PTR, QUERY.length, qr);
    sink ^= qr.status;
  },
});

/** WASM must beat dns-packet by this factor (the project's goal for the codec). */
const GOAL_VS_DNS_PACKET = 3;

/** Median ns per call of each case, timed in interleaved batches so load hits all alike. */
function interleaved(rounds: number): Record<string, number> {
  const cases: [string, () => void, number][] = [
    ["wasm codec", () => sink ^= codecRound(wasm, PTR, qw), 20_000],
    ["reference codec", () => sink ^= codecRound(ref, PTR, qr), 20_000],
    ["npm:dns-packet", () => sink ^= dnsPacketRound().length, 1_000],
  ];
  const times: Record<string, number[]> = {};
  for (let k = 0; k < rounds; k++) {
    for (const [name, fn, n] of cases) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) fn();
      (times[name] ??= []).push(((performance.now() - t0) * 1e6) / n);
    }
  }
  const med: Record<string, number> = {};
  for (const [name, xs] of Object.entries(times)) {
    xs.sort((a, b) => a - b);
    med[name] = xs[xs.length >> 1];
  }
  return med;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "40" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(
      "Usage: deno run -A bench/dnswire_bench.ts [--rounds N]\n" +
        "  --rounds N  interleaved batches per case; the median is reported (default 40)",
    );
    Deno.exit(0);
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error(`--rounds must be a positive integer: received ${values.rounds}`);
    Deno.exit(2);
  }
  const med = interleaved(rounds);
  for (const [name, ns] of Object.entries(med)) {
    console.log(`${name.padEnd(16)} ${ns.toFixed(1).padStart(8)} ns per parse + response`);
  }
  const vsDp = med["npm:dns-packet"] / med["wasm codec"];
  const vsRef = med["reference codec"] / med["wasm codec"];
  console.log(`wasm vs dns-packet ${vsDp.toFixed(1)}x, wasm vs reference ${vsRef.toFixed(2)}x`);
  if (vsDp < GOAL_VS_DNS_PACKET) {
    console.error(`goal missed: wasm must be ${GOAL_VS_DNS_PACKET}x faster than dns-packet`);
    Deno.exit(1);
  }
}
