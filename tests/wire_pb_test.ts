/**
 * The Protobuf object stream and messages (`lib/wire/`), in-process: round trips over random
 * chunk and network piece sizes; the hand-written chunk frame equals protobuf-es's `toBinary`;
 * hostile Protobuf streams fail with a WireError naming the problem; a mutation fuzz of both
 * encodings never crashes the decoder (a WireError, or a body that the SHA-256 check refuses);
 * the messages decode back to the JSON records; `Accept`/`Content-Type` negotiation.
 */
import { deepStrictEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  decodeObjectStream,
  encodeObjectStream,
  type ObjectHeader,
  WireError,
} from "../lib/upload/wire.ts";
import {
  chunkFrameLength,
  decodeObjectStreamPb,
  MAX_FRAME_BYTES,
} from "../lib/wire/object_stream_pb.ts";
import {
  decodeObjectStreamAs,
  encodeObjectStreamAs,
  writeObjectStreamAs,
} from "../lib/wire/object_stream.ts";
import { FrameSchema } from "../lib/wire/gen/object_pb.ts";
import { headerToPb } from "../lib/wire/_convert.ts";
import { decodeMessage, encodeMessage, type MessageKind } from "../lib/wire/messages.ts";
import {
  answerEncoding,
  bodyEncoding,
  parseWire,
  type WireEncoding,
} from "../lib/wire/encoding.ts";
import { checkHeader } from "../lib/upload/validate.ts";
import { readJsonObject, Refusal } from "../lib/replication/_http.ts";
import { bytesOf, sha256 } from "./_upload_cluster.ts";
import { collect, header, mutate, rechunk, rng } from "./_wire_streams.ts";
import { concatBytes } from "../lib/common/bytes.ts";

/** Varint length prefix + bytes. */
function delimited(msg: Uint8Array): Uint8Array {
  const len: number[] = [];
  let n = msg.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  const out = new Uint8Array(len.length + msg.length);
  out.set(len);
  out.set(msg, len.length);
  return out;
}

function frame(kind: Parameters<typeof create<typeof FrameSchema>>[1]): Uint8Array {
  return delimited(toBinary(FrameSchema, create(FrameSchema, kind)));
}

const concat = (...parts: Uint8Array[]) => concatBytes(parts);

Deno.test("wire pb: round trip over random chunk and network piece sizes", async () => {
  const rand = rng(7);
  for (let round = 0; round < 30; round++) {
    const size = rand(5) === 0 ? 0 : rand(200_000);
    const body = bytesOf(size, round + 1);
    const h = await header(body, round % 3 === 0 ? { version: { ts: 5 + round, node: "n" } } : {});
    const chunkSize = 1 + rand(70_000);
    const sources = [body.subarray(0, size >> 1), body.subarray(size >> 1)];
    const wireBytes = await collect(await encodeObjectStreamAs("protobuf", h, sources, chunkSize));
    const d = await decodeObjectStreamPb(
      rechunk(wireBytes, [1 + rand(10), 1 + rand(5000), 1 + rand(100_000)]),
      { reuseBuffers: round % 2 === 0 },
    );
    const checked = checkHeader(d.header, false);
    deepStrictEqual(checked, { ...h, version: h.version });
    // Reused buffers: hash each chunk before reading the next.
    const hash = new Gathered();
    for await (const c of d.body) hash.update(c);
    equal(hash.length, size, `round ${round}`);
    equal(await hash.hex(), h.sha256, `round ${round}`);
  }
});

/** Gathers chunks by copying (a chunk is valid until the next read with reused buffers). */
class Gathered {
  #parts: Uint8Array[] = [];
  length = 0;
  update(c: Uint8Array) {
    this.#parts.push(c.slice());
    this.length += c.length;
  }
  hex() {
    return sha256(concat(...this.#parts));
  }
}

Deno.test("wire pb: the hand-written chunk frame is what toBinary writes; sizes as computed", async () => {
  for (const [offset, size] of [[0, 1], [0, 1024], [1024, 1024], [300, 70_000], [2 ** 40, 5]]) {
    const data = bytesOf(size, 3);
    const frames: Uint8Array[] = [];
    const h = await header(new Uint8Array(0));
    // The framer's chunk, through writeObjectStreamPb with a body of exactly one chunk.
    await writeObjectStreamAs("protobuf", { ...h, size }, [data], Math.max(1, size), (f) => {
      frames.push(f.slice());
      return Promise.resolve();
    });
    const expected = frame({ kind: { case: "chunk", value: { offset: 0n, data } } });
    if (offset === 0 && size > 0) {
      deepStrictEqual(frames[1], expected);
      equal(frames[1].length, chunkFrameLength(0, size));
    }
    const at = frame({ kind: { case: "chunk", value: { offset: BigInt(offset), data } } });
    equal(at.length, chunkFrameLength(offset, size), `offset ${offset} size ${size}`);
  }
  // Hand-computed: a 1 KiB chunk at offset 0 is 1024 + tag 1 + length 2 (Chunk.data), + tag 1
  // + length 2 (Frame.chunk), + a 2-byte frame length = 1032 bytes; in JSON 20 + 1368 + 3 = 1391.
  equal(chunkFrameLength(0, 1024), 1032);
  const json = await collect(
    encodeObjectStream(await header(bytesOf(1024, 1)), [bytesOf(1024, 1)], 1024),
  );
  const lines = new TextDecoder().decode(json).split("\n");
  equal(lines[1].length + 1, 1391);
});

Deno.test("wire pb: hostile streams fail with a WireError", async () => {
  const body = bytesOf(1000, 5);
  const h = await header(body);
  const hf = frame({ kind: { case: "header", value: headerToPb(h) } });
  const chunk = (offset: number, data: Uint8Array) =>
    frame({ kind: { case: "chunk", value: { offset: BigInt(offset), data } } });
  const end = frame({ kind: { case: "end", value: {} } });
  const cases: [string, Uint8Array, RegExp][] = [
    ["no end frame", hf, /truncated after 0 bytes \(no end frame\)/],
    ["cut inside a frame", concat(hf, chunk(0, body).subarray(0, 500)), /truncated inside frame 1/],
    ["gap", concat(hf, chunk(10, body.subarray(0, 4)), end), /expected offset 0, got 10/],
    [
      "over size",
      concat(
        frame({ kind: { case: "header", value: headerToPb({ ...h, size: 2 }) } }),
        chunk(0, body),
        end,
      ),
      /longer than the declared size 2/,
    ],
    ["after end", concat(hf, end, end), /data after the end frame/],
    ["empty chunk", concat(hf, chunk(0, new Uint8Array(0)), end), /empty chunk at 0/],
    ["second header", concat(hf, hf), /a second header frame/],
    ["empty frame", concat(hf, delimited(new Uint8Array(0))), /neither a chunk nor the end/],
    [
      "garbage frame",
      concat(hf, delimited(new Uint8Array([0xff, 0xff, 0xff]))),
      /not a valid Protobuf Frame/,
    ],
    [
      "frame too long",
      concat(hf, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])),
      new RegExp(`frame 1 longer than ${MAX_FRAME_BYTES} bytes`),
    ],
  ];
  for (const [what, bytes, re] of cases) {
    const d = await decodeObjectStreamPb(rechunk(bytes, [7, 300]));
    await rejects(
      collect(d.body),
      (e: Error) => e instanceof WireError && re.test(e.message),
      what,
    );
  }
  await rejects(decodeObjectStreamPb(ReadableStream.from([])), /empty body/);
  await rejects(
    decodeObjectStreamPb(ReadableStream.from([end])),
    /the first frame must be the object header/,
  );
  await rejects(
    decodeObjectStreamPb(ReadableStream.from([new TextEncoder().encode('{"name":"x"}\n')])),
    (e: Error) => e instanceof WireError,
  );
  // A header frame over 64 KiB is refused from its length, before it is gathered.
  await rejects(
    decodeObjectStreamPb(ReadableStream.from([new Uint8Array([0x80, 0x80, 0x08])])),
    /frame 0 longer than 65536 bytes/,
  );
  // An endless frame is refused at its length prefix: nothing is buffered.
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(c) {
      pulled++;
      c.enqueue(
        pulled === 1
          ? concat(hf, new Uint8Array([0x80, 0x80, 0x80, 0x08]))
          : new Uint8Array(1 << 20),
      );
    },
  });
  const d = await decodeObjectStreamPb(endless);
  await rejects(collect(d.body), /longer than/);
  ok(pulled <= 2, `read ${pulled} pieces before refusing`);
});

for (const wire of ["json", "protobuf"] as WireEncoding[]) {
  Deno.test(`wire fuzz (${wire}): mutated streams give a WireError or fail the checks, never a crash`, async () => {
    const rand = rng(wire === "json" ? 11 : 13);
    const body = bytesOf(3000, 9);
    const h = await header(body, { version: { ts: 77, node: "n1" }, meta: { a: "b", c: "d" } });
    const good = await collect(await encodeObjectStreamAs(wire, h, [body], 700));
    let wireErrors = 0, refused = 0, intact = 0;
    for (let i = 0; i < 600; i++) {
      const bad = mutate(rand, good);
      try {
        const d = await decodeObjectStreamAs(wire, rechunk(bad, [1 + rand(200), 1 + rand(4000)]));
        const checked = checkHeader(d.header, true);
        const out = await collect(d.body);
        if (typeof checked === "string") refused++;
        else if (out.length !== checked.size || (await sha256(out)) !== checked.sha256) refused++;
        else intact++;
      } catch (e) {
        ok(e instanceof WireError, `mutation ${i}: ${(e as Error).stack}`);
        wireErrors++;
      }
    }
    // Most mutations are caught by the decoder; the rest by the checks or the SHA-256.
    ok(wireErrors > 100, `${wireErrors} WireErrors, ${refused} refused, ${intact} intact`);
  });
}

Deno.test("wire: the same header and body decode alike from both encodings", async () => {
  const body = bytesOf(50_000, 2);
  const h = await header(body, { meta: { "ключ": "значение", e: "" }, mtime: 1_700_000_000_000 });
  for (const wire of ["json", "protobuf"] as WireEncoding[]) {
    const d = await decodeObjectStreamAs(wire, await encodeObjectStreamAs(wire, h, [body], 4096));
    deepStrictEqual(checkHeader(d.header, false), { ...h, version: undefined });
    equal(await sha256(await collect(d.body)), h.sha256);
  }
  // Tombstones: no chunks, and the header says deleted.
  const t = { ...h, size: 0, sha256: "", deleted: true, version: { ts: 9, node: "x" } };
  const d = await decodeObjectStreamPb(await encodeObjectStreamAs("protobuf", t, [], 1024));
  equal((checkHeader(d.header, true) as ObjectHeader).deleted, true);
  equal((await collect(d.body)).length, 0);
  // A JSON stream read as Protobuf (or the reverse) is refused, not misread.
  const json = await collect(encodeObjectStream(h, [body], 4096));
  await rejects(
    (async () => collect((await decodeObjectStreamPb(ReadableStream.from([json]))).body))(),
    (e: Error) => e instanceof WireError,
  );
  const pb = await collect(await encodeObjectStreamAs("protobuf", h, [body], 4096));
  await rejects(
    decodeObjectStream(ReadableStream.from([pb])),
    (e: Error) => e instanceof WireError,
  );
});

Deno.test("wire pb: a 64-bit size past 2^53 or a short hash is refused by the checks", async () => {
  const h = await header(new Uint8Array(0));
  const big = frame({
    kind: {
      case: "header",
      value: { ...headerToPb(h), size: 2n ** 60n, sha256: new Uint8Array(31) },
    },
  });
  const d = await decodeObjectStreamPb(ReadableStream.from([big]));
  match(checkHeader(d.header, false) as string, /size must be a non-negative integer/);
  const short = frame({
    kind: { case: "header", value: { ...headerToPb(h), sha256: new Uint8Array(31) } },
  });
  const d2 = await decodeObjectStreamPb(ReadableStream.from([short]));
  match(checkHeader(d2.header, false) as string, /sha256 must be 64 lowercase hex digits/);
});

Deno.test("wire messages: every kind decodes back to its JSON record", async () => {
  const v = { ts: 1_700_000_000_123, node: "a" };
  const entry = {
    name: "x/y.bin",
    version: v,
    deleted: false,
    sha256: "ab".repeat(32),
    size: 12,
    contentType: "text/plain",
    mtime: 5,
    meta: { k: "v" },
  };
  const tomb = { ...entry, deleted: true, sha256: "", size: 0, contentType: "", meta: {} };
  const server = { id: "n1", url: "http://127.0.0.1:8080", version: v, removed: false, key: "" };
  const priced = { ...server, id: "n2", provider: "aws" };
  const records: [MessageKind, unknown][] = [
    [
      "heartbeat",
      { from: { id: "a", url: "http://127.0.0.1:1" }, servers: [server, priced], digest: "d" },
    ],
    ["manifest", { node: "a", digest: "f".repeat(64), entries: [entry, tomb] }],
    ["files", [entry]],
    ["file", { ...entry, path: "/x/y.bin" }],
    ["servers", [{
      id: "n1",
      url: "http://127.0.0.1:8080",
      provider: "",
      self: true,
      alive: true,
      lastSeenMs: null,
      removed: false,
      admitted: true,
      version: v,
    }, {
      id: "n2",
      url: "http://127.0.0.1:8081",
      provider: "gcp",
      self: false,
      alive: false,
      lastSeenMs: 1500,
      removed: true,
      admitted: false,
      version: v,
    }]],
    ["uploadAnswer", {
      status: "stored",
      name: "a",
      path: "/a",
      size: 3,
      sha256: "cd".repeat(32),
      version: v,
      pushingTo: 2,
    }],
    ["replicateAnswer", { result: "applied", node: "b", digest: "e".repeat(64) }],
  ];
  for (const [kind, rec] of records) {
    const pb = await encodeMessage(kind, rec, "protobuf");
    deepStrictEqual(await decodeMessage(kind, pb, "protobuf"), rec, kind);
    deepStrictEqual(
      await decodeMessage(kind, await encodeMessage(kind, rec, "json"), "json"),
      rec,
      kind,
    );
    ok(pb.length < (await encodeMessage(kind, rec, "json")).length, `${kind}: Protobuf is smaller`);
  }
  await rejects(decodeMessage("heartbeat", new Uint8Array([0x0a, 0xff]), "protobuf"), SyntaxError);
  await rejects(decodeMessage("manifest", new TextEncoder().encode("{"), "json"), /not JSON/);
});

Deno.test("wire: encodings by Content-Type and Accept; --wire values", () => {
  const h = (o: Record<string, string>) => new Headers(o);
  equal(bodyEncoding(h({ "content-type": "application/x-protobuf" })), "protobuf");
  equal(bodyEncoding(h({ "content-type": "Application/X-Protobuf; messageType=x" })), "protobuf");
  equal(bodyEncoding(h({ "content-type": "application/json" })), "json");
  equal(bodyEncoding(h({ "content-type": "application/x-ndjson" })), "json");
  equal(bodyEncoding(h({})), "json");
  equal(answerEncoding(h({})), "json");
  equal(answerEncoding(h({ accept: "*/*" })), "json");
  equal(answerEncoding(h({ accept: "application/x-protobuf" })), "protobuf");
  equal(
    answerEncoding(h({ accept: "application/x-protobuf, application/json;q=0.5" })),
    "protobuf",
  );
  equal(answerEncoding(h({ accept: "application/json, application/x-protobuf;q=0.5" })), "json");
  equal(answerEncoding(h({ accept: "application/x-protobuf;q=0" })), "json");
  equal(parseWire("protobuf"), "protobuf");
  throws(() => parseWire("xml"), /--wire must be json or protobuf: received xml/);
});

Deno.test("wire: a record body in Protobuf is read bounded and refused clearly when malformed", async () => {
  const req = (body: Uint8Array, type = "application/x-protobuf") =>
    new Request("http://n/", {
      method: "POST",
      headers: { "content-type": type },
      body: body as Uint8Array<ArrayBuffer>,
    });
  const beat = { from: { id: "a", url: "http://127.0.0.1:1" }, servers: [], digest: "d" };
  const good = await readJsonObject(
    req(await encodeMessage("heartbeat", beat, "protobuf")),
    1024,
    "heartbeat",
  );
  equal(good.encoding, "protobuf");
  deepStrictEqual(good.value, beat);
  await rejects(
    readJsonObject(req(new Uint8Array([0x0a, 0xff])), 1024, "heartbeat"),
    (e: Error) =>
      e instanceof Refusal && e.status === 400 &&
      /heartbeat body is not a valid Protobuf message/.test(e.message),
  );
  await rejects(
    readJsonObject(req(new Uint8Array(2048)), 1024, "heartbeat"),
    (e: Error) => e instanceof Refusal && e.status === 413,
  );
  // Without a message kind (admission, server changes), a body is JSON whatever it says.
  await rejects(
    readJsonObject(req(await encodeMessage("heartbeat", beat, "protobuf")), 1024),
    (e: Error) => e instanceof Refusal && e.status === 400 && /JSON object/.test(e.message),
  );
});
