/**
 * Certificates as node-to-node credentials (`--node-auth cert`, the default with `--tls --cert`)
 * between real TLS nodes on loopback: two nodes with different admin tokens replicate once each
 * operator lists the other; requests the test signs itself with a certificate's key show what is
 * refused (another CA, an expired certificate, a name not in the server list, a certificate
 * naming another node, a tampered body or signature, a replay) and what is accepted.
 */
import { equal, match } from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { stopAll, TOKEN, waitUntil, withTempDir } from "./_upload_cluster.ts";
import { caFetch, makeCerts, startTlsNode, tlsArgs, type TlsNode } from "./_tls_cluster.ts";
import { startReplica } from "./_http_replica.ts";
import { CERT_HEADER, CertSigner, CertVerifier } from "../lib/tls/cert_identity.ts";
import {
  AUTH_SCHEME,
  bodyDigest,
  DIGEST_HEADER,
  newNonce,
  objectDigest,
  requestText,
  responseText,
  SIGNATURE_HEADER,
} from "../lib/replication/trust.ts";
import { encodeObjectStream, type ObjectHeader } from "../lib/upload/wire.ts";
import { concatBytes } from "../lib/common/bytes.ts";

const A = "127.0.0.81", B = "127.0.0.82", C = "127.0.0.83", E = "127.0.0.85", N = "127.0.0.86";

/** `--admin-token` of one node only (the nodes share no token). */
function ownToken(id: string): string[] {
  return ["--admin-token", `token-of-${id}`];
}

/** Lists `body` (`{"url", "id"?}`) on `node` with its own admin token. */
async function list(node: TlsNode, ca: string, body: unknown): Promise<Response> {
  return await caFetch(ca)(`${node.url}/_cdn/servers`, {
    method: "POST",
    headers: { authorization: `Bearer token-of-${node.id}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

for (const keyType of ["p256", "ed25519"]) {
  Deno.test(`tls identity: nodes listing each other replicate with their certificates (${keyType}), no shared token`, async () => {
    await withTempDir(async (dir) => {
      const certs = `${dir}/certs`, ca = `${certs}/ca.pem`;
      await makeCerts(["--out", certs, "--nodes", `a=${A},b=${B}`, "--key-type", keyType]);
      const leaf = new X509Certificate(await Deno.readTextFile(`${certs}/a.pem`));
      equal(leaf.publicKey.asymmetricKeyType, keyType === "p256" ? "ec" : "ed25519");
      const nodes: TlsNode[] = [];
      try {
        const a = await startTlsNode("a", A, `${dir}/a`, certs, ownToken("a"));
        nodes.push(a);
        await Deno.writeTextFile(`${dir}/servers.json`, JSON.stringify([a.url]));
        const b = await startTlsNode("b", B, `${dir}/b`, certs, [
          ...ownToken("b"),
          "--servers",
          `${dir}/servers.json`,
        ]);
        nodes.push(b);
        // b lists a (its --servers) but a does not list b yet: b is refused, and says why.
        await b.proc.waitFor(
          /heartbeat: .*refused this node: 403: b is not in a's server list/,
          15_000,
        );
        // a's operator lists b (a's own token): from then on both accept each other.
        const res = await list(a, ca, { url: b.url });
        equal(res.status, 201, await res.text());
        const body = new TextEncoder().encode(`hello from a ${crypto.randomUUID()}\n`);
        await Deno.writeFile(`${dir}/f.txt`, body);
        const up = await caFetch(ca)(`${a.url}/_cdn/upload`, {
          method: "POST",
          headers: { authorization: "Bearer token-of-a", "content-type": "application/x-ndjson" },
          body: await uploadStream("f.txt", body),
        });
        equal(up.status, 201, await up.text());
        const f = caFetch(ca);
        await waitUntil(
          async () => {
            const r = await f(`${b.url}/f.txt`);
            return r.status === 200 && (await r.text()) === new TextDecoder().decode(body);
          },
          20_000,
          "b serves the file a replicated with its certificate",
        );
        // And the other way: b's uploads reach a.
        const up2 = await caFetch(ca)(`${b.url}/_cdn/upload`, {
          method: "POST",
          headers: { authorization: "Bearer token-of-b", "content-type": "application/x-ndjson" },
          body: await uploadStream("g.txt", body),
        });
        equal(up2.status, 201, await up2.text());
        await waitUntil(
          async () => {
            const r = await f(`${a.url}/g.txt`);
            await r.body?.cancel();
            return r.status === 200;
          },
          20_000,
          "a serves the file b replicated",
        );
        // Neither node was admitted at the other with a token: each key is unknown there.
        const servers = await (await f(`${a.url}/_cdn/servers`)).json() as {
          id: string;
          admitted: boolean;
        }[];
        equal(servers.find((s) => s.id === "b")?.admitted, false);
      } finally {
        await stopAll(nodes);
      }
    });
  });
}

/** An upload stream (NDJSON) of `body` named `name`. */
async function uploadStream(name: string, body: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  return await streamBytes({
    name,
    contentType: "text/plain",
    size: body.length,
    sha256: createHash("sha256").update(body).digest("hex"),
    mtime: 0,
    meta: {},
  }, body);
}

async function streamBytes(h: ObjectHeader, body: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const parts: Uint8Array[] = [];
  for await (const p of encodeObjectStream(h, [body], 65536)) parts.push(p.slice());
  return concatBytes(parts);
}

/** What a signed request is made of, so that a test can tamper with one part. */
interface Signed {
  id: string;
  ts: number;
  nonce: string;
  digest: string;
  csig: string;
  cert: string;
}

/** Signs `method path` with `digest` as `id` with the certificate `certDir/name`. */
async function signAs(
  certDir: string,
  name: string,
  id: string,
  method: string,
  path: string,
  digest: string,
): Promise<Signed> {
  const signer = new CertSigner({
    cert: await Deno.readTextFile(`${certDir}/${name}.pem`),
    key: await Deno.readTextFile(`${certDir}/${name}-key.pem`),
  });
  const ts = Date.now(), nonce = newNonce();
  const csig = signer.sign(requestText(method, path, ts, nonce, digest));
  return { id, ts, nonce, digest, csig, cert: signer.header };
}

function headersOf(s: Signed): Record<string, string> {
  return {
    authorization: `${AUTH_SCHEME} id=${s.id}, ts=${s.ts}, nonce=${s.nonce}, csig=${s.csig}`,
    [DIGEST_HEADER]: s.digest,
    [CERT_HEADER]: s.cert,
  };
}

Deno.test("tls identity: another CA, an expired certificate, an unlisted name, tampering and replays are refused", async () => {
  await withTempDir(async (dir) => {
    const certs = `${dir}/certs`, other = `${dir}/other`, ca = `${certs}/ca.pem`;
    await makeCerts(["--out", certs, "--nodes", `a=${A},c=${C},n=${N}`]);
    await makeCerts(["--out", certs, "--nodes", `e=${E}`, "--days=-1"]);
    await makeCerts(["--out", other, "--nodes", `c=${C}`]);
    const nodes: TlsNode[] = [];
    try {
      const a = await startTlsNode("a", A, `${dir}/a`, certs, ownToken("a"));
      nodes.push(a);
      // a's operator lists c and e (down: listed by id); n is never listed.
      for (const id of ["c", "e"]) {
        const r = await list(a, ca, { url: `https://${id === "c" ? C : E}:9`, id });
        equal(r.status, 201, await r.text());
      }
      const f = caFetch(ca);
      const send = (path: string, s: Signed, body: Uint8Array<ArrayBuffer>, method = "POST") =>
        f(`${a.url}${path}`, { method, headers: headersOf(s), body });

      // A push from c, signed with its certificate alone: stored, and the answer is signed by
      // a's certificate (verified here against the CA).
      const file = new TextEncoder().encode("pushed by c\n");
      const header: ObjectHeader = {
        name: "from-c.txt",
        contentType: "text/plain",
        size: file.length,
        sha256: createHash("sha256").update(file).digest("hex"),
        mtime: 0,
        meta: {},
        version: { ts: Date.now(), node: "c" },
      };
      const push = await signAs(certs, "c", "c", "POST", "/_cdn/replicate", objectDigest(header));
      const pushed = await send("/_cdn/replicate", push, await streamBytes(header, file));
      const answer = await pushed.text();
      equal(pushed.status, 200, answer);
      const sigHeader = pushed.headers.get(SIGNATURE_HEADER) ?? "";
      match(sigHeader, /^id=a, csig=/);
      const verifier = new CertVerifier(await Deno.readTextFile(ca));
      equal(
        verifier.check(
          pushed.headers.get(CERT_HEADER),
          "a",
          responseText(push.nonce, 200, pushed.headers.get(DIGEST_HEADER) ?? ""),
          /csig=([^,\s]+)/.exec(sigHeader)?.[1],
        ),
        null,
        "a's answer verifies with a's certificate",
      );
      equal(pushed.headers.get(DIGEST_HEADER), bodyDigest(answer));
      const served = await f(`${a.url}/from-c.txt`);
      equal(await served.text(), "pushed by c\n");

      const hb = new TextEncoder().encode(JSON.stringify({ servers: [], digest: "" }));
      const hbDigest = bodyDigest(hb);
      const beat = (s: Signed, body = hb) => send("/_cdn/heartbeat", s, body);
      const refusal = async (res: Response) => `${res.status} ${(await res.text()).trim()}`;

      // The same request replayed: refused.
      const once = await signAs(certs, "c", "c", "POST", "/_cdn/heartbeat", hbDigest);
      equal((await beat(once)).status, 200);
      match(await refusal(await beat(once)), /^401 .*stale time or replayed nonce/);

      // c's name with a certificate from another CA.
      const foreign = await signAs(other, "c", "c", "POST", "/_cdn/heartbeat", hbDigest);
      match(await refusal(await beat(foreign)), /^401 .*not signed by this node's CA \(--ca\)/);

      // e is listed, but its certificate (signed by the CA) has expired: a clear line.
      const expired = await signAs(certs, "e", "e", "POST", "/_cdn/heartbeat", hbDigest);
      match(await refusal(await beat(expired)), /^401 .*the certificate of e expired on /);
      const line = await a.proc.waitFor(/auth: refused e: the certificate of e expired on/);
      match(line, /expired on \d{4}-\d\d-\d\dT[\d:.]+Z \(notAfter\)/);

      // n holds a valid certificate of the CA but is not in a's server list.
      const unlisted = await signAs(certs, "n", "n", "POST", "/_cdn/heartbeat", hbDigest);
      match(await refusal(await beat(unlisted)), /^403 .*n is not in a's server list/);
      const pushN = await signAs(certs, "n", "n", "POST", "/_cdn/replicate", objectDigest(header));
      match(
        await refusal(await send("/_cdn/replicate", pushN, await streamBytes(header, file))),
        /^403 .*n is not in a's server list/,
      );

      // c's certificate presented as e (listed): the certificate does not name e.
      const asE = await signAs(certs, "c", "e", "POST", "/_cdn/heartbeat", hbDigest);
      match(await refusal(await beat(asE)), /^401 .*the certificate names c, not e/);

      // A tampered signature, and a body that differs from the signed digest.
      const bad = await signAs(certs, "c", "c", "POST", "/_cdn/heartbeat", hbDigest);
      const flipped = bad.csig[5] === "A" ? "B" : "A";
      const tampered = { ...bad, csig: bad.csig.slice(0, 5) + flipped + bad.csig.slice(6) };
      match(await refusal(await beat(tampered)), /^401 .*bad certificate signature/);
      const swapped = await signAs(certs, "c", "c", "POST", "/_cdn/heartbeat", hbDigest);
      const other2 = new TextEncoder().encode(JSON.stringify({ servers: [], digest: "x" }));
      match(await refusal(await beat(swapped, other2)), /^400 .*differs from the signed digest/);
      // The signature covers the path: a heartbeat signature used on the replicate route.
      const moved = await signAs(certs, "c", "c", "POST", "/_cdn/heartbeat", objectDigest(header));
      match(
        await refusal(await send("/_cdn/replicate", moved, await streamBytes(header, file))),
        /^401 .*bad certificate signature/,
      );
      // Removed from a's list (a's operator): c's valid certificate is refused from then on.
      const del = await f(`${a.url}/_cdn/servers/c`, {
        method: "DELETE",
        headers: { authorization: "Bearer token-of-a" },
      });
      equal(del.status, 200, await del.text());
      const gone = await signAs(certs, "c", "c", "POST", "/_cdn/heartbeat", hbDigest);
      match(await refusal(await beat(gone)), /^403 .*c is not in a's server list/);
    } finally {
      await stopAll(nodes);
    }
  });
});

Deno.test("tls identity: a --node-auth both node replicates with a key node and a cert node", async () => {
  await withTempDir(async (dir) => {
    const certs = `${dir}/certs`, ca = `${certs}/ca.pem`;
    await makeCerts(["--out", certs, "--nodes", `a=${A},b=${B},c=${C}`]);
    const nodes: TlsNode[] = [];
    const f = caFetch(ca);
    const holds = (node: TlsNode, name: string) => async () => {
      const r = await f(`${node.url}/${name}`);
      await r.body?.cancel();
      return r.status === 200;
    };
    try {
      // a accepts either credential; b signs with its node key alone (admitted at a with the
      // shared token); c with its certificate alone (its own token; listed at a by a's operator).
      const a = await startTlsNode("a", A, `${dir}/a`, certs, ["--node-auth", "both"]);
      nodes.push(a);
      const b = await startTlsNode("b", B, `${dir}/b`, certs, [
        ...["--node-auth", "key", "--join", a.url],
      ]);
      nodes.push(b);
      await Deno.writeTextFile(`${dir}/servers.json`, JSON.stringify([a.url]));
      const c = await startTlsNode("c", C, `${dir}/c`, certs, [
        ...ownToken("c"),
        ...["--servers", `${dir}/servers.json`],
      ]);
      nodes.push(c);
      const res = await caFetch(ca)(`${a.url}/_cdn/servers`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ url: c.url }),
      });
      equal(res.status, 201, await res.text());
      const body = new TextEncoder().encode("from b\n");
      const up = await f(`${b.url}/_cdn/upload`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/x-ndjson" },
        body: await uploadStream("from-b.txt", body),
      });
      equal(up.status, 201, await up.text());
      // b -> a by the node key; a -> c by the certificate.
      await waitUntil(holds(a, "from-b.txt"), 20_000, "a holds b's file");
      await waitUntil(holds(c, "from-b.txt"), 20_000, "c holds b's file through a");
      const up2 = await f(`${c.url}/_cdn/upload`, {
        method: "POST",
        headers: { authorization: "Bearer token-of-c", "content-type": "application/x-ndjson" },
        body: await uploadStream("from-c.txt", body),
      });
      equal(up2.status, 201, await up2.text());
      await waitUntil(holds(a, "from-c.txt"), 20_000, "a holds c's file");
      await waitUntil(holds(b, "from-c.txt"), 20_000, "b holds c's file through a");
      // b (key alone) refuses c's certificate-signed calls: a bridges the two.
      await b.proc.waitFor(/auth: refused c: not an admitted node/, 15_000);
    } finally {
      await stopAll(nodes);
    }
  });
});

Deno.test("tls identity: a new node without --id takes its certificate's name", async () => {
  await withTempDir(async (dir) => {
    const certs = `${dir}/certs`;
    await makeCerts(["--out", certs, "--nodes", `a=${A}`]);
    const proc = await startReplica([
      ...["-o", "http://127.0.0.1:9", "--host", A, "--data", `${dir}/a`],
      ...tlsArgs(certs, "a"),
    ]);
    try {
      await proc.waitFor(/http: listening on https:\/\/127\.0\.0\.81:\d+\/ \(id a,/);
    } finally {
      await proc.kill9();
    }
  });
});
