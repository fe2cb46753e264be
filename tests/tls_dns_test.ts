/**
 * The DNS server's health checks reach a `--tls` replica when started with `--ca`: the replica
 * registers over the control API (served over HTTPS with the DNS server's own certificate,
 * `--cert`/`--key`, the replica announcing `https://`), its health is checked over HTTPS verified
 * against the CA, it becomes alive and is answered; plain HTTP to the control API is refused. Without `--ca` the same replica never passes a check (the
 * DNS server speaks plain HTTP to a TLS-only port) and is not answered. A fleet mixing a TLS
 * replica and a plain one behind one DNS server with `--ca`: each is checked in the scheme it
 * registered, and both become alive.
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
import { caFetch, makeCerts, tlsArgs } from "./_tls_cluster.ts";
import { withTempDir } from "./_upload_cluster.ts";

const ZONE = "cdn.test";
const TOKEN = "tls-dns-token";
const R = "127.0.0.75";

type Row = Record<string, unknown>;

async function replicaRow(
  base: string,
  ca: string | null,
  id = "t1",
): Promise<Row | undefined> {
  const res = ca === null ? await http(`${base}/replicas`) : {
    body: await (await caFetch(ca)(`${base}/replicas`)).json() as Record<string, unknown>,
  };
  return (res.body.replicas as Row[]).find((x) => x.id === id);
}

for (const withCa of [true, false]) {
  Deno.test(`tls: DNS health checks ${withCa ? "reach" : "cannot reach"} a TLS replica ${withCa ? "with" : "without"} --ca`, async () => {
    await withTempDir(async (dir) => {
      await makeCerts(["--out", `${dir}/c`, "--nodes", `t1=${R},dns=127.0.0.1`]);
      // With --ca, the control API is HTTPS too (--cert/--key) and the replica announces https.
      const dns = await startDns([
        "-n",
        ZONE,
        "--admin-token",
        TOKEN,
        "--probe-port",
        "9",
        ...(withCa
          ? [
            "--ca",
            `${dir}/c/ca.pem`,
            "--cert",
            `${dir}/c/dns.pem`,
            "--key",
            `${dir}/c/dns-key.pem`,
          ]
          : []),
      ]);
      let replica: Proc | null = null;
      try {
        replica = startReplica([
          "--host",
          R,
          "--id",
          "t1",
          "--announce",
          `${withCa ? "https://" : ""}127.0.0.1:${dns.control}`,
          "--admin-token",
          TOKEN,
          ...tlsArgs(`${dir}/c`, "t1"),
        ]);
        const out = () => dns.output() + replica!.output();
        const ca = withCa ? `${dir}/c/ca.pem` : null;
        const base = `${withCa ? "https" : "http"}://127.0.0.1:${dns.control}`;
        const row = () => replicaRow(base, ca);
        if (withCa) {
          await waitFor(
            "t1 alive",
            async () => {
              const r = await row();
              return r?.state === "alive" ? r : undefined;
            },
            30_000,
            100,
            out,
          );
          assert.equal(await resolveA(dns.port, ZONE), R);
          let plain = true;
          try {
            await http(`http://127.0.0.1:${dns.control}/replicas`);
          } catch {
            plain = false;
          }
          assert.equal(plain, false, "the control API must not answer plain HTTP");
        } else {
          // Registered, checked, and never alive: the check's detail says why.
          const r = await waitFor(
            "t1 checked and failing",
            async () => {
              const r = await row();
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
          const later = await row();
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

Deno.test("tls: one DNS server with --ca checks a TLS replica over https and a plain one over http", async () => {
  await withTempDir(async (dir) => {
    const P = "127.0.0.77";
    await makeCerts(["--out", `${dir}/c`, "--nodes", `t1=${R}`]);
    // A plain control API, so that the plain replica (which takes no --ca) can register too.
    const dns = await startDns([
      "-n",
      ZONE,
      "--admin-token",
      TOKEN,
      "--probe-port",
      "9",
      "--ca",
      `${dir}/c/ca.pem`,
    ]);
    const replicas: Proc[] = [];
    try {
      const common = ["--announce", `127.0.0.1:${dns.control}`, "--admin-token", TOKEN];
      replicas.push(
        startReplica(["--host", R, "--id", "t1", ...common, ...tlsArgs(`${dir}/c`, "t1")]),
      );
      replicas.push(startReplica(["--host", P, "--id", "p1", ...common]));
      const out = () => dns.output() + replicas.map((r) => r.output()).join("");
      const base = `http://127.0.0.1:${dns.control}`;
      for (const id of ["t1", "p1"]) {
        await waitFor(
          `${id} alive`,
          async () => {
            const r = await replicaRow(base, null, id);
            return r?.state === "alive" ? r : undefined;
          },
          30_000,
          100,
          out,
        );
      }
      // Alive means its health check passed over its own scheme; both stay so.
      await new Promise((res) => setTimeout(res, 1500));
      for (const id of ["t1", "p1"]) {
        const r = await replicaRow(base, null, id);
        assert.equal(r?.state, "alive", `${id}: ${JSON.stringify(r)}\n${out()}`);
      }
    } finally {
      for (const r of replicas) await r.stop();
      await dns.stop();
    }
  });
});
