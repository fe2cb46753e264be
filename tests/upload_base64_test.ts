/**
 * Unit tests of the byte-buffer base64 codec (`lib/upload/base64.ts`) against `node:buffer`
 * and `atob`/`btoa`, and of the wire paths built on it: chunk lines written as bytes, the
 * decoder's in-place fast path and its `JSON.parse` fallback, reused buffers (BYOB reads,
 * `writeObjectStream` with a file-like reader and slow writes).
 */
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  base64DecodedLength,
  base64EncodedLength,
  decodeBase64,
  decodeBase64Into,
  encodeBase64,
  encodeBase64Into,
} from "../lib/upload/base64.ts";
import {
  decodeObjectStream,
  encodeObjectStream,
  type ObjectHeader,
  WireError,
  writeObjectStream,
} from "../lib/upload/wire.ts";
import { bytesOf, sha256 } from "./_upload_cluster.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function random(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
}

function randomBytes(n: number, rand: (n: number) => number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rand(256);
  return b;
}

Deno.test("base64: round trip against node:buffer and btoa/atob, every size mod 3", () => {
  const rand = random(7);
  const sizes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 255, 256, 257, 65535, 65536, 65537];
  for (let i = 0; i < 300; i++) sizes.push(rand(3000));
  for (let i = 0; i < 3; i++) sizes.push(1_000_000 + rand(3)); // 1 MB-ish, each mod 3
  const mods = new Set<number>();
  for (const n of sizes) {
    mods.add(n % 3);
    const bytes = randomBytes(n, rand);
    const ref = Buffer.from(bytes).toString("base64");
    const b64 = encodeBase64(bytes);
    equal(b64.length, base64EncodedLength(n));
    equal(dec.decode(b64), ref, `encode ${n}`);
    if (n < 5000) {
      equal(dec.decode(b64), btoa(String.fromCharCode(...bytes)), `btoa ${n}`);
    }
    const back = decodeBase64(b64);
    ok(back !== null);
    deepStrictEqual(back, bytes, `decode ${n}`);
    equal(base64DecodedLength(b64), n);
    // Into the middle of a larger buffer, untouched around it.
    const dst = new Uint8Array(b64.length + 10).fill(0xee);
    equal(encodeBase64Into(bytes, dst, 5), b64.length);
    deepStrictEqual(dst.subarray(5, 5 + b64.length), b64);
    equal(dst[4], 0xee);
    equal(dst[5 + b64.length], 0xee);
    // In place: the output overwrites the text it came from.
    const inPlace = b64.slice();
    equal(decodeBase64Into(inPlace, 0, inPlace.length, inPlace, 0), n);
    deepStrictEqual(inPlace.subarray(0, n), bytes, `in place ${n}`);
  }
  deepStrictEqual([...mods].sort(), [0, 1, 2]);
});

Deno.test("base64: decoding random text agrees with atob on what is valid", () => {
  const rand = random(11);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < 2000; i++) {
    const quads = rand(4);
    let s = "";
    for (let k = 0; k < quads * 4; k++) s += alphabet[rand(64)];
    const pad = rand(3);
    if (s.length > 0 && pad > 0) s = s.slice(0, s.length - pad) + "=".repeat(pad);
    // Unused low bits may be set (atob and Buffer ignore them, so do we).
    const ref = Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
    deepStrictEqual(decodeBase64(enc.encode(s)), ref, s);
    deepStrictEqual(ref, new Uint8Array(Buffer.from(s, "base64")), s);
  }
});

Deno.test("base64: invalid text is refused and leaves the output untouched", () => {
  const bad = [
    "A", // length not a multiple of 4
    "AB",
    "ABC",
    "ABCDE",
    "A===", // three pads
    "====",
    "A=AA", // pad in the middle
    "AB=C",
    "AA==AAAA", // pad before the end
    "AAA*", // outside the alphabet
    "AA-_", // base64url is not accepted
    "AAA ", // whitespace
    "AA\nA",
    "AAA\u00e9",
    "AAAA=",
    "AAAA==",
  ];
  for (const s of bad) {
    const bytes = enc.encode(s);
    equal(decodeBase64(bytes), null, JSON.stringify(s));
    equal(base64DecodedLength(bytes), -1, JSON.stringify(s));
    const copy = bytes.slice();
    equal(decodeBase64Into(copy, 0, copy.length, copy, 0), -1);
    deepStrictEqual(copy, bytes, `untouched: ${JSON.stringify(s)}`);
  }
  // Room is checked.
  throws(() => encodeBase64Into(new Uint8Array(3), new Uint8Array(3)), RangeError);
  throws(() => decodeBase64Into(enc.encode("AAAA"), 0, 4, new Uint8Array(2)), RangeError);
  // A range of a larger buffer.
  const text = enc.encode("xxaGk=yy");
  const out = new Uint8Array(2);
  equal(decodeBase64Into(text, 2, 6, out), 2);
  equal(dec.decode(out), "hi");
});

async function header(body: Uint8Array): Promise<ObjectHeader> {
  return {
    name: "f.bin",
    contentType: "application/octet-stream",
    size: body.length,
    sha256: await sha256(body),
    mtime: 1,
    meta: {},
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function collectCopies(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  // Copies every chunk before reading the next: what a reuseBuffers reader allows.
  const parts: Uint8Array[] = [];
  for await (const c of s) parts.push(c.slice());
  return concat(parts);
}

/** A byte stream (BYOB-capable) that delivers `bytes` in pieces of the given sizes. */
function byteStream(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let off = 0;
  let i = 0;
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      if (off >= bytes.length) {
        c.close();
        c.byobRequest?.respond(0);
        return;
      }
      const n = Math.min(sizes[i++ % sizes.length], bytes.length - off);
      const req = c.byobRequest;
      if (req?.view) {
        const k = Math.min(n, req.view.byteLength);
        new Uint8Array(req.view.buffer, req.view.byteOffset, k).set(bytes.subarray(off, off + k));
        off += k;
        req.respond(k);
      } else {
        c.enqueue(bytes.slice(off, off + n));
        off += n;
      }
    },
  });
}

Deno.test("wire: chunk lines are the JSON they always were", async () => {
  const body = bytesOf(10_000, 3);
  const h = await header(body);
  const text = dec.decode(
    new Uint8Array(await new Response(encodeObjectStream(h, [body], 3000)).arrayBuffer()),
  );
  const lines = text.split("\n");
  equal(lines[0], JSON.stringify(h));
  for (let i = 0; i < 4; i++) {
    const off = i * 3000;
    const data = Buffer.from(body.subarray(off, off + 3000)).toString("base64");
    equal(lines[i + 1], JSON.stringify({ offset: off, data }));
  }
  equal(lines[5], '{"end":true}');
  equal(lines[6], "");
});

Deno.test("wire: the JSON.parse fallback takes what the fast path does not", async () => {
  const body = enc.encode("hello, world");
  const h = await header(body);
  const b64 = Buffer.from(body.subarray(5)).toString("base64");
  const first = Buffer.from(body.subarray(0, 5)).toString("base64");
  const wire = `${JSON.stringify(h)}\n` +
    // other key order and spaces, then an escaped character in the data
    `{ "data": "${first}", "offset": 0 }\n` +
    `{"offset":5,"data":"${b64.replace("/", "\\/")}","extra":1}\n{"end":true}\n`;
  for (const reuseBuffers of [false, true]) {
    const d = await decodeObjectStream(byteStream(enc.encode(wire), [7, 3, 100]), {
      reuseBuffers,
    });
    deepStrictEqual(await collectCopies(d.body), body);
  }
  // Errors are the same as before the fast path: bad offsets and base64 in canonical lines.
  const cases: [string, RegExp][] = [
    ['{"offset":01,"data":"AAAA"}', /chunk at 0 is not JSON/],
    ['{"offset":1,"data":"AAAA"}', /expected offset 0, got 1/],
    ['{"offset":0,"data":"AA=A"}', /chunk at 0: data must be a base64 string/],
    ['{"offset":0,"data":"AAA"}', /chunk at 0: data must be a base64 string/],
    ['{"offset":0,"data":"AAAA"', /chunk at 0 is not JSON/],
    ['{"offset":0,"data":"AAAA"} ', /^body longer than the declared size 2$/],
    ['{"offset":0,"data":"AAAA"}', /^body longer than the declared size 2$/],
  ];
  for (const [line, re] of cases) {
    for (const reuseBuffers of [false, true]) {
      const d = await decodeObjectStream(
        byteStream(enc.encode(`${JSON.stringify({ ...h, size: 2 })}\n${line}\n{"end":true}\n`), [
          5,
        ]),
        { reuseBuffers },
      );
      await rejects(
        collectCopies(d.body),
        (e: Error) => e instanceof WireError && re.test(e.message),
        line,
      );
    }
  }
});

Deno.test("wire: reused buffers (BYOB reads, writeObjectStream) round trip", async () => {
  const rand = random(5);
  for (let round = 0; round < 20; round++) {
    const size = round === 0 ? 0 : rand(300_000);
    const body = bytesOf(size, round + 9);
    const h = await header(body);
    const chunk = 1 + rand(100_000);
    // A file-like source read into the reused chunk buffer, in short reads.
    let pos = 0;
    const reader = {
      read(p: Uint8Array): Promise<number | null> {
        if (pos >= body.length) return Promise.resolve(null);
        const n = Math.min(p.length, 1 + rand(50_000), body.length - pos);
        p.set(body.subarray(pos, pos + n));
        pos += n;
        return Promise.resolve(n);
      },
    };
    // A slow writer that copies only when the write "completes": a buffer reused too early
    // would show up as corrupt output.
    const parts: Uint8Array[] = [];
    let lines = 0;
    await writeObjectStream(h, reader, chunk, async (line) => {
      lines++;
      await new Promise((r) => setTimeout(r, rand(2)));
      parts.push(line.slice());
    });
    const wire = concat(parts);
    equal(lines, 2 + Math.ceil(size / chunk));
    const reference = new Uint8Array(
      await new Response(encodeObjectStream(h, [body], chunk)).arrayBuffer(),
    );
    deepStrictEqual(wire, reference, `round ${round}`);
    const d = await decodeObjectStream(byteStream(wire, [1 + rand(70_000), 1 + rand(10)]), {
      reuseBuffers: true,
    });
    deepStrictEqual(d.header, h as unknown as Record<string, unknown>);
    const out = await collectCopies(d.body);
    equal(out.length, size);
    equal(await sha256(out), h.sha256, `round ${round}`);
  }
  // A failing write rejects, after the writes in flight have settled.
  const body = bytesOf(50_000, 1);
  await rejects(
    writeObjectStream(
      await header(body),
      [body],
      1000,
      (line) => line.length > 100 ? Promise.reject(new Error("peer gone")) : Promise.resolve(),
    ),
    /peer gone/,
  );
});
