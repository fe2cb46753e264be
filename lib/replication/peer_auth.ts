/**
 * Signed node-to-node calls (formats in `trust.ts`): {@link PeerAuth.call} signs a request and
 * checks the answer's signature; {@link PeerAuth.check} checks an incoming request and
 * {@link PeerAuth.signed} signs the answer to it.
 *
 * @module
 */

import type { Membership } from "./membership.ts";
import { BodyTooLarge, readBodyBytes } from "../common/body.ts";
import { acceptOf, bodyEncoding, contentTypeOf, type WireEncoding } from "../wire/encoding.ts";
import { decodeMessage, type MessageKind } from "../wire/messages.ts";
import {
  AUTH_SCHEME,
  bodyDigest,
  DIGEST_HEADER,
  newNonce,
  NonceWindow,
  parseAuthFields,
  requestText,
  responseText,
  SIGNATURE_HEADER,
  type Signer,
  verifySignature,
} from "./trust.ts";
import { describeFetchError, peerFetch } from "../tls/client.ts";

/** Largest JSON answer read from another node (a manifest of ~100 000 names). */
export const MAX_PEER_ANSWER_BYTES = 64 * 1024 * 1024;

/** An authenticated caller: its id, the nonce to answer with and the digest it signed. */
export interface Caller {
  id: string;
  nonce: string;
  digest: string;
}

/**
 * A signed call: `body` (encoded by the caller) is sent as `wire` (JSON when not given), and
 * an answer in `wire` is asked for.
 */
export interface CallInit {
  method: string;
  body?: string | Uint8Array<ArrayBuffer>;
  signal: AbortSignal;
  expect?: string;
  wire?: WireEncoding;
}

/** A verified answer of another node. */
export interface PeerAnswer {
  status: number;
  /** The id of the node that signed the answer. */
  id: string;
  digest: string;
  headers: Headers;
  body: ReadableStream<Uint8Array> | null;
}

/** Why a call to another node failed (unreachable, refused, or an unsigned answer). */
export class PeerError extends Error {
  constructor(message: string, readonly status = 0, options?: ErrorOptions) {
    super(message, options);
  }
}

/** See the module doc. */
export class PeerAuth {
  #nonces: NonceWindow;

  constructor(
    private readonly signer: Signer,
    private readonly members: Membership,
    private readonly now: () => number,
    private readonly log: (line: string) => void,
  ) {
    this.#nonces = new NonceWindow(now);
  }

  /** The headers that sign a request: authorization and digest. */
  sign(method: string, pathQuery: string, digest: string): {
    headers: Record<string, string>;
    nonce: string;
  } {
    const ts = this.now();
    const nonce = newNonce();
    const sig = this.signer.sign(requestText(method, pathQuery, ts, nonce, digest));
    return {
      nonce,
      headers: {
        authorization: `${AUTH_SCHEME} id=${
          encodeURIComponent(this.signer.id)
        }, ts=${ts}, nonce=${nonce}, sig=${sig}`,
        [DIGEST_HEADER]: digest,
      },
    };
  }

  /**
   * Checks a signed answer: signed by a listed node (`expect` when given) for `nonce`.
   * Returns the signer's id; throws {@link PeerError} otherwise.
   */
  verifyAnswer(url: string, status: number, headers: Headers, nonce: string, expect?: string) {
    const f = parseAuthFields(headers.get(SIGNATURE_HEADER) ?? "");
    const digest = headers.get(DIGEST_HEADER) ?? "";
    if (f?.id === undefined || f.sig === undefined) {
      throw new PeerError(`${url} answered ${status} without a node signature`, status);
    }
    if (expect !== undefined && expect !== "" && f.id !== expect) {
      throw new PeerError(`${url} answered as ${f.id}, expected ${expect}`);
    }
    const key = this.members.keyOf(f.id);
    if (key === null) {
      throw new PeerError(`${url} answered as ${f.id}, not an admitted node`, status);
    }
    if (!verifySignature(key, responseText(nonce, status, digest), f.sig)) {
      throw new PeerError(`${url} answered with a bad signature for ${f.id}`);
    }
    return { id: f.id, digest };
  }

  /**
   * Makes a signed call; resolves with the verified answer (its body not read yet: a JSON
   * body must still be checked against `digest`, see {@link PeerAuth.json}).
   */
  async call(url: string, pathQuery: string, init: CallInit): Promise<PeerAnswer> {
    const { headers, nonce } = this.sign(init.method, pathQuery, bodyDigest(init.body ?? null));
    const wire = init.wire ?? "json";
    if (init.body !== undefined) headers["content-type"] = contentTypeOf(wire);
    headers["accept"] = acceptOf(wire);
    let res: Response;
    try {
      res = await peerFetch(`${url}${pathQuery}`, {
        method: init.method,
        headers,
        body: init.body,
        signal: init.signal,
      });
    } catch (e) {
      throw new PeerError(`${url} unreachable: ${describeFetchError(e)}`, 0, { cause: e });
    }
    try {
      const v = this.verifyAnswer(url, res.status, res.headers, nonce, init.expect);
      return { status: res.status, ...v, headers: res.headers, body: res.body };
    } catch (e) {
      await res.body?.cancel();
      throw e;
    }
  }

  /**
   * A signed call answered with a message: the answer's body checked against its signed
   * digest and decoded, as JSON or (for a `kind`, by its `Content-Type`) as Protobuf.
   */
  async json(
    url: string,
    pathQuery: string,
    init: CallInit & { kind?: MessageKind },
  ): Promise<{ status: number; id: string; value: Record<string, unknown>; headers: Headers }> {
    const a = await this.call(url, pathQuery, init);
    const raw = await readAll(a.body, MAX_PEER_ANSWER_BYTES, url);
    if (bodyDigest(raw) !== a.digest) {
      throw new PeerError(`${url}: the answer's body does not match its signed digest`);
    }
    let value: unknown;
    const enc = init.kind === undefined ? "json" : bodyEncoding(a.headers);
    try {
      value = await decodeMessage(init.kind ?? "heartbeat", raw, enc);
    } catch {
      value = null;
    }
    if (a.status === 200 && (typeof value !== "object" || value === null)) {
      throw new PeerError(
        `${url}: the answer is not a ${enc === "json" ? "JSON" : "Protobuf"} object`,
      );
    }
    const v = (value ?? {}) as Record<string, unknown>;
    return { status: a.status, id: a.id, value: v, headers: a.headers };
  }

  /**
   * Checks an incoming node request: a listed node's signature over the method, path, time,
   * nonce and digest, with a fresh time and nonce. Returns the caller, or null (the reason is
   * logged; the answer is a uniform 401).
   */
  check(req: Request): Caller | null {
    const auth = req.headers.get("authorization") ?? "";
    if (!auth.startsWith(`${AUTH_SCHEME} `)) return null;
    const f = parseAuthFields(auth.slice(AUTH_SCHEME.length + 1));
    const digest = req.headers.get(DIGEST_HEADER) ?? "";
    if (
      f?.id === undefined || f.ts === undefined || f.nonce === undefined || f.sig === undefined
    ) {
      this.log("auth: refused a malformed node signature");
      return null;
    }
    const key = this.members.keyOf(f.id);
    if (key === null) {
      this.log(`auth: refused ${f.id}: not an admitted node (unknown or removed)`);
      return null;
    }
    const u = new URL(req.url);
    const text = requestText(req.method, u.pathname + u.search, f.ts, f.nonce, digest);
    if (!verifySignature(key, text, f.sig)) {
      this.log(`auth: refused ${f.id}: bad signature`);
      return null;
    }
    if (!this.#nonces.fresh(f.nonce, f.ts)) {
      this.log(`auth: refused ${f.id}: stale time or replayed nonce`);
      return null;
    }
    return { id: f.id, nonce: f.nonce, digest };
  }

  /** Signs an answer to `caller`: `body` is its whole body, or `digest` describes a stream. */
  signed(
    caller: Caller,
    status: number,
    body: string | Uint8Array<ArrayBuffer> | null,
    digest = bodyDigest(body),
    headers: [string, string][] = [["content-type", "application/json"]],
    stream?: ReadableStream<Uint8Array>,
  ): Response {
    const sig = this.signer.sign(responseText(caller.nonce, status, digest));
    return new Response(stream ?? body, {
      status,
      headers: [
        ...headers,
        ["cache-control", "no-store"],
        [DIGEST_HEADER, digest],
        [SIGNATURE_HEADER, `id=${encodeURIComponent(this.signer.id)}, sig=${sig}`],
      ],
    });
  }
}

/** Reads an answer of at most `max` bytes (shared bounded reader); a {@link PeerError} else. */
export async function readAll(
  body: ReadableStream<Uint8Array> | null,
  max: number,
  what: string,
): Promise<Uint8Array> {
  try {
    return await readBodyBytes(body, max, `${what}: answer`);
  } catch (e) {
    if (e instanceof BodyTooLarge) throw new PeerError(e.message, 0, { cause: e });
    throw new PeerError(`${what}: answer cut: ${(e as Error).message}`, 0, { cause: e });
  }
}
