/**
 * `deno task get --dns https://HOST:PORT --ca FILE` against a DNS server whose control API is
 * HTTPS only (`--cert`/`--key`) and a `--tls` replica: the index is asked over TLS verified
 * against `--ca`, and the file comes from the replica, verified. Asked over plain HTTP, or
 * without `--ca` (the public roots), the index cannot be reached: exit 6, saying why.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnDeno, startDns, startReplica, waitFor } from "../lib/fleet/_testing.ts";
import { parseGetConfig } from "../lib/get/flags.ts";
import { caFetch, makeCerts, tlsArgs, uploadTls } from "./_tls_cluster.ts";
import { TOKEN, withTempDir } from "./_upload_cluster.ts";

const R = "127.0.0.95";

Deno.test("get: --dns takes https://HOST:PORT for an index served over TLS", () => {
  const c = parseGetConfig(["/x", "--dns", "https://127.0.0.1:5380"]);
  assert.ok(c !== "help");
  assert.equal(c.index, "https://127.0.0.1:5380");
  const d = parseGetConfig(["/x"], { NEARCAST_DNS: "HTTPS://[::1]:5380" });
  assert.equal((d as { index: string }).index, "https://[::1]:5380");
});

Deno.test({
  name: "get --dns https:// --ca: asks a TLS index, downloads from a TLS replica",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      const certs = `${dir}/c`, ca = `${certs}/ca.pem`;
      await makeCerts(["--out", certs, "--nodes", `t1=${R},dns=127.0.0.1`]);
      const data = crypto.getRandomValues(new Uint8Array(50_000));
      await Deno.writeFile(`${dir}/f.bin`, data);
      const sha = createHash("sha256").update(data).digest("hex");
      const dns = await startDns([
        ...["-n", "cdn.test", "--admin-token", TOKEN, "--probe-port", "9", "--ca", ca],
        ...["--cert", `${certs}/dns.pem`, "--key", `${certs}/dns-key.pem`],
      ]);
      const index = `https://127.0.0.1:${dns.control}`;
      const replica = startReplica([
        ...["--host", R, "--id", "t1", "--admin-token", TOKEN, "--data", `${dir}/t1`],
        ...["--announce", index, ...tlsArgs(certs, "t1")],
      ]);
      const logs = () => [dns, replica].map((p) => p.output().slice(-2000)).join("\n---\n");
      const get = async (out: string, extra: string[]) => {
        const p = spawnDeno(["main_get.ts", "/f.bin", "-o", `${dir}/${out}`, ...extra]);
        const { code } = await p.child.status;
        await p.done;
        return { code, out: p.output() };
      };
      try {
        const url = await waitFor(
          "the replica's https URL",
          () => /http: listening on (https:\/\/\S+?:\d+)\//.exec(replica.output())?.[1],
          30_000,
          50,
          logs,
        );
        await uploadTls(`${dir}/f.bin`, url, ca);
        const f = caFetch(ca);
        await waitFor(
          "t1 alive and holding f.bin",
          async () => {
            const r = await f(`${index}/locate/f.bin`);
            const body = await r.json() as { holders?: string[] };
            return body.holders?.length === 1 ? body : undefined;
          },
          60_000,
          200,
          logs,
        );

        const ok = await get("one.bin", ["--dns", index, "--ca", ca]);
        assert.equal(ok.code, 0, ok.out);
        assert.match(ok.out, new RegExp(`from t1, sha256 ${sha} \\(verified\\)`));
        assert.deepEqual(await Deno.readFile(`${dir}/one.bin`), data);

        // The control API does not speak plain HTTP; without --ca, the public roots refuse it.
        const plain = await get("two.bin", ["--dns", `127.0.0.1:${dns.control}`, "--ca", ca]);
        assert.equal(plain.code, 6, plain.out);
        assert.match(plain.out, /cannot reach the index at http:\/\/127\.0\.0\.1:\d+/);
        const noCa = await get("three.bin", ["--dns", index]);
        assert.equal(noCa.code, 6, noCa.out);
        assert.match(noCa.out, /cannot reach the index at https:\/\/127\.0\.0\.1:\d+: TLS: /);
      } finally {
        await replica.stop();
        await dns.stop("SIGTERM");
      }
    });
  },
});
