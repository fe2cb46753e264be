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
import { CERT_HEADER, type CertSigner, type CertVerifier } from "../tls/cert_identity.ts";

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

/**
 * How node-to-node calls are authenticated (`--node-auth`): `key`, each node's Ed25519 key
 * (admitted with the admin token); `cert`, its TLS certificate (`lib/tls/cert_identity.ts`);
 * `both`, signed with both and accepted with either (a fleet changing mode one node at a time).
 */
export type NodeAuthMode = "key" | "cert" | "both";

/** The node's certificate credential, with `--node-auth cert` or `both`. */
export interface CertCredential {
  mode: "cert" | "both";
  /** Replaced when the node reloads its certificate files (SIGHUP). */
  signer: CertSigner;
  verifier: CertVerifier;
}

/** A refused node request: its status and the answer's body. */
export class AuthRefusal {
  constructor(readonly status: 401 | 403, readonly message: string) {}
}

/** The answer to a refused node-key request: uniform, the reason is only logged. */
const KEY_REFUSED = new AuthRefusal(401, "node authentication failed");

/** Least time between two log lines of the same refusal of a certificate credential. */
export const REFUSAL_LOG_MS = 60_000;

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
  /** When each certificate refusal was last logged (by its line). */
  #logged = new Map<string, number>();

  constructor(
    private readonly signer: Signer,
    private readonly members: Membership,
    private readonly now: () => number,
    private readonly log: (line: string) => void,
    /** `--node-auth cert|both`; null for the node key alone. */
    readonly cert: CertCredential | null = null,
  ) {
    this.#nonces = new NonceWindow(now);
  }

  /**
   * The signature fields of `text` (`sig` with the node key, `csig` with the certificate's, as
   * the mode says) and the headers that go with them.
   */
  #signatures(text: string): { fields: string; headers: Record<string, string> } {
    const cert = this.cert;
    let fields = "";
    const headers: Record<string, string> = {};
    if (cert?.mode !== "cert") fields += `, sig=${this.signer.sign(text)}`;
    if (cert !== null) {
      fields += `, csig=${cert.signer.sign(text)}`;
      headers[CERT_HEADER] = cert.signer.header;
    }
    return { fields, headers };
  }

  /** The headers that sign a request: authorization and digest (and the certificate). */
  sign(method: string, pathQuery: string, digest: string): {
    headers: Record<string, string>;
    nonce: string;
  } {
    const ts = this.now();
    const nonce = newNonce();
    const s = this.#signatures(requestText(method, pathQuery, ts, nonce, digest));
    return {
      nonce,
      headers: {
        authorization: `${AUTH_SCHEME} id=${
          encodeURIComponent(this.signer.id)
        }, ts=${ts}, nonce=${nonce}${s.fields}`,
        [DIGEST_HEADER]: digest,
        ...s.headers,
      },
    };
  }

  /**
   * Checks the credential of `id` over `text`: null when it holds and `id` is listed, else why
   * not, and whether it is only that `id` is not listed (or, with the node key, not admitted).
   */
  #credential(
    id: string,
    f: { sig?: string; csig?: string },
    text: string,
    headers: Headers,
  ): { unlisted: boolean; why: string } | null {
    const cert = this.cert;
    const keyValid = () => {
      const key = this.members.keyOf(id);
      return key !== null && f.sig !== undefined && verifySignature(key, text, f.sig);
    };
    if (cert !== null && (f.csig !== undefined || cert.mode === "cert")) {
      const why = cert.verifier.check(headers.get(CERT_HEADER), id, text, f.csig);
      if (why === null) {
        return this.members.listed(id)
          ? null
          : { unlisted: true, why: `${id} is not in ${this.signer.id}'s server list` };
      }
      return cert.mode === "both" && keyValid() ? null : { unlisted: false, why };
    }
    if (this.members.keyOf(id) === null) {
      return { unlisted: true, why: "not an admitted node (unknown or removed)" };
    }
    return keyValid() ? null : { unlisted: false, why: "bad signature" };
  }

  /** Logs a refusal; with certificates, the same line at most once per {@link REFUSAL_LOG_MS}. */
  #logRefusal(line: string): void {
    if (this.cert !== null) {
      const now = this.now();
      if (now - (this.#logged.get(line) ?? -Infinity) < REFUSAL_LOG_MS) return;
      if (this.#logged.size >= 1000) this.#logged.clear();
      this.#logged.set(line, now);
    }
    this.log(line);
  }

  /**
   * Checks a signed answer: signed by a listed node (`expect` when given) for `nonce`.
   * Returns the signer's id; throws {@link PeerError} otherwise.
   */
  verifyAnswer(url: string, status: number, headers: Headers, nonce: string, expect?: string) {
    const f = parseAuthFields(headers.get(SIGNATURE_HEADER) ?? "");
    const digest = headers.get(DIGEST_HEADER) ?? "";
    if (f?.id === undefined || (f.sig === undefined && f.csig === undefined)) {
      throw new PeerError(`${url} answered ${status} without a node signature`, status);
    }
    if (expect !== undefined && expect !== "" && f.id !== expect) {
      throw new PeerError(`${url} answered as ${f.id}, expected ${expect}`);
    }
    const refused = this.#credential(f.id, f, responseText(nonce, status, digest), headers);
    if (refused?.unlisted) {
      const why = this.cert === null ? "not an admitted node" : "not in this node's server list";
      throw new PeerError(`${url} answered as ${f.id}, ${why}`, status);
    }
    if (refused !== null) {
      throw new PeerError(
        this.cert === null
          ? `${url} answered with a bad signature for ${f.id}`
          : `${url} answered as ${f.id}, refused: ${refused.why}`,
      );
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
      if ((res.status === 401 || res.status === 403) && !res.headers.has(SIGNATURE_HEADER)) {
        // This node was refused: the body says why (with certificates: which check failed).
        const why = await readAll(res.body, 1024, url).then(
          (b) => new TextDecoder().decode(b).trim(),
          () => "",
        );
        throw new PeerError(`${url} refused this node: ${why || res.status}`, res.status);
      }
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
   * nonce and digest, with a fresh time and nonce. Returns the caller, or the refusal (the
   * reason is logged; with the node key alone the answer is a uniform 401, with certificates
   * it says why: 401 for a refused credential, 403 for a node not in the server list).
   */
  check(req: Request): Caller | AuthRefusal {
    const auth = req.headers.get("authorization") ?? "";
    if (!auth.startsWith(`${AUTH_SCHEME} `)) return KEY_REFUSED;
    const f = parseAuthFields(auth.slice(AUTH_SCHEME.length + 1));
    const digest = req.headers.get(DIGEST_HEADER) ?? "";
    if (
      f?.id === undefined || f.ts === undefined || f.nonce === undefined ||
      (f.sig === undefined && f.csig === undefined)
    ) {
      this.log("auth: refused a malformed node signature");
      return KEY_REFUSED;
    }
    const u = new URL(req.url);
    const text = requestText(req.method, u.pathname + u.search, f.ts, f.nonce, digest);
    const refused = this.#credential(f.id, f, text, req.headers);
    const why = refused?.why ??
      (this.#nonces.fresh(f.nonce, f.ts) ? null : "stale time or replayed nonce");
    if (why === null) return { id: f.id, nonce: f.nonce, digest };
    this.#logRefusal(`auth: refused ${f.id}: ${why}`);
    if (this.cert === null) return KEY_REFUSED;
    return refused?.unlisted
      ? new AuthRefusal(403, why)
      : new AuthRefusal(401, `node authentication failed: ${why}`);
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
    const s = this.#signatures(responseText(caller.nonce, status, digest));
    return new Response(stream ?? body, {
      status,
      headers: [
        ...headers,
        ["cache-control", "no-store"],
        [DIGEST_HEADER, digest],
        [SIGNATURE_HEADER, `id=${encodeURIComponent(this.signer.id)}${s.fields}`],
        ...Object.entries(s.headers),
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
