/**
 * `--ca` is the only trust of a node, the DNS server, the upload client and the proxy: a
 * certificate for the dialled address signed by another CA that the process otherwise trusts as a
 * public root (injected with `DENO_CERT` and `NODE_EXTRA_CA_CERTS`) is refused, while Deno's
 * `fetch` with `caCerts` accepts it (why node-to-node calls go through `node:tls`).
 */
import { equal, match } from "node:assert/strict";
import { makeCerts, startTlsNode } from "./_tls_cluster.ts";
import { TOKEN, withTempDir } from "./_upload_cluster.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** The environment that makes `otherDir/ca.pem` a root Deno and node:tls trust by default. */
function injectedRoot(otherDir: string): Record<string, string> {
  return { DENO_CERT: `${otherDir}/ca.pem`, NODE_EXTRA_CA_CERTS: `${otherDir}/ca.pem` };
}

Deno.test("tls: with --ca, a certificate from a CA trusted as a public root is refused", async () => {
  await withTempDir(async (dir) => {
    await makeCerts(["--out", `${dir}/fleet`, "--nodes", "good=127.0.0.1"]);
    await makeCerts(["--out", `${dir}/other`, "--nodes", "evil=127.0.0.1"]);
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tests/_tls_pin_child.ts", `${dir}/fleet`, `${dir}/other`],
      cwd: ROOT,
      env: injectedRoot(`${dir}/other`),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    equal(r.success, true, err);
    const out = JSON.parse(new TextDecoder().decode(r.stdout)) as Record<string, string>;
    // The injection works, and Deno's own TLS adds caCerts to it: the hole being closed.
    equal(out["denoFetchCaCerts good"], "ok");
    equal(out["denoFetchCaCerts evil"], "ok");
    for (const client of ["peerFetch", "proxyUpstream"]) {
      equal(out[`${client} good`], "ok", client);
      match(
        out[`${client} evil`],
        /refused: .*TLS: the peer's certificate is not signed by our CA \(--ca\) \(UnknownIssuer\)/,
        `${client}: ${JSON.stringify(out)}`,
      );
    }
  });
});

Deno.test("tls: a node refuses a server whose certificate is from a CA trusted as public", async () => {
  await withTempDir(async (dir) => {
    const A = "127.0.0.81";
    const C = "127.0.0.83";
    await makeCerts(["--out", `${dir}/fleet`, "--nodes", `a=${A}`]);
    await makeCerts(["--out", `${dir}/other`, "--nodes", `c=${C}`]);
    const c = await startTlsNode("c", C, `${dir}/c`, `${dir}/other`);
    const prev = { ...Deno.env.toObject() };
    let a;
    try {
      for (const [k, v] of Object.entries(injectedRoot(`${dir}/other`))) Deno.env.set(k, v);
      a = await startTlsNode("a", A, `${dir}/a`, `${dir}/fleet`);
    } finally {
      for (const k of Object.keys(injectedRoot(""))) {
        if (prev[k] === undefined) Deno.env.delete(k);
        else Deno.env.set(k, prev[k]);
      }
    }
    try {
      const client = Deno.createHttpClient({
        caCerts: [await Deno.readTextFile(`${dir}/fleet/ca.pem`)],
      });
      const res = await fetch(`${a.url}/_cdn/servers`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ url: c.url }),
        client,
        signal: AbortSignal.timeout(20_000),
      } as RequestInit);
      const text = await res.text();
      equal(res.status, 502, text);
      match(text, /TLS: the peer's certificate is not signed by our CA/);
      client.close();
    } finally {
      await a.proc.close();
      await c.proc.close();
    }
  });
});
