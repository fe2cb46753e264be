/**
 * Wire encodings and their negotiation. Every node accepts both: a body's encoding is read
 * from its `Content-Type`, an answer is written in the encoding the request's `Accept` asks
 * for. What a node or the upload client *sends* is chosen by `--wire json|protobuf` (JSON by
 * default), so a fleet can change encoding one node at a time.
 *
 * @example
 * ```ts
 * import { answerEncoding, bodyEncoding, contentTypeOf } from "./encoding.ts";
 * const req = new Request("http://n/", {
 *   method: "POST",
 *   headers: { "content-type": "application/x-protobuf", accept: "application/json" },
 * });
 * console.log(bodyEncoding(req.headers), answerEncoding(req.headers)); // "protobuf" "json"
 * console.log(contentTypeOf("protobuf")); // "application/x-protobuf"
 * ```
 *
 * @module
 */

/** The two encodings of `--wire`. */
export type WireEncoding = "json" | "protobuf";
/** Every value `--wire` takes. */
export const WIRE_ENCODINGS: readonly WireEncoding[] = ["json", "protobuf"];
/** The default: JSON, readable with curl and understood by nodes older than `--wire`. */
export const DEFAULT_WIRE: WireEncoding = "json";

/** Media type of Protobuf bodies (a message, or for object streams length-delimited frames). */
export const PROTOBUF_TYPE = "application/x-protobuf";
/** Media type of JSON bodies. */
export const JSON_TYPE = "application/json";
/** Media type of the JSON object stream (`lib/upload/wire.ts`). */
export const NDJSON_TYPE = "application/x-ndjson";

const PROTOBUF_ALIASES = new Set([PROTOBUF_TYPE, "application/protobuf", "application/x-proto"]);

/** The media type's essence, lower case, without parameters. */
function essence(v: string | null): string {
  return (v ?? "").split(";")[0].trim().toLowerCase();
}

/** Parses a `--wire` value; throws a `RangeError` naming the values it takes. */
export function parseWire(value: string): WireEncoding {
  const v = value.trim().toLowerCase();
  if (v === "json" || v === "protobuf") return v;
  if (v === "proto" || v === "pb") return "protobuf";
  throw new RangeError(`--wire must be json or protobuf: received ${value}`);
}

/** Content type of a message body in `enc`. */
export function contentTypeOf(enc: WireEncoding): string {
  return enc === "protobuf" ? PROTOBUF_TYPE : JSON_TYPE;
}

/** Content type of an object stream in `enc`. */
export function streamTypeOf(enc: WireEncoding): string {
  return enc === "protobuf" ? PROTOBUF_TYPE : NDJSON_TYPE;
}

/** The encoding of a body by its `Content-Type`: Protobuf when it says so, else JSON. */
export function bodyEncoding(headers: Headers): WireEncoding {
  return PROTOBUF_ALIASES.has(essence(headers.get("content-type"))) ? "protobuf" : "json";
}

/**
 * The encoding an answer should take by the request's `Accept`: Protobuf when it is listed
 * with a higher (or the same, listed first) quality than JSON, else JSON (no `Accept`, `*\/*`,
 * or anything else: curl and older nodes get JSON).
 */
export function answerEncoding(headers: Headers): WireEncoding {
  const accept = headers.get("accept");
  if (accept === null) return "json";
  let best: WireEncoding = "json";
  let bestQ = -1;
  for (const part of accept.split(",")) {
    const [type, ...params] = part.split(";");
    const t = type.trim().toLowerCase();
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m !== null) q = Number(m[1]);
    }
    const enc: WireEncoding | null = PROTOBUF_ALIASES.has(t)
      ? "protobuf"
      : t === JSON_TYPE || t === NDJSON_TYPE
      ? "json"
      : null;
    if (enc !== null && q > 0 && q > bestQ) {
      best = enc;
      bestQ = q;
    }
  }
  return best;
}

/** The `Accept` header a client sends to get answers in `enc` (JSON still acceptable). */
export function acceptOf(enc: WireEncoding): string {
  return enc === "protobuf" ? `${PROTOBUF_TYPE}, ${JSON_TYPE};q=0.5` : JSON_TYPE;
}
