/**
 * End-to-end `--wire`: real nodes (`main_http.ts`) and the upload CLI on loopback.
 *
 * - a Protobuf upload is checked like a JSON one (name, size cap, SHA-256, truncation,
 *   malformed frames) and a bad one stores nothing; the node answers in the encoding asked
 *   for (`Accept`) on uploads, file records, the manifest and the server list;
 * - a mixed fleet (one JSON node, two Protobuf nodes) replicates uploads sent in either
 *   encoding to every node with identical bytes, and every node received Protobuf traffic.
 */
import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  bytesOf,
  converged,
  get,
  knowEachOther,
  runUpload,
  sha256,
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  TOKEN,
  waitUntil,
  withNodes,
  withTempDir,
} from "./_upload_cluster.ts";
import { collect, mutate, rng } from "./_wire_streams.ts";
import { encodeObjectStreamAs } from "../lib/wire/object_stream.ts";
import { FrameSchema } from "../lib/wire/gen/object_pb.ts";
import { headerToPb } from "../lib/wire/_convert.ts";
import { decodeMessage, type MessageKind } from "../lib/wire/messages.ts";
import type { ObjectHeader } from "../lib/upload/wire.ts";

const PB = "application/x-protobuf";
const CONVERGE_MS = 20_000;

async function post(node: TestNode, body: Uint8Array, accept = "text/plain", type = PB) {
  const res = await tfetch(`${node.url}/_cdn/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": type, accept },
    body: body as Uint8Array<ArrayBuffer>,
  });
  return {
    status: res.status,
    headers: res.headers,
    body: new Uint8Array(await res.arrayBuffer()),
  };
}

/** GET `path` asking for Protobuf; the decoded record of `kind`. */
async function getPb(node: TestNode, path: string, kind: MessageKind): Promise<unknown> {
  const res = await tfetch(`${node.url}${path}`, { headers: { accept: PB } });
  equal(res.headers.get("content-type"), PB, path);
  return await decodeMessage(kind, new Uint8Array(await res.arrayBuffer()), "protobuf");
}

async function assertNothingStored(node: TestNode, name: string) {
  const info = await tfetch(`${node.url}/_cdn/files/${name}`);
  await info.body?.cancel();
  equal(info.status, 404, `${name} must not be stored`);
  deepStrictEqual([...Deno.readDirSync(`${node.dir}/objects/tmp`)], [], "no temporary file");
}

async function healthOf(node: TestNode) {
  const h = await (await tfetch(`${node.url}/_cdn/health`)).json();
  return h.replication as { protobufBodies: number; protobufAnswers: number };
}

Deno.test("wire: a Protobuf upload is checked like a JSON one; answers follow Accept", async () => {
  await withTempDir(async (dir) => {
    const node = await startNode("p", dir, ["--max-upload-bytes", "200000"]);
    try {
      const body = bytesOf(100_000, 7);
      const good: ObjectHeader = {
        name: "ok.bin",
        contentType: "application/octet-stream",
        size: body.length,
        sha256: await sha256(body),
        mtime: 0,
        meta: { who: "test" },
      };
      const stream = async (h: ObjectHeader, b = body) =>
        collect(await encodeObjectStreamAs("protobuf", h, [b], 65536));
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      const cases: [string, Promise<Uint8Array> | Uint8Array, number, RegExp][] = [
        ["bad name", stream({ ...good, name: "../x" }), 400, /"\.\." segment/],
        ["reserved", stream({ ...good, name: "_cdn/health" }), 400, /reserved/],
        ["too large", stream({ ...good, size: 300_000 }), 413, /limit of 200000 bytes/],
        ["sha mismatch", stream({ ...good, sha256: "0".repeat(64) }), 400, /does not match/],
        ["longer", stream({ ...good, size: 1000 }), 400, /longer than the declared size 1000/],
        ["bad meta", stream({ ...good, meta: { k: "a\u0001" } }), 400, /control characters/],
        [
          "truncated",
          (async () => (await stream(good)).subarray(0, 70_000))(),
          400,
          /truncated inside frame \d; nothing stored/,
        ],
        [
          "no end",
          (async () => {
            const s = await stream(good);
            return s.subarray(0, s.length - 3);
          })(),
          400,
          /no end frame\); nothing stored/,
        ],
        [
          "garbage",
          new Uint8Array([0x05, 0xff, 0xff, 0xff, 0xff, 0xff]),
          400,
          /not a valid Protobuf/,
        ],
        ["JSON sent as Protobuf", new TextEncoder().encode('{"name":"a"}\n'), 400, /.+/],
        ["empty", new Uint8Array(0), 400, /empty body/],
        [
          "header too long",
          new Uint8Array([0x80, 0x80, 0x80, 0x01]),
          400,
          /frame 0 longer than 65536 bytes/,
        ],
      ];
      for (const [what, bytes, status, re] of cases) {
        const r = await post(node, await bytes);
        equal(r.status, status, `${what}: ${text(r.body)}`);
        match(text(r.body), re, what);
        await assertNothingStored(node, "ok.bin");
      }
      // A header whose 64-bit size does not fit a safe integer.
      const huge = toBinary(
        FrameSchema,
        create(FrameSchema, {
          kind: { case: "header", value: { ...headerToPb(good), size: 2n ** 63n } },
        }),
      );
      const r = await post(node, new Uint8Array([huge.length, ...huge]));
      equal(r.status, 400);
      match(text(r.body), /size must be a non-negative integer/);

      // A mutation fuzz against the node in both encodings: every answer is a 2xx (the mutation
      // left a valid upload) or a 4xx naming the problem, never a 5xx; nothing is left half
      // stored and the node stays up.
      const rand = rng(21);
      const fz = bytesOf(3000, 8);
      const fzHeader = { ...good, name: "fz.bin", size: fz.length, sha256: await sha256(fz) };
      for (const wire of ["json", "protobuf"] as const) {
        const valid = await collect(await encodeObjectStreamAs(wire, fzHeader, [fz], 700));
        const type = wire === "json" ? "application/x-ndjson" : PB;
        for (let i = 0; i < 40; i++) {
          const r = await post(node, mutate(rand, valid), "text/plain", type);
          ok(
            [200, 201, 400, 413].includes(r.status),
            `${wire} mutation ${i}: ${r.status} ${text(r.body)}`,
          );
        }
      }
      equal((await tfetch(`${node.url}/_cdn/health`)).status, 200);
      deepStrictEqual([...Deno.readDirSync(`${node.dir}/objects/tmp`)], [], "no temporary file");

      // Regression (found by the fuzz above): the same header again with a broken body was
      // answered 500 (the "unchanged" path drained the body outside the checks); now 400.
      for (const wire of ["json", "protobuf"] as const) {
        const type = wire === "json" ? "application/x-ndjson" : PB;
        const stored = await post(
          node,
          await collect(await encodeObjectStreamAs(wire, fzHeader, [fz], 700)),
          PB,
          type,
        );
        ok([200, 201].includes(stored.status), `${wire}: ${text(stored.body)}`);
        const broken = await collect(
          await encodeObjectStreamAs(wire, fzHeader, [fz.subarray(0, 2000)], 700),
        );
        const r = await post(node, broken.subarray(0, broken.length - 3), "text/plain", type);
        equal(r.status, 400, `${wire}: ${text(r.body)}`);
        match(text(r.body), /truncated|not JSON/);
      }

      // The good upload, answered in Protobuf when asked.
      const ok1 = await post(node, await stream(good), PB);
      equal(ok1.status, 201);
      equal(ok1.headers.get("content-type"), PB);
      const answer = (await decodeMessage("uploadAnswer", ok1.body, "protobuf")) as Record<
        string,
        unknown
      >;
      equal(answer.status, "stored");
      equal(answer.sha256, good.sha256);
      equal(await sha256((await get(`${node.url}/ok.bin`)).body), good.sha256);

      // Records in Protobuf decode to what the JSON answers say.
      const info = await getPb(node, "/_cdn/files/ok.bin", "file");
      deepStrictEqual(info, await (await tfetch(`${node.url}/_cdn/files/ok.bin`)).json());
      const manifest = await getPb(node, "/_cdn/manifest", "manifest");
      deepStrictEqual(manifest, await (await tfetch(`${node.url}/_cdn/manifest`)).json());
      const files = await getPb(node, "/_cdn/files", "files");
      deepStrictEqual(files, await (await tfetch(`${node.url}/_cdn/files`)).json());
      const servers = await getPb(node, "/_cdn/servers", "servers") as { id: string }[];
      deepStrictEqual(servers.map((s) => s.id), ["p"]);
      // Every field the JSON list shows survives Protobuf (a field added to one and not the
      // other fails here).
      const json = await (await tfetch(`${node.url}/_cdn/servers`)).json();
      deepStrictEqual(servers, json);

      // The CLI in Protobuf: the same content again is "unchanged" (read from a Protobuf record).
      await Deno.writeFile(`${dir}/ok.bin`, body);
      const cli = await runUpload([
        `${dir}/ok.bin`,
        "--to",
        node.url,
        "--token",
        TOKEN,
        "--wire",
        "protobuf",
        "--meta",
        "who=test",
        "--content-type",
        "application/octet-stream",
      ]);
      equal(cli.code, 0, cli.err);
      match(cli.out, /unchanged/);
      // The node keeps its encoded manifest until the digest changes: a new file shows at once.
      const more = bytesOf(5000, 9);
      const moreHeader = {
        ...good,
        name: "more.bin",
        size: more.length,
        sha256: await sha256(more),
      };
      const stored = await post(
        node,
        await collect(await encodeObjectStreamAs("protobuf", moreHeader, [more], 4096)),
      );
      equal(stored.status, 201);
      const after = await getPb(node, "/_cdn/manifest", "manifest") as {
        entries: { name: string }[];
      };
      ok(after.entries.some((e) => e.name === "more.bin"), "the Protobuf manifest lists more.bin");
      deepStrictEqual(after, await (await tfetch(`${node.url}/_cdn/manifest`)).json());
      const bad = await runUpload([`${dir}/ok.bin`, "--to", node.url, "--wire", "xml"]);
      equal(bad.code, 2);
      match(bad.err, /--wire must be json or protobuf: received xml/);
    } finally {
      await stopAll([node]);
    }
  });
});

Deno.test("wire: a mixed fleet (JSON, Protobuf, Protobuf) replicates both ways", async () => {
  await withNodes(async (dir, nodes) => {
    nodes.push(await startNode("a", `${dir}/a`));
    await Deno.writeTextFile(`${dir}/servers.json`, JSON.stringify([nodes[0].url]));
    const join = ["--servers", `${dir}/servers.json`, "--wire", "protobuf"];
    nodes.push(await startNode("b", `${dir}/b`, join));
    nodes.push(await startNode("c", `${dir}/c`, join));
    const [a, b, c] = nodes;
    await knowEachOther(nodes, CONVERGE_MS);
    // A Protobuf upload to the JSON node, a JSON upload to a Protobuf node.
    const one = bytesOf(2 * 1024 * 1024 + 17, 3);
    const two = bytesOf(70_000, 4);
    await Deno.writeFile(`${dir}/one.bin`, one);
    await Deno.writeFile(`${dir}/two.bin`, two);
    const up = (file: string, to: string, wire: string) =>
      runUpload([file, "--to", to, "--token", TOKEN, "--wire", wire, "--chunk-bytes", "65536"]);
    let r = await up(`${dir}/one.bin`, a.url, "protobuf");
    equal(r.code, 0, r.err);
    r = await up(`${dir}/two.bin`, b.url, "json");
    equal(r.code, 0, r.err);
    for (const [name, bytes] of [["one.bin", one], ["two.bin", two]] as const) {
      const want = await sha256(bytes);
      for (const n of nodes) {
        await waitUntil(
          async () => {
            const got = await get(`${n.url}/${name}`);
            return got.status === 200 && (await sha256(got.body)) === want;
          },
          CONVERGE_MS,
          `${name} on ${n.id}`,
        );
      }
    }
    await waitUntil(() => converged(nodes), CONVERGE_MS, "equal manifests");
    // The JSON node received Protobuf pushes and heartbeats and answered them in Protobuf;
    // the Protobuf nodes received JSON from it (their counters count only Protobuf).
    const ha = await healthOf(a);
    ok(ha.protobufBodies > 0, `a received ${ha.protobufBodies} Protobuf bodies`);
    ok(ha.protobufAnswers > 0, `a answered ${ha.protobufAnswers} times in Protobuf`);
    for (const n of [b, c]) {
      const h = await healthOf(n);
      ok(h.protobufBodies > 0, `${n.id} received ${h.protobufBodies} Protobuf bodies`);
    }

    // The rolling change ends: a restarts with --wire protobuf (same data, same id) and a
    // file uploaded to it in JSON reaches the others.
    await stopAll([a]);
    nodes[0] = await startNode("a", `${dir}/a`, ["--wire", "protobuf"]);
    const three = bytesOf(300_000, 5);
    await Deno.writeFile(`${dir}/three.bin`, three);
    r = await up(`${dir}/three.bin`, nodes[0].url, "json");
    equal(r.code, 0, r.err);
    const want3 = await sha256(three);
    for (const n of nodes) {
      await waitUntil(
        async () => {
          const got = await get(`${n.url}/three.bin`);
          return got.status === 200 && (await sha256(got.body)) === want3;
        },
        CONVERGE_MS,
        `three.bin on ${n.id} after a's restart`,
      );
    }
    await waitUntil(() => converged(nodes), CONVERGE_MS, "equal manifests after the restart");
  });
});
