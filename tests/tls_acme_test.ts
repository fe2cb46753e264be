/**
 * `--tls --acme-directory` against Pebble (Let's Encrypt's test ACME server, Debian `pebble`)
 * started here with its own TLS certificate from the `certs` task: two nodes each obtain their
 * certificate with a real HTTP-01 challenge (Pebble fetches the token from the node's address),
 * replicate to each other verified against Pebble's root, and renew before expiry without a
 * restart (Pebble issues 20-second certificates): the served serial changes, the process stays;
 * a restart reuses the kept certificate.
 */
import { equal, notEqual, ok } from "node:assert/strict";
import { startNode, stopAll, waitUntil, withTempDir } from "./_upload_cluster.ts";
import { caFetch, makeCerts, type TlsNode, uploadTls } from "./_tls_cluster.ts";

const A = "127.0.0.81", B = "127.0.0.82";

function freePort(host = "127.0.0.1"): number {
  const l = Deno.listen({ hostname: host, port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** The serial of the certificate `host:port` serves now (openssl s_client). */
async function servedSerial(host: string, port: number): Promise<string> {
  const s = await new Deno.Command("sh", {
    args: [
      "-c",
      `openssl s_client -connect ${host}:${port} </dev/null 2>/dev/null | openssl x509 -noout -serial`,
    ],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(s.stdout).trim().replace(/^serial=/, "");
}

/** Starts Pebble on free ports; returns its directory URL, root CA file and a stop function. */
async function startPebble(dir: string, httpPort: number) {
  await makeCerts(["--out", `${dir}/pebble`, "--nodes", "pebble=127.0.0.1+localhost"]);
  const [listen, manage] = [freePort(), freePort()];
  await Deno.writeTextFile(
    `${dir}/pebble.json`,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listen}`,
        managementListenAddress: `127.0.0.1:${manage}`,
        certificate: `${dir}/pebble/pebble.pem`,
        privateKey: `${dir}/pebble/pebble-key.pem`,
        httpPort,
        tlsPort: freePort(),
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
        certificateValidityPeriod: 20,
      },
    }),
  );
  const child = new Deno.Command("pebble", {
    args: ["-config", `${dir}/pebble.json`],
    env: { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const pump = (async () => {
    for await (const t of child.stdout.pipeThrough(new TextDecoderStream())) log += t;
  })();
  child.stderr.cancel();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await pump.catch(() => {});
  };
  try {
    await waitUntil(() => /ACME directory available/.test(log), 15_000, `pebble up:\n${log}`);
    const root = await (await caFetch(`${dir}/pebble/ca.pem`)(
      `https://127.0.0.1:${manage}/roots/0`,
    )).text();
    await Deno.writeTextFile(`${dir}/pebble-root.pem`, root);
  } catch (e) {
    await stop();
    throw e;
  }
  return { directory: `https://127.0.0.1:${listen}/dir`, log: () => log, stop };
}

Deno.test("tls: ACME certificates from Pebble, replication between them, renewal without restart", async () => {
  await withTempDir(async (dir) => {
    const httpPort = freePort();
    const pebble = await startPebble(dir, httpPort);
    const nodes: TlsNode[] = [];
    const root = `${dir}/pebble-root.pem`;
    const f = caFetch(root);
    const acmeNode = (id: string, host: string, extra: string[] = []) =>
      startNode(id, `${dir}/${id}`, [
        "--host",
        host,
        "--tls",
        "--acme-directory",
        pebble.directory,
        "--acme-ca",
        `${dir}/pebble/ca.pem`,
        "--acme-http-port",
        String(httpPort),
        "--acme-email",
        "ops@cdn.test",
        "--ca",
        root,
        ...extra,
      ], f);
    try {
      const a = await acmeNode("a", A);
      nodes.push(a);
      const b = await acmeNode("b", B, ["--join", a.url]);
      nodes.push(b);
      // Pebble fetched the token from each node's own address: a real HTTP-01 challenge.
      for (const host of [A, B]) {
        ok(
          new RegExp(`validate w/ HTTP: http://${host.replaceAll(".", "\\.")}:${httpPort}/`)
            .test(pebble.log()),
          `pebble validated ${host} over HTTP-01`,
        );
      }
      await Deno.writeTextFile(`${dir}/hello.txt`, "hello over ACME certificates\n");
      await uploadTls(`${dir}/hello.txt`, a.url, root);
      await waitUntil(
        async () => {
          const res = await f(`${b.url}/hello.txt`);
          return res.status === 200 && (await res.text()) === "hello over ACME certificates\n";
        },
        20_000,
        "b serves the file a replicated to it",
      );

      const port = Number(new URL(a.url).port);
      const first = await servedSerial(A, port);
      ok(/^[0-9A-F]+$/.test(first), `a serves a certificate (serial ${first})`);
      await a.proc.waitFor(/tls: renewed without restart: now serving/, 30_000);
      const second = await servedSerial(A, port);
      notEqual(second, first, "a serves the renewed certificate");
      // The same process, still answering over TLS with the new certificate.
      const res = await f(`${a.url}/_cdn/health`);
      equal(res.status, 200);
      await res.body?.cancel();

      // A restart reuses the certificate kept in --data DIR/acme while it is not due.
      await stopAll(nodes.splice(0, 1));
      const a2 = await acmeNode("a", A, ["--acme-renew-before", "3s"]);
      nodes.push(a2);
      const kept = await a2.proc.waitFor(/tls: kept ACME certificate .*serial ([0-9A-F]+)/);
      const keptSerial = /serial ([0-9A-F]+)/.exec(kept)![1];
      equal(await servedSerial(A, Number(new URL(a2.url).port)), keptSerial);
      ok(!a2.proc.lines.some((l) => /tls: ACME certificate for/.test(l)), "no new order");
    } finally {
      await stopAll(nodes);
      await pebble.stop();
    }
  });
});
