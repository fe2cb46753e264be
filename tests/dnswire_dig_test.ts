/**
 * Real clients against each codec: a minimal UDP responder on loopback answers with the codec
 * (apex A, NS glue, NXDOMAIN-style SOA, BADVERS), and `dig` and `kdig` must read what we meant.
 * The responder is the codec alone, not the DNS server (that has its own tests).
 */
import assert from "node:assert/strict";
import {
  type DnsCodec,
  newQuery,
  Owner,
  ParseStatus,
  Rcode,
  Section,
  Type,
} from "../lib/dnswire/types.ts";
import { CODECS, statusRcode, testZone } from "./_dns_codecs.ts";

/** Upper bound for one client run; the test fails rather than hangs. */
const CLIENT_TIMEOUT_MS = 10_000;

/** Answers every datagram with `codec` until `close`; returns the port. */
function responder(codec: DnsCodec): { port: number; close: () => Promise<void> } {
  codec.configure(testZone({ serial: 42 }));
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const q = newQuery();
  const ptr = codec.scratchBase;
  const loop = (async () => {
    for await (const [data, addr] of sock) {
      codec.memory.set(data, ptr);
      codec.parse(ptr, data.length, q);
      if (q.status === ParseStatus.DROP) continue;
      const rcode = statusRcode(q.status) ??
        (q.zoneOffset < 0
          ? Rcode.REFUSED
          : q.labelsBeforeZone > 0
          ? Rcode.NXDOMAIN
          : Rcode.NOERROR);
      codec.begin(ptr, q, rcode, rcode !== Rcode.REFUSED, q.edns ? 1232 : 512);
      if (rcode === Rcode.NOERROR && q.qtype === Type.A) {
        codec.addA(Section.ANSWER, Owner.QNAME, 30, 0x7f00000b);
        codec.addNS(Section.AUTHORITY);
        codec.addA(Section.ADDITIONAL, Owner.NSHOST, 300, 0x7f000001);
      } else if (rcode === Rcode.NXDOMAIN) {
        codec.addSOA(Section.AUTHORITY);
      }
      const len = codec.finish(q.ecsFamily === 1 ? 24 : 0);
      await sock.send(codec.memory.slice(ptr, ptr + len), addr);
    }
  })().catch(() => {/* the socket was closed */});
  const port = (sock.addr as Deno.NetAddr).port;
  return {
    port,
    close: async () => {
      sock.close();
      await loop;
    },
  };
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `${cmd} ${args.join(" ")} failed:\n${text}`);
  return text;
}

for (const [name, make] of CODECS) {
  Deno.test(`dnswire ${name}: dig and kdig read our answers`, async () => {
    const r = responder(make());
    try {
      const at = ["@127.0.0.1", "-p", String(r.port)];
      const dig = ["+tries=1", "+time=2"];
      const a = await run("dig", [
        ...at,
        ...dig,
        "CDN.test",
        "A",
        "+dnssec",
        "+subnet=192.0.2.0/24",
      ]);
      assert.match(a, /status: NOERROR/);
      assert.match(a, /flags: qr aa rd;/);
      assert.match(a, /CLIENT-SUBNET: 192\.0\.2\.0\/24\/24/);
      assert.match(a, /EDNS: version: 0, flags: do; udp: 1232/);
      assert.match(a, /^CDN\.test\.\s+30\s+IN\s+A\s+127\.0\.0\.11$/m);
      assert.match(a, /^CDN\.test\.\s+300\s+IN\s+NS\s+ns1\.CDN\.test\.$/m);
      assert.match(a, /^ns1\.CDN\.test\.\s+300\s+IN\s+A\s+127\.0\.0\.1$/m);

      const nx = await run("dig", [...at, ...dig, "nope.cdn.test", "AAAA"]);
      assert.match(nx, /status: NXDOMAIN/);
      assert.match(
        nx,
        /^cdn\.test\.\s+60\s+IN\s+SOA\s+ns1\.cdn\.test\. hostmaster\.cdn\.test\. 42 3600 600 86400 60$/m,
      );

      const bad = await run("dig", [...at, ...dig, "cdn.test", "A", "+edns=1", "+noednsneg"]);
      assert.match(bad, /status: BADVERS/);

      const k = await run("kdig", [
        ...at,
        "+retry=0",
        "+timeout=2",
        "cdn.test",
        "A",
        "+subnet=2001:db8::/56",
      ]);
      assert.match(k, /status: NOERROR/);
      assert.match(k, /CLIENT-SUBNET: 2001:db8::\/56\/0/);
      assert.match(k, /^cdn\.test\.\s+30\s+IN\s+A\s+127\.0\.0\.11$/m);
    } finally {
      await r.close();
    }
  });
}
