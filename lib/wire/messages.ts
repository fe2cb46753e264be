/**
 * The messages other than object streams, in JSON or Protobuf: manifests, file records,
 * heartbeats, the server list and the answers to uploads and pushes. Each kind is one record
 * shape (the JSON one); its Protobuf message (`proto/*.proto`) decodes back to the same shape,
 * so the receiver validates both encodings with the same code. The Protobuf codecs
 * (`_messages_pb.ts`) are loaded on the first Protobuf message, so a JSON-only process does not
 * pay for them.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage } from "./messages.ts";
 * const beat = { from: { id: "a", url: "http://127.0.0.1:1" }, servers: [], digest: "d" };
 * const bytes = await encodeMessage("heartbeat", beat, "protobuf");
 * console.log(await decodeMessage("heartbeat", bytes, "protobuf")); // the same record
 * ```
 *
 * @module
 */

import type { PbKind } from "./_messages_pb.ts";
import type { WireEncoding } from "./encoding.ts";

/** The kinds of message {@link encodeMessage} and {@link decodeMessage} know. */
export type MessageKind = PbKind;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Encodes the record `value` of `kind` in `wire`. */
export async function encodeMessage(
  kind: MessageKind,
  value: unknown,
  wire: WireEncoding,
): Promise<Uint8Array<ArrayBuffer>> {
  if (wire === "json") return enc.encode(JSON.stringify(value));
  return (await import("./_messages_pb.ts")).encodePb(kind, value);
}

/**
 * Decodes a body of `kind` in `wire` to its record (not validated beyond its shape). Rejects
 * with a `SyntaxError` naming the kind when the bytes are not one.
 */
export async function decodeMessage(
  kind: MessageKind,
  bytes: Uint8Array,
  wire: WireEncoding,
): Promise<unknown> {
  if (wire === "json") {
    try {
      return JSON.parse(dec.decode(bytes));
    } catch (e) {
      throw new SyntaxError(`${kind} body is not JSON: ${(e as Error).message}`);
    }
  }
  return (await import("./_messages_pb.ts")).decodePb(kind, bytes);
}
