/**
 * The Protobuf side of `messages.ts`: each message kind's schema and its conversion from and to
 * the JSON record shape. Loaded on first use (`messages.ts` imports it dynamically), because
 * `@bufbuild/protobuf` adds about 12 MiB to the resident memory of a process that never speaks
 * Protobuf.
 *
 * @module
 */

import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  HeartbeatSchema,
  type ManifestEntry,
  ManifestSchema,
  type ServerEntry,
  ServerListSchema,
  type ServerView,
} from "./gen/fleet_pb.ts";
import { ManifestEntrySchema } from "./gen/fleet_pb.ts";
import { ReplicateAnswerSchema, UploadAnswerSchema } from "./gen/object_pb.ts";
import { bytesHex, hexBytes, num, u64, versionFromPb, versionToPb } from "./_convert.ts";

type Rec = Record<string, unknown>;
const str = (v: unknown) => typeof v === "string" ? v : "";
const arr = (v: unknown) => Array.isArray(v) ? v as Rec[] : [];

function entryToPb(e: Rec) {
  return {
    name: str(e.name),
    version: versionToPb(e.version),
    deleted: e.deleted === true,
    sha256: hexBytes(e.sha256),
    size: u64(e.size),
    contentType: str(e.contentType),
    mtime: u64(e.mtime),
    meta: (e.meta ?? {}) as Record<string, string>,
    path: str(e.path),
  };
}

function entryFromPb(e: ManifestEntry): Rec {
  const out: Rec = {
    name: e.name,
    version: versionFromPb(e.version),
    deleted: e.deleted,
    sha256: bytesHex(e.sha256),
    size: num(e.size),
    contentType: e.contentType,
    mtime: num(e.mtime),
    meta: { ...e.meta },
  };
  if (e.path !== "") out.path = e.path;
  return out;
}

function serverToPb(s: Rec) {
  return {
    id: str(s.id),
    url: str(s.url),
    version: versionToPb(s.version),
    removed: s.removed === true,
    key: str(s.key),
    provider: str(s.provider),
  };
}

function serverFromPb(s: ServerEntry): Rec {
  const out: Rec = {
    id: s.id,
    url: s.url,
    version: versionFromPb(s.version),
    removed: s.removed,
    key: s.key,
  };
  if (s.provider !== "") out.provider = s.provider;
  return out;
}

function viewToPb(v: Rec) {
  return {
    id: str(v.id),
    url: str(v.url),
    provider: str(v.provider),
    self: v.self === true,
    alive: v.alive === true,
    lastSeenMs: typeof v.lastSeenMs === "number" ? u64(v.lastSeenMs) : undefined,
    removed: v.removed === true,
    admitted: v.admitted === true,
    version: versionToPb(v.version),
  };
}

function viewFromPb(v: ServerView): Rec {
  return {
    id: v.id,
    url: v.url,
    provider: v.provider,
    self: v.self,
    alive: v.alive,
    lastSeenMs: v.lastSeenMs === undefined ? null : num(v.lastSeenMs),
    removed: v.removed,
    admitted: v.admitted,
    version: versionFromPb(v.version),
  };
}

interface Codec {
  schema: DescMessage;
  toPb(v: unknown): Rec;
  // deno-lint-ignore no-explicit-any
  fromPb(m: any): unknown;
}

/** Every kind of message, with its Protobuf schema and the conversions. */
const CODECS = {
  /** `POST /_cdn/heartbeat` and its answer: `{from, servers, digest}`. */
  heartbeat: {
    schema: HeartbeatSchema,
    toPb: (v) => {
      const r = v as Rec;
      const from = (r.from ?? {}) as Rec;
      return {
        from: { id: str(from.id), url: str(from.url) },
        servers: arr(r.servers).map(serverToPb),
        digest: str(r.digest),
      };
    },
    fromPb: (m) => ({
      from: m.from === undefined ? undefined : { id: m.from.id, url: m.from.url },
      servers: m.servers.map(serverFromPb),
      digest: m.digest,
    }),
  },
  /** `GET /_cdn/manifest`: `{node, digest, entries}`. */
  manifest: {
    schema: ManifestSchema,
    toPb: (v) => {
      const r = v as Rec;
      return { node: str(r.node), digest: str(r.digest), entries: arr(r.entries).map(entryToPb) };
    },
    fromPb: (m) => ({ node: m.node, digest: m.digest, entries: m.entries.map(entryFromPb) }),
  },
  /** `GET /_cdn/files`: a list of entries (a manifest with only `entries`). */
  files: {
    schema: ManifestSchema,
    toPb: (v) => ({ entries: arr(v).map(entryToPb) }),
    fromPb: (m) => m.entries.map(entryFromPb),
  },
  /** `GET /_cdn/files/NAME`: one entry with its `path`. */
  file: {
    schema: ManifestEntrySchema,
    toPb: (v) => entryToPb(v as Rec),
    fromPb: entryFromPb,
  },
  /** `GET /_cdn/servers`: a list of server views. */
  servers: {
    schema: ServerListSchema,
    toPb: (v) => ({ servers: arr(v).map(viewToPb) }),
    fromPb: (m) => m.servers.map(viewFromPb),
  },
  /** The answer to `POST /_cdn/upload`. */
  uploadAnswer: {
    schema: UploadAnswerSchema,
    toPb: (v) => {
      const r = v as Rec;
      return {
        status: str(r.status),
        name: str(r.name),
        path: str(r.path),
        size: u64(r.size),
        sha256: hexBytes(r.sha256),
        version: versionToPb(r.version),
        pushingTo: typeof r.pushingTo === "number" ? r.pushingTo : 0,
      };
    },
    fromPb: (m) => ({
      status: m.status,
      name: m.name,
      path: m.path,
      size: num(m.size),
      sha256: bytesHex(m.sha256),
      version: versionFromPb(m.version),
      pushingTo: m.pushingTo,
    }),
  },
  /** The answer to `POST /_cdn/replicate`: `{result, node, digest}`. */
  replicateAnswer: {
    schema: ReplicateAnswerSchema,
    toPb: (v) => {
      const r = v as Rec;
      return { result: str(r.result), node: str(r.node), digest: str(r.digest) };
    },
    fromPb: (m) => ({ result: m.result, node: m.node, digest: m.digest }),
  },
} satisfies Record<string, Codec>;

/** The kinds of message this module knows. */
export type PbKind = keyof typeof CODECS;

/** Encodes the record `value` of `kind` as its Protobuf message. */
export function encodePb(kind: PbKind, value: unknown): Uint8Array<ArrayBuffer> {
  const c: Codec = CODECS[kind];
  return toBinary(c.schema, create(c.schema, c.toPb(value))) as Uint8Array<ArrayBuffer>;
}

/** Decodes the Protobuf message of `kind` to its record; throws a `SyntaxError` naming it. */
export function decodePb(kind: PbKind, bytes: Uint8Array): unknown {
  const c: Codec = CODECS[kind];
  let m;
  try {
    m = fromBinary(c.schema, bytes, { readUnknownFields: false });
  } catch (e) {
    throw new SyntaxError(`${kind} body is not a valid Protobuf message: ${(e as Error).message}`);
  }
  return c.fromPb(m);
}
