/**
 * Node-to-node trust against real nodes: the test signs requests itself (as a forger, and with
 * a node's real key read from its data directory) to show what is refused and what is not; a
 * removed node is refused while the others keep replicating; a version far in the future is
 * refused and does not move the clock; a delete reaching a node before the file leaves a
 * tombstone that wins.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  AUTH_SCHEME,
  bodyDigest,
  DIGEST_HEADER,
  newKey,
  newNonce,
  objectDigest,
  parseAuthFields,
  requestText,
  responseText,
  SIGNATURE_HEADER,
  Signer,
  type StoredKey,
} from "../lib/replication/trust.ts";
import { encodeObjectStream, type ObjectHeader } from "../lib/upload/wire.ts";
import {
  converged,
  get,
  manifestOf,
  runUpload,
  sha256,
  startJoined,
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  TOKEN,
  uploadAs,
  waitUntil,
  withNodes,
  withTempDir,
} from "./_upload_cluster.ts";

const CONVERGE_MS = 15_000;

function keyOf(node: TestNode): StoredKey {
  return JSON.parse(Deno.readTextFileSync(`${node.dir}/node_key.json`));
}

/** A request signed as `id` with `key` (by default a fresh signature each call). */
async function signed(
  url: string,
  path: string,
  init: { method: string; id: string; key: StoredKey; body?: Uint8Array; digest?: string },
  reuse?: { ts: number; nonce: string },
): Promise<Response> {
  const ts = reuse?.ts ?? Date.now();
  const nonce = reuse?.nonce ?? newNonce();
  const digest = init.digest ?? bodyDigest(init.body ?? null);
  const sig = new Signer(init.id, init.key).sign(requestText(init.method, path, ts, nonce, digest));
  return await tfetch(`${url}${path}`, {
    method: init.method,
    headers: {
      authorization: `${AUTH_SCHEME} id=${init.id}, ts=${ts}, nonce=${nonce}, sig=${sig}`,
      [DIGEST_HEADER]: digest,
    },
    body: init.body as Uint8Array<ArrayBuffer> | undefined,
  });
}

async function status(res: Response): Promise<number> {
  await res.body?.cancel();
  return res.status;
}

async function wire(h: ObjectHeader, body: Uint8Array): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of encodeObjectStream(h, [body], 65536)) parts.push(p.slice());
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

Deno.test("trust: only admitted keys are accepted; a replay and a future version are refused", async () => {
  await withNodes(async (dir, nodes) => {
    const [a, b] = await startJoined(dir, nodes, ["a", "b"]);
    const hb = new TextEncoder().encode(JSON.stringify({ servers: [], digest: "" }));
    // No signature, the admin token (no longer a node credential), a wrong key: 401.
    equal(
      await status(await tfetch(`${a.url}/_cdn/heartbeat`, { method: "POST", body: hb })),
      401,
    );
    equal(
      await status(
        await tfetch(`${a.url}/_cdn/export?name=x`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        }),
      ),
      401,
    );
    const forged = await signed(a.url, "/_cdn/heartbeat", {
      method: "POST",
      id: "b",
      key: newKey(),
      body: hb,
    });
    equal(await status(forged), 401);
    // b's real key is accepted, and the answer is signed by a.
    const ts = Date.now(), nonce = newNonce();
    const ok1 = await signed(a.url, "/_cdn/heartbeat", {
      method: "POST",
      id: "b",
      key: keyOf(b),
      body: hb,
    }, { ts, nonce });
    equal(ok1.status, 200);
    match(ok1.headers.get("x-nearcast-signature") ?? "", /^id=a, sig=/);
    await ok1.body?.cancel();
    // The same request again (same time and nonce): a replay, refused.
    const replay = await signed(a.url, "/_cdn/heartbeat", {
      method: "POST",
      id: "b",
      key: keyOf(b),
      body: hb,
    }, { ts, nonce });
    equal(await status(replay), 401);
    // A body that differs from the signed digest: refused.
    const swapped = await signed(a.url, "/_cdn/heartbeat", {
      method: "POST",
      id: "b",
      key: keyOf(b),
      body: hb,
      digest: bodyDigest("{}"),
    });
    equal(await status(swapped), 400);

    // A version 10^9 ms ahead, signed by b: refused, and a's clock does not jump.
    const bytes = new TextEncoder().encode("from the future");
    const header: ObjectHeader = {
      name: "future.txt",
      contentType: "text/plain",
      size: bytes.length,
      sha256: await sha256(bytes),
      mtime: 0,
      meta: {},
      version: { ts: Date.now() + 1e9, node: "b" },
    };
    const future = await signed(a.url, "/_cdn/replicate", {
      method: "POST",
      id: "b",
      key: keyOf(b),
      body: await wire(header, bytes),
      digest: objectDigest(header),
    });
    equal(future.status, 400);
    match(await future.text(), /ahead of this node's clock/);
    // The same through a heartbeat's server list: the entry is skipped.
    const listed = await signed(a.url, "/_cdn/heartbeat", {
      method: "POST",
      id: "b",
      key: keyOf(b),
      body: new TextEncoder().encode(JSON.stringify({
        servers: [{
          id: "z",
          url: "http://127.0.0.1:1",
          version: { ts: Date.now() + 1e9, node: "b" },
          removed: false,
          key: "",
        }],
      })),
    });
    equal(await status(listed), 200);
    const all = await (await tfetch(`${a.url}/_cdn/servers?all=1`)).json() as { id: string }[];
    deepEqual(all.map((s) => s.id).sort(), ["a", "b"]);
    equal((await get(`${a.url}/_cdn/files/future.txt`)).status, 404);
    await uploadAs(dir, a, "now.txt", "now");
    const info = await (await tfetch(`${a.url}/_cdn/files/now.txt`)).json();
    ok(info.version.ts < Date.now() + 60_000, `clock jumped: ${info.version.ts}`);
  });
});

Deno.test("trust: a removed node is refused everywhere while the others keep replicating", async () => {
  await withNodes<TestNode | null>(async (dir, nodes) => {
    const [a, b, c] = await startJoined(dir, nodes, ["a", "b", "c"]);
    await uploadAs(dir, c, "before.txt", "before");
    await waitUntil(() => converged([a, b, c]), CONVERGE_MS, "three nodes to agree");

    const del = await tfetch(`${a.url}/_cdn/servers/c`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    equal(await status(del), 200);
    // b learns the removal from a's heartbeats and then refuses c's key.
    const hb = new TextEncoder().encode(JSON.stringify({ servers: [] }));
    await waitUntil(
      async () =>
        await status(
          await signed(b.url, "/_cdn/heartbeat", {
            method: "POST",
            id: "c",
            key: keyOf(c),
            body: hb,
          }),
        ) === 401,
      CONVERGE_MS,
      "b to refuse c",
    );
    equal(
      await status(
        await signed(a.url, "/_cdn/heartbeat", {
          method: "POST",
          id: "c",
          key: keyOf(c),
          body: hb,
        }),
      ),
      401,
    );
    // c's heartbeats do not bring it back, even a while later.
    await new Promise((r) => setTimeout(r, 1000));
    for (const n of [a, b]) {
      const list = await (await tfetch(`${n.url}/_cdn/servers`)).json() as { id: string }[];
      deepEqual(list.map((s) => s.id).sort(), ["a", "b"], n.id);
    }
    // An upload to c no longer reaches a or b; one to a still reaches b.
    await uploadAs(dir, c, "from-c.txt", "c");
    await uploadAs(dir, a, "after.txt", "after");
    await waitUntil(
      async () => (await get(`${b.url}/after.txt`)).status === 200,
      CONVERGE_MS,
      "b to get after.txt",
    );
    await new Promise((r) => setTimeout(r, 1000));
    ok(!(await manifestOf(a.url)).has("from-c.txt"), "a took a file from a removed node");
    ok(!(await manifestOf(b.url)).has("from-c.txt"), "b took a file from a removed node");

    // Let the machine in again: a new key (node_key.json deleted), admitted with the token.
    const idx = nodes.indexOf(c);
    await c.proc.close();
    nodes[idx] = null;
    await Deno.remove(`${c.dir}/node_key.json`);
    const c2 = await startNode("c", c.dir, ["--join", a.url]);
    nodes[idx] = c2;
    await uploadAs(dir, a, "welcome-back.txt", "back");
    await waitUntil(
      async () => (await get(`${c2.url}/welcome-back.txt`)).status === 200,
      CONVERGE_MS,
      "c (new key) to get welcome-back.txt",
    );
  });
});

Deno.test("trust: a delete that reaches a node before the file leaves a tombstone that wins", async () => {
  await withNodes(async (dir, nodes) => {
    const a = await startNode("a", `${dir}/a`);
    nodes.push(a);
    await uploadAs(dir, a, "x.txt", "soon deleted");
    // b does not know a yet: it has not received x.txt when the delete reaches it.
    const b = await startNode("b", `${dir}/b`);
    nodes.push(b);
    const r = await runUpload(["--delete", "x.txt", "--to", b.url, "--token", TOKEN]);
    equal(r.code, 0, r.err);
    const add = await tfetch(`${b.url}/_cdn/servers`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ url: a.url }),
    });
    equal(await status(add), 201);
    await waitUntil(() => converged([a, b]), CONVERGE_MS, "a and b to agree");
    equal((await manifestOf(a.url)).get("x.txt"), "-");
    equal((await manifestOf(b.url)).get("x.txt"), "-");
  });
});

Deno.test("trust: a restarted node keeps its key and replicates without the admin token", async () => {
  await withNodes<TestNode | null>(async (dir, nodes) => {
    const [a, first] = await startJoined(dir, nodes, ["a", "b"]);
    let b = first;
    const key = keyOf(b);
    ok(b.proc.lines.some((l) => /admitted at/.test(l)), "first start: admitted with the token");
    // With a new key it asked for admission before its first heartbeat: a refused none.
    ok(!a.proc.lines.some((l) => /auth: refused b/.test(l)), a.proc.lines.join("\n"));
    // Restarted with the token: its key is known, the token is not presented again.
    await b.proc.close();
    b = await startNode("b", `${dir}/b`, ["--join", a.url]);
    nodes[1] = b;
    await waitUntil(() => converged([a, b]), CONVERGE_MS, "a and b to agree");
    ok(!b.proc.lines.some((l) => /admitted at/.test(l)), b.proc.lines.join("\n"));
    await b.proc.close();
    nodes[1] = null;
    // An empty --admin-token (given last) disables it: b has only its own key now.
    b = await startNode("b", `${dir}/b`, ["--join", a.url, "--admin-token", ""]);
    nodes[1] = b;
    deepEqual(keyOf(b), key);
    ok(!b.proc.lines.some((l) => /admitted at/.test(l)), b.proc.lines.join("\n"));
    await uploadAs(dir, a, "after-restart.txt", "still trusted");
    await waitUntil(
      async () => (await get(`${b.url}/after-restart.txt`)).status === 200,
      CONVERGE_MS,
      "b to get after-restart.txt",
    );
    await waitUntil(() => converged([a, b]), CONVERGE_MS, "a and b to agree");
  });
});

Deno.test("trust: a signed manifest listing a version far ahead is skipped; the clock stays", async () => {
  await withTempDir(async (dir) => {
    const nodes: (TestNode | null)[] = [];
    let forger: Deno.HttpServer | null = null;
    try {
      const [a, b] = await startJoined(dir, nodes, ["a", "b"]);
      const key = keyOf(b);
      const port = Number(new URL(b.url).port);
      await b.proc.close();
      nodes[1] = null;
      // Someone holding b's key answers at b's address: every answer correctly signed as b.
      const signer = new Signer("b", key);
      const future = { ts: Date.now() + 1e9, node: "b" };
      let manifests = 0;
      forger = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
        await req.body?.cancel();
        const nonce = parseAuthFields(
          (req.headers.get("authorization") ?? "").replace(`${AUTH_SCHEME} `, ""),
        )?.nonce ?? "";
        const path = new URL(req.url).pathname;
        if (path === "/_cdn/manifest") manifests++;
        const body = JSON.stringify(
          path === "/_cdn/manifest"
            ? {
              node: "b",
              digest: "x",
              entries: [{
                name: "evil.txt",
                version: future,
                deleted: false,
                sha256: "a".repeat(64),
                size: 1,
              }],
            }
            : { from: { id: "b", url: b.url }, servers: [], digest: "differs" },
        );
        const digest = bodyDigest(body);
        return new Response(body, {
          headers: {
            "content-type": "application/json",
            [DIGEST_HEADER]: digest,
            [SIGNATURE_HEADER]: `id=b, sig=${signer.sign(responseText(nonce, 200, digest))}`,
          },
        });
      });
      await waitUntil(() => manifests > 0, CONVERGE_MS, "a to fetch the forged manifest");
      await waitUntil(
        () => a.proc.lines.some((l) => /skipped evil\.txt: version .* ahead/.test(l)),
        CONVERGE_MS,
        "a to log the skipped entry",
      );
      ok(!(await manifestOf(a.url)).has("evil.txt"));
      await uploadAs(dir, a, "later.txt", "later");
      const info = await (await tfetch(`${a.url}/_cdn/files/later.txt`)).json();
      ok(info.version.ts < Date.now() + 60_000, `clock jumped: ${info.version.ts}`);
    } finally {
      await forger?.shutdown();
      await stopAll(nodes);
    }
  });
});
