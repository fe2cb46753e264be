/**
 * Small HTTP helpers of the replication modules: answers, refusals and body handling.
 *
 * @module
 */

import { WireError } from "../upload/wire.ts";
import { BodyTooLarge, readBodyBytes } from "../common/body.ts";
import {
  answerEncoding,
  bodyEncoding,
  contentTypeOf,
  type WireEncoding,
} from "../wire/encoding.ts";
import { decodeMessage, encodeMessage, type MessageKind } from "../wire/messages.ts";

/** Why a request was refused: an HTTP status and a message. */
export class Refusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** A JSON answer that is never cached. */
export function json(v: unknown, status = 200, extra: [string, string][] = []): Response {
  return new Response(JSON.stringify(v), {
    status,
    headers: [["content-type", "application/json"], ["cache-control", "no-store"], ...extra],
  });
}

/**
 * An answer of `kind` in the encoding `req` asks for (`Accept`: Protobuf or JSON), never
 * cached.
 */
export async function encoded(
  req: Request,
  kind: MessageKind,
  v: unknown,
  status = 200,
  extra: [string, string][] = [],
): Promise<Response> {
  const enc = answerEncoding(req.headers);
  return new Response(await encodeMessage(kind, v, enc), {
    status,
    headers: [["content-type", contentTypeOf(enc)], ["cache-control", "no-store"], ...extra],
  });
}

/** A plain-text answer `STATUS: message` that is never cached. */
export function text(status: number, message: string, extra: [string, string][] = []): Response {
  return new Response(`${status}: ${message}\n`, {
    status,
    headers: [
      ["content-type", "text/plain; charset=utf-8"],
      ["cache-control", "no-store"],
      ...extra,
    ],
  });
}

/** Reads a body to its end, discarding it. */
export async function drain(body: ReadableStream<Uint8Array> | null): Promise<void> {
  if (body === null) return;
  for await (const _ of body) { /* discard */ }
}

/** Maps a store failure on an incoming body to a refusal: the sender's fault is a 400. */
export function bodyRefusal(e: unknown): Error {
  if (e instanceof Refusal) return e;
  let cause: unknown = e;
  while (cause instanceof Error) {
    if (cause instanceof WireError) return new Refusal(400, `${cause.message}; nothing stored`);
    cause = cause.cause;
  }
  const msg = (e as Error).message ?? String(e);
  if (/does not match expected|ended after|longer than expectedSize|body stream failed/.test(msg)) {
    const short = msg.replace(/^Cannot store "[^"]*": /, "").replace(/ \(temporary file .*\)$/, "");
    return new Refusal(400, `${short}; nothing stored`);
  }
  return e as Error;
}

/** The origin of an http(s) URL, or null when `v` is not one. */
export function serverUrl(v: unknown): string | null {
  if (typeof v !== "string") return null;
  try {
    const u = new URL(v);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    return u.origin;
  } catch {
    return null;
  }
}

/**
 * Reads an object body of at most `max` bytes (shared bounded reader); 413 or 400. JSON, or
 * for a message `kind`, JSON or Protobuf by its `Content-Type` (`encoding` says which).
 */
export async function readJsonObject(
  req: Request,
  max: number,
  kind?: MessageKind,
): Promise<{ raw: Uint8Array; value: Record<string, unknown>; encoding: WireEncoding }> {
  let raw: Uint8Array;
  try {
    raw = await readBodyBytes(req, max);
  } catch (e) {
    if (e instanceof BodyTooLarge) throw new Refusal(413, e.message);
    throw new Refusal(400, `cannot read the body: ${(e as Error).message}`);
  }
  const encoding = kind === undefined ? "json" : bodyEncoding(req.headers);
  if (encoding === "protobuf") {
    try {
      return {
        raw,
        value: await decodeMessage(kind!, raw, encoding) as Record<string, unknown>,
        encoding,
      };
    } catch (e) {
      throw new Refusal(400, (e as Error).message);
    }
  }
  try {
    const v = JSON.parse(new TextDecoder().decode(raw));
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error();
    return { raw, value: v, encoding };
  } catch {
    throw new Refusal(400, "body must be a JSON object");
  }
}
