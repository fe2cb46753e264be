/**
 * In-process part of the wire experiment: each workload encoded and decoded in JSON and in
 * Protobuf with the code the nodes run (`lib/wire/`, `lib/upload/wire.ts`), measuring bytes
 * on the wire, messages (lines or frames), and time to encode and to decode.
 *
 * @module
 */

import { decodeObjectStreamAs, writeObjectStreamAs } from "../../lib/wire/object_stream.ts";
import { decodeMessage, encodeMessage, type MessageKind } from "../../lib/wire/messages.ts";
import type { WireEncoding } from "../../lib/wire/encoding.ts";
import type { ObjectHeader } from "../../lib/upload/wire.ts";
import { checkHeader } from "../../lib/upload/validate.ts";
import { createHash } from "node:crypto";

/** Chunk size of every object stream here: the client's and the nodes' default. */
export const CHUNK = 1024 * 1024;
/** Pieces the decoder is fed in, as a loopback socket delivers a body. */
const PIECE = 64 * 1024;

/** One workload: an object stream or a message. */
export type Workload =
  | { kind: "object"; label: string; header: ObjectHeader; body: Uint8Array; count?: number }
  | { kind: "message"; label: string; message: MessageKind; value: unknown };

/** Incompressible bytes (media-like), deterministic for a seed. */
export function randomBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed | 1;
  const view = new Uint32Array(out.buffer, 0, size >> 2);
  for (let i = 0; i < view.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    view[i] = x >>> 0;
  }
  for (let i = view.length * 4; i < size; i++) out[i] = i & 0xff;
  return out;
}

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A header for `body` named `name` with `meta`. */
export function headerOf(name: string, body: Uint8Array, meta: Record<string, string> = {}) {
  return {
    name,
    contentType: "application/octet-stream",
    size: body.length,
    sha256: sha256(body),
    mtime: 1_767_323_045_000,
    meta,
  };
}

/** A manifest of `n` files, as a node holding them answers `GET /_cdn/manifest`. */
export function manifestOf(n: number): unknown {
  const entries = [];
  for (let i = 0; i < n; i++) {
    const name = `assets/img/${String(i).padStart(7, "0")}.webp`;
    entries.push({
      name,
      version: { ts: 1_767_323_045_000 + i, node: `node-${i % 3}` },
      deleted: i % 50 === 0,
      sha256: sha256(new TextEncoder().encode(name)),
      size: 20_000 + i,
      contentType: "image/webp",
      mtime: 1_767_323_000_000,
      meta: { team: "web", build: String(1000 + (i % 7)) },
    });
  }
  return { node: "node-0", digest: "f".repeat(64), entries };
}

/** A heartbeat of a node in a fleet of `servers` nodes (its size does not depend on files held). */
export function heartbeatOf(servers: number): unknown {
  const list = [];
  for (let i = 0; i < servers; i++) {
    list.push({
      id: `node-${i}`,
      url: `http://10.0.${i >> 8}.${i & 0xff}:8080`,
      version: { ts: 1_767_323_045_000 + i, node: `node-${i}` },
      removed: false,
      // An Ed25519 SPKI public key in base64 (44 bytes of DER).
      key: btoa(String.fromCharCode(...randomBytes(44, i + 1))),
      provider: "aws",
    });
  }
  return {
    from: { id: "node-0", url: "http://10.0.0.0:8080" },
    servers: list,
    digest: "e".repeat(64),
  };
}

/** Metadata-heavy: 64 pairs (the cap) of 32-character keys and 200-character values. */
export function heavyMeta(): Record<string, string> {
  const meta: Record<string, string> = {};
  for (let i = 0; i < 64; i++) {
    meta[`key-${String(i).padStart(28, "0")}`] = "v".repeat(199) + i % 10;
  }
  return meta;
}

/** What one encoding of a workload measured. */
export interface Measured {
  bytes: number;
  messages: number;
  encodeMs: number;
  decodeMs: number;
  /** SHA-256 of what decoding gave back (objects), to compare across encodings. */
  sha256?: string;
}

/** Encodes and decodes `w` once in `wire`; `count` streams for a many-files workload. */
export async function measure(w: Workload, wire: WireEncoding): Promise<Measured> {
  if (w.kind === "message") {
    const t0 = performance.now();
    const encoded = await encodeMessage(w.message, w.value, wire);
    const t1 = performance.now();
    await decodeMessage(w.message, encoded, wire);
    const t2 = performance.now();
    return { bytes: encoded.length, messages: 1, encodeMs: t1 - t0, decodeMs: t2 - t1 };
  }
  let bytes = 0, messages = 0, encodeMs = 0, decodeMs = 0;
  let hash = "";
  for (let i = 0; i < (w.count ?? 1); i++) {
    // Encode into two reused buffers as the client does; the frames are copied out (outside
    // the timed part would cost a copy too, so it is inside for both encodings alike).
    const parts: Uint8Array[] = [];
    const t0 = performance.now();
    await writeObjectStreamAs(wire, w.header, [w.body], CHUNK, (f) => {
      parts.push(f.slice());
      return Promise.resolve();
    });
    const t1 = performance.now();
    const total = parts.reduce((n, p) => n + p.length, 0);
    bytes += total;
    messages += parts.length;
    const pieces = pieceStream(parts, total);
    const t2 = performance.now();
    const d = await decodeObjectStreamAs(wire, pieces, { reuseBuffers: true });
    const checked = checkHeader(d.header, false);
    if (typeof checked === "string") throw new Error(`${w.label} ${wire}: ${checked}`);
    const h = createHash("sha256");
    for await (const c of d.body) h.update(c);
    const t3 = performance.now();
    encodeMs += t1 - t0;
    decodeMs += t3 - t2;
    hash = h.digest("hex");
  }
  return { bytes, messages, encodeMs, decodeMs, sha256: hash };
}

/** The encoded parts re-cut into {@link PIECE}-byte pieces (a byte stream, as a socket gives). */
function pieceStream(parts: Uint8Array[], total: number): ReadableStream<Uint8Array> {
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  let pos = 0;
  return new ReadableStream({
    pull(c) {
      if (pos >= all.length) return c.close();
      c.enqueue(all.slice(pos, pos + PIECE));
      pos += PIECE;
    },
  });
}

/** Hashing the body alone, the floor under any decode of an object stream (SHA-256 is checked). */
export function hashOnlyMs(body: Uint8Array): number {
  const t0 = performance.now();
  createHash("sha256").update(body).digest("hex");
  return performance.now() - t0;
}
