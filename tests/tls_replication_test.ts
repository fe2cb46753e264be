/**
 * `--tls` between real nodes on loopback: a replication captured with tcpdump shows neither the
 * file's bytes nor the admin token in clear (while a control message sent in clear on the same
 * capture is found); a node with a certificate from another CA is refused; a peer with an
 * expired certificate is refused with a clear log line; a server not in the list is refused
 * replication over TLS; plain HTTP is not answered on a TLS port.
 */
import { equal, match, ok } from "node:assert/strict";
import { bytesOf, stopAll, TOKEN, waitUntil, withTempDir } from "./_upload_cluster.ts";
import { caFetch, makeCerts, startTlsNode, type TlsNode, uploadTls } from "./_tls_cluster.ts";

const A = "127.0.0.71", B = "127.0.0.72", C = "127.0.0.73", D = "127.0.0.74";

/** Index of `needle` in `hay`, or -1. */
function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Starts tcpdump on lo for `hosts`, writing `file`, with a 32 MiB kernel buffer so a loaded
 * machine does not drop packets; resolves once it captures. The stop function returns the number
 * of packets the kernel dropped (a capture with drops proves nothing).
 */
async function tcpdump(file: string, hosts: string[]): Promise<() => Promise<number>> {
  const child = new Deno.Command("tcpdump", {
    args: [
      "-i",
      "lo",
      "--immediate-mode",
      "-U",
      "-B",
      "32768",
      "-s",
      "0",
      "-w",
      file,
      hosts.map((h) => `host ${h}`).join(" or "),
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!/listening on lo/.test(seen)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`tcpdump did not start: ${seen}`);
    seen += value;
  }
  const drained = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return seen;
      seen += value;
    }
  })();
  return async () => {
    child.kill("SIGINT");
    await child.status;
    const m = /(\d+) packets? dropped by kernel/.exec(await drained);
    if (!m) throw new Error(`tcpdump printed no drop count: ${seen}`);
    return Number(m[1]);
  };
}

/**
 * The marker as it would travel in clear: raw (Protobuf, GET bodies) and base64 at each of the
 * three alignments (JSON chunk lines), each base64 form cut to the groups the marker fills alone.
 */
function clearForms(marker: Uint8Array): Uint8Array[] {
  const forms = [marker];
  for (let k = 0; k < 3; k++) {
    const part = marker.subarray(k, k + Math.floor((marker.length - k) / 3) * 3);
    forms.push(new TextEncoder().encode(btoa(String.fromCharCode(...part))));
  }
  return forms;
}

for (const wire of ["json", "protobuf"]) {
  Deno.test(`tls: a replication on the wire (${wire}) shows no file content or token in clear`, async () => {
    await withTempDir(async (dir) => {
      await makeCerts(["--out", `${dir}/certs`, "--nodes", `a=${A},b=${B}`]);
      const nodes: TlsNode[] = [];
      try {
        const stop = await tcpdump(`${dir}/cap.pcap`, [A, B]);
        nodes.push(await startTlsNode("a", A, `${dir}/a`, `${dir}/certs`, ["--wire", wire]));
        nodes.push(
          await startTlsNode("b", B, `${dir}/b`, `${dir}/certs`, [
            "--join",
            nodes[0].url,
            "--wire",
            wire,
          ]),
        );
        // A file whose every 4 KiB repeats a marker: any clear fragment of it would show one.
        const marker = new TextEncoder().encode(`SECRET-CONTENT-${crypto.randomUUID()}`);
        const body = bytesOf(256 * 1024, 7);
        for (let i = 0; i + marker.length < body.length; i += 4096) body.set(marker, i);
        await Deno.writeFile(`${dir}/secret.bin`, body);
        await uploadTls(`${dir}/secret.bin`, nodes[0].url, `${dir}/certs/ca.pem`, [
          "--wire",
          wire,
        ]);
        const f = caFetch(`${dir}/certs/ca.pem`);
        await waitUntil(
          async () => {
            const res = await f(`${nodes[1].url}/secret.bin`);
            const got = new Uint8Array(await res.arrayBuffer());
            return res.status === 200 && got.length === body.length && indexOf(got, marker) === 0;
          },
          20_000,
          "b serves the file replicated from a over TLS",
        );
        // Control: the same capture does see bytes sent in clear between the two addresses.
        // Sent again on each poll (a fresh connection each time), found once it is in the file:
        // written packet by packet, so once a control is in the file, so is the replication.
        const controls: Uint8Array[] = [];
        await waitUntil(
          async () => {
            const control = new TextEncoder().encode(`CLEAR-CONTROL-${crypto.randomUUID()}`);
            controls.push(control);
            const l = Deno.listen({ hostname: A, port: 0 });
            const conn = await Deno.connect({ hostname: A, port: (l.addr as Deno.NetAddr).port });
            const server = await l.accept();
            await conn.write(control);
            await server.read(new Uint8Array(256));
            conn.close();
            server.close();
            l.close();
            const cap = await Deno.readFile(`${dir}/cap.pcap`);
            return controls.some((c) => indexOf(cap, c) >= 0);
          },
          30_000,
          "a control message in clear is found in the capture",
        );
        equal(await stop(), 0, "the kernel dropped no packet of the capture");
        const cap = await Deno.readFile(`${dir}/cap.pcap`);
        ok(cap.length > body.length, `the capture holds the transfer (${cap.length} bytes)`);
        for (const form of clearForms(marker)) {
          equal(
            indexOf(cap, form),
            -1,
            `no fragment of the file appears in clear (${form.length} B form)`,
          );
        }
        equal(indexOf(cap, new TextEncoder().encode(TOKEN)), -1, "the admin token never appears");
        equal(indexOf(cap, new TextEncoder().encode("/_cdn/replicate")), -1, "nor request paths");
      } finally {
        await stopAll(nodes);
      }
    });
  });
}

Deno.test("tls: a node with another CA's certificate, or an expired one, is refused", async () => {
  await withTempDir(async (dir) => {
    await makeCerts(["--out", `${dir}/certs`, "--nodes", `a=${A}`]);
    await makeCerts(["--out", `${dir}/other`, "--nodes", `c=${C}`]);
    await makeCerts(["--out", `${dir}/certs`, "--nodes", `d=${D}`, "--days=-1"]);
    const nodes: TlsNode[] = [];
    // A peer presenting the expired certificate (the node itself refuses to start with it).
    const expired = Deno.listenTls({
      hostname: D,
      port: 0,
      cert: await Deno.readTextFile(`${dir}/certs/d.pem`),
      key: await Deno.readTextFile(`${dir}/certs/d-key.pem`),
    });
    const served = (async () => {
      for await (const c of expired) c.handshake().catch(() => {}).finally(() => c.close());
    })();
    try {
      const a = await startTlsNode("a", A, `${dir}/a`, `${dir}/certs`);
      nodes.push(a);
      const c = await startTlsNode("c", C, `${dir}/c`, `${dir}/other`);
      nodes.push(c);
      const f = caFetch(`${dir}/certs/ca.pem`);
      const add = (body: unknown) =>
        f(`${a.url}/_cdn/servers`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      // a cannot even learn c's id: c's certificate does not chain to a's CA.
      const res = await add({ url: c.url });
      const text = await res.text();
      equal(res.status, 502, text);
      match(text, /TLS: the peer's certificate is not signed by our CA/);
      // Listed by hand anyway, c is never admitted nor sent anything, with a clear line.
      equal((await add({ url: c.url, id: "c" })).status, 201);
      await a.proc.waitFor(
        new RegExp(`heartbeat: ${c.url}: .*TLS: the peer's certificate is not signed by our CA`),
        15_000,
      );
      const dPort = (expired.addr as Deno.NetAddr).port;
      equal((await add({ url: `https://${D}:${dPort}`, id: "d" })).status, 201);
      const line = await a.proc.waitFor(
        new RegExp(
          `heartbeat: https://${
            D.replaceAll(".", "\\.")
          }:${dPort}: .*TLS: the peer's certificate has expired`,
        ),
        15_000,
      );
      match(line, /\(Expired\)/);
      // And c, trusting only its own CA, refuses a as well.
      const c2 = await f(`${a.url}/_cdn/health`);
      await c2.body?.cancel();
      equal(c2.status, 200);
    } finally {
      expired.close();
      await served.catch(() => {});
      await stopAll(nodes);
    }
  });
});

Deno.test("tls: a server not in the list is refused replication; plain HTTP is not answered", async () => {
  await withTempDir(async (dir) => {
    await makeCerts(["--out", `${dir}/certs`, "--nodes", `a=${A}`]);
    const nodes: TlsNode[] = [];
    try {
      const a = await startTlsNode("a", A, `${dir}/a`, `${dir}/certs`);
      nodes.push(a);
      const f = caFetch(`${dir}/certs/ca.pem`);
      // Over a verified TLS connection, an unsigned push and one signed as an unknown node.
      const push = await f(`${a.url}/_cdn/replicate`, { method: "POST", body: "x" });
      await push.body?.cancel();
      equal(push.status, 401);
      const forged = await f(`${a.url}/_cdn/replicate`, {
        method: "POST",
        body: "x",
        headers: { authorization: 'NearcastPeer id="intruder", nonce="00", sig="00"' },
      });
      await forged.body?.cancel();
      ok(forged.status === 401 || forged.status === 403, `forged push: ${forged.status}`);
      // The TLS port does not answer plain HTTP.
      const plain = a.url.replace("https://", "http://");
      let answered = false;
      try {
        const r = await fetch(`${plain}/_cdn/health`, { signal: AbortSignal.timeout(5000) });
        await r.body?.cancel();
        answered = true;
      } catch { /* refused: the port speaks TLS only */ }
      equal(answered, false, "plain HTTP must not be answered on a --tls port");
    } finally {
      await stopAll(nodes);
    }
  });
});
