/**
 * Conversions between the records the JSON encoding carries and the generated Protobuf
 * messages. A decoded message becomes the same plain record a JSON body parses to (absent
 * fields `undefined`, hashes as hex, 64-bit integers as numbers), so one set of checks
 * (`lib/upload/validate.ts`, `membership.ts`, `sync.ts`) validates both encodings.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { create } from "@bufbuild/protobuf";
import type { ObjectHeader } from "../upload/wire.ts";
import {
  type ObjectHeader as PbHeader,
  ObjectHeaderSchema,
  type Version as PbVersion,
} from "./gen/object_pb.ts";

/** A 64-bit field as a number: beyond 2^53 it is not a safe integer, so the checks refuse it. */
export function num(v: bigint): number {
  return Number(v);
}

/** A non-negative safe integer (or anything else, for the checks to refuse) as a uint64. */
export function u64(v: unknown): bigint {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : 0n;
}

/** Hex (a SHA-256) as raw bytes; "" gives no bytes. */
export function hexBytes(hex: unknown): Uint8Array {
  if (typeof hex !== "string" || hex === "") return new Uint8Array(0);
  const b = Buffer.from(hex, "hex");
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Raw bytes as lower-case hex. */
export function bytesHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** A version record (`{ts, node}`) as a message, or undefined. */
export function versionToPb(v: unknown): { ts: bigint; node: string } | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const { ts, node } = v as { ts?: unknown; node?: unknown };
  return { ts: u64(ts), node: typeof node === "string" ? node : "" };
}

/** A version message as the JSON record, or undefined when absent. */
export function versionFromPb(v: PbVersion | undefined): { ts: number; node: string } | undefined {
  return v === undefined ? undefined : { ts: num(v.ts), node: v.node };
}

/** An object header as a message. */
export function headerToPb(h: ObjectHeader): PbHeader {
  return create(ObjectHeaderSchema, {
    name: h.name,
    contentType: h.contentType,
    size: u64(h.size),
    sha256: hexBytes(h.sha256),
    mtime: u64(h.mtime),
    meta: h.meta,
    version: versionToPb(h.version),
    deleted: h.deleted === true,
  });
}

/**
 * A header message as the record a JSON header line parses to (not yet validated: see
 * `checkHeader`). An empty content type is absent (application/octet-stream), as in JSON.
 */
export function headerFromPb(h: PbHeader): Record<string, unknown> {
  return {
    name: h.name,
    contentType: h.contentType === "" ? undefined : h.contentType,
    size: num(h.size),
    sha256: bytesHex(h.sha256),
    mtime: num(h.mtime),
    meta: { ...h.meta },
    version: versionFromPb(h.version),
    deleted: h.deleted ? true : undefined,
  };
}
