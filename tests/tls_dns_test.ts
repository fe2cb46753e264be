/**
 * The DNS server's health checks reach a `--tls` replica when started with `--ca`: the replica
 * registers over the control API, its health is checked over HTTPS verified against the CA, it
 * becomes alive and is answered. Without `--ca` the same replica never passes a check (the
 * DNS server speaks plain HTTP to a TLS-only port) and is not answered.
 */
import assert from "node:assert/strict";
import {
  http,
  type Proc,
  resolveA,
  startDns,
  startReplica,
  waitFor,
} from "../lib/fleet/_testing.ts";
import { makeCerts, tlsArgs } from "./_tls_cluster.ts";
import { withTempDir } from "./_upload_cluster.ts";

const ZONE = "cdn.test";
const TOKEN = "tls-dns-token";
const R = "127.0.0.75";

type Row = Record<string, unknown>;

async function replicaRow(control: number): Promise<Row | undefined> {
  const rows = (await http(`http://127.0.0.1:${control}/replicas`)).body.replicas as Row[];
  return rows.find((x) => x.id === "t1");
}

for (const withCa of [true, false]) {
  Deno.test(`tls: DNS health checks ${withCa ? "reach" : "cannot reach"} a TLS replica ${withCa ? "with" : "without"} --ca`, async () => {
    await withTempDir(async (dir) => {
      await makeCerts(["--out", `${dir}/c`, "--nodes", `t1=${R}`]);
      const dns = await startDns([
        "-n",
        ZONE,
        "--admin-token",
        TOKEN,
        "--probe-port",
        "9",
        ...(withCa ? ["--ca", `${dir}/c/ca.pem`] : []),
      ]);
      let replica: Proc | null = null;
      try {
        replica = startReplica([
          "--host",
          R,
          "--id",
          "t1",
          "--announce",
          `127.0.0.1:${dns.control}`,
          "--admin-token",
          TOKEN,
          ...tlsArgs(`${dir}/c`, "t1"),
        ]);
        const out = () => dns.output() + replica!.output();
        if (withCa) {
          await waitFor(
            "t1 alive",
            async () => {
              const r = await replicaRow(dns.control);
              return r?.state === "alive" ? r : undefined;
            },
            30_000,
            100,
            out,
          );
          assert.equal(await resolveA(dns.port, ZONE), R);
        } else {
          // Registered, checked, and never alive: the check's detail says why.
          const r = await waitFor(
            "t1 checked and failing",
            async () => {
              const r = await replicaRow(dns.control);
              return r !== undefined && r.state !== "alive" &&
                  /health|check/i.test(String(r.reason))
                ? r
                : undefined;
            },
            30_000,
            100,
            out,
          );
          await new Promise((res) => setTimeout(res, 1500));
          const later = await replicaRow(dns.control);
          assert.notEqual(later?.state, "alive", `without --ca: ${JSON.stringify(r)}`);
          assert.equal(await resolveA(dns.port, ZONE), "");
        }
      } finally {
        await replica?.stop();
        await dns.stop();
      }
    });
  });
}
