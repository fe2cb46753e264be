/**
 * `deno task get --ca FILE` against replicas started with `--tls`: two holders whose
 * certificates come from two different CAs (a from CA 1, b from CA 2; the DNS server trusts
 * both to health-check them). With CA 1 the file comes from a, the nearest, verified. With CA 2,
 * a's certificate does not verify: the client says so (a TLS line) and downloads from b. With
 * no `--ca` neither verifies against the public roots: exit 6 naming TLS. An unreadable `--ca`
 * is a usage error (exit 2). And the certificate is checked against the address dialled, not
 * against the `Host` sent (`--name`).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  http,
  type Proc,
  spawnDeno,
  startDns,
  startReplica,
  waitFor,
} from "../lib/fleet/_testing.ts";
import { httpGet } from "../lib/get/_http_get.ts";
import { trustCa } from "../lib/tls/client.ts";
import { makeCerts, tlsArgs, uploadTls } from "./_tls_cluster.ts";
import { TOKEN, withTempDir } from "./_upload_cluster.ts";

const A = "127.0.0.91", B = "127.0.0.92";

/** The https URL a TLS replica printed once it listens. */
function tlsUrl(p: Proc): Promise<string> {
  return waitFor(
    "the replica's https URL",
    () => /http: listening on (https:\/\/\S+?:\d+)\//.exec(p.output())?.[1],
    30_000,
    50,
    p.output,
  );
}

Deno.test({
  name: "get --ca: downloads from --tls replicas; a holder that does not verify is skipped",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      await makeCerts(["--out", `${dir}/c1`, "--nodes", `a=${A}`]);
      await makeCerts(["--out", `${dir}/c2`, "--nodes", `b=${B}`]);
      const both = (await Deno.readTextFile(`${dir}/c1/ca.pem`)) +
        (await Deno.readTextFile(`${dir}/c2/ca.pem`));
      await Deno.writeTextFile(`${dir}/both.pem`, both);
      await Deno.writeTextFile(
        `${dir}/cdn.json`,
        JSON.stringify({ geo: [{ cidr: "127.0.0.0/8", lat: 52.37, lon: 4.9 }] }),
      );
      const data = crypto.getRandomValues(new Uint8Array(60_000));
      await Deno.writeFile(`${dir}/f.bin`, data);
      const sha = createHash("sha256").update(data).digest("hex");
      const dns = await startDns([
        ...["-n", "cdn.test", "--config", `${dir}/cdn.json`, "--policy", "geo"],
        ...["--probe-port", "9", "--ca", `${dir}/both.pem`],
      ]);
      const replica = (id: string, host: string, certs: string, lat: number, lon: number) =>
        startReplica([
          ...["--host", host, "--id", id, "--admin-token", TOKEN, "--data", `${dir}/${id}`],
          // The default heartbeat (1 s): a replica is declared dead only after ~3 s without one.
          ...["--announce", `127.0.0.1:${dns.control}`],
          ...[`--lat=${lat}`, `--lon=${lon}`, ...tlsArgs(certs, id)],
        ]);
      const a = replica("a", A, `${dir}/c1`, 52.37, 4.9);
      const b = replica("b", B, `${dir}/c2`, 35.68, 139.69);
      const base = `http://127.0.0.1:${dns.control}`;
      const logs = () => [dns, a, b].map((p) => p.output().slice(-2000)).join("\n---\n");
      const get = async (out: string, extra: string[]) => {
        const p = spawnDeno([
          ...["main_get.ts", "/f.bin", "--dns", `127.0.0.1:${dns.control}`],
          ...["-o", `${dir}/${out}`, ...extra],
        ]);
        const { code } = await p.child.status;
        await p.done;
        return { code, out: p.output() };
      };
      try {
        await uploadTls(`${dir}/f.bin`, await tlsUrl(a), `${dir}/c1/ca.pem`);
        await uploadTls(`${dir}/f.bin`, await tlsUrl(b), `${dir}/c2/ca.pem`);
        const found = await waitFor(
          "both holders alive",
          async () => {
            const r = await http(`${base}/locate/f.bin`);
            return (r.body.holders as string[] | undefined)?.length === 2 ? r.body : undefined;
          },
          60_000,
          200,
          logs,
        );
        assert.deepEqual(found.holders, ["a", "b"]);
        assert.ok((found.urls as string[]).every((u) => u.startsWith("https://")), logs());

        // CA 1: from a, the nearest, verified (against a's address, though Host is --name).
        const ok = await get("one.bin", ["--ca", `${dir}/c1/ca.pem`, "--name", "cdn.test"]);
        assert.equal(ok.code, 0, ok.out);
        assert.match(ok.out, new RegExp(`from a, sha256 ${sha} \\(verified\\)`));
        assert.deepEqual(await Deno.readFile(`${dir}/one.bin`), data);

        // CA 2: a's certificate does not verify (a clear TLS line), b serves it.
        const other = await get("two.bin", ["--ca", `${dir}/c2/ca.pem`]);
        assert.equal(other.code, 0, other.out);
        assert.match(
          other.out,
          /a failed at byte 0: TLS: the peer's certificate is not signed by our CA \(--ca\)[^\n]*; trying b/,
        );
        assert.match(other.out, new RegExp(`from b, sha256 ${sha} \\(verified\\)`));
        assert.deepEqual(await Deno.readFile(`${dir}/two.bin`), data);

        // No --ca: the public roots verify neither: exit 6, naming TLS; nothing saved.
        const none = await get("three.bin", []);
        assert.equal(none.code, 6, none.out);
        assert.match(none.out, /no live holder could serve \/f\.bin: b: TLS: /);
        await assert.rejects(Deno.stat(`${dir}/three.bin`));

        const bad = await get("four.bin", ["--ca", `${dir}/nothing.pem`]);
        assert.equal(bad.code, 2, bad.out);
        assert.match(bad.out, /--ca .*nothing\.pem: cannot read it: no such file/);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
        await dns.stop("SIGTERM");
      }
    });
  },
});

Deno.test("get --ca: the certificate must name the address dialled, not the Host sent", async () => {
  await withTempDir(async (dir) => {
    await makeCerts(["--out", `${dir}/c`, "--nodes", `a=${A}`]);
    trustCa(await Deno.readTextFile(`${dir}/c/ca.pem`));
    const cert = await Deno.readTextFile(`${dir}/c/a.pem`);
    const key = await Deno.readTextFile(`${dir}/c/a-key.pem`);
    // A stand-in holder serving a's certificate on a's address, and on another address.
    for (
      const [host, want] of [[A, "200"], [
        "127.0.0.93",
        "TLS: the peer's certificate does not name the address dialled (NotValidForName)",
      ]]
    ) {
      const s = Deno.serve(
        { hostname: host, port: 0, cert, key, onListen() {} },
        () => new Response("x"),
      );
      try {
        const got = await httpGet(
          `https://${host}:${s.addr.port}/f.bin`,
          { host: "cdn.test" },
          10_000,
        )
          .then((r) => (r.cancel(), String(r.status)), (e) => (e as Error).message);
        assert.equal(got, want, host);
      } finally {
        await s.shutdown();
      }
    }
  });
});
