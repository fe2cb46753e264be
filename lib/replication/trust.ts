/**
 * Node-to-node trust: every node has its own Ed25519 key pair (`DIR/node_key.json`, made at
 * first start); its public key is admitted into the cluster once by a node that holds the
 * admin token (`POST /_cdn/credentials`) and travels with the server list; removing the node
 * from the list (`DELETE /_cdn/servers/ID`) revokes the key for good.
 *
 * Every node-to-node request carries a signature of the caller, every answer a signature of
 * the answering node; both sign what they send (method, path, body digest, the request's
 * time and nonce). Wire formats:
 *
 * ```text
 * request:   authorization: Nearcast-Node id=ID, ts=MS, nonce=HEX, sig=BASE64
 *            x-nearcast-digest: DIGEST
 *            signed text: "nearcast-req-v1\nMETHOD\nPATH?QUERY\nMS\nNONCE\nDIGEST"
 * response:  x-nearcast-signature: id=ID, sig=BASE64
 *            x-nearcast-digest: DIGEST
 *            signed text: "nearcast-res-v1\nNONCE\nSTATUS\nDIGEST" (NONCE of the request)
 * DIGEST:    "sha256=HEX" of the body (JSON bodies, "sha256=" + SHA-256 of no bytes when empty),
 *            or for an object stream "object=NAME;v=TS.NODE;sha256=HEX;deleted=0|1" (NAME
 *            percent-encoded), checked against the stream's header line (the store checks the
 *            bytes against the SHA-256).
 * ```
 *
 * A request is accepted when the id is a listed, not removed node, the signature verifies
 * with its key, `MS` is within {@link MAX_CLOCK_SKEW_MS} of the receiver's clock and the
 * nonce was not seen in that window (replays are refused).
 *
 * @module
 */

import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import type { ObjectHeader, Version } from "../upload/wire.ts";
import { MAX_CLOCK_SKEW_MS } from "./version.ts";
export { MAX_CLOCK_SKEW_MS } from "./version.ts";

/** Most nonces remembered (a replay window's worth of requests). */
export const MAX_NONCES = 200_000;
/** The authorization scheme of node-to-node requests. */
export const AUTH_SCHEME = "Nearcast-Node";
/** Header of the body digest, on requests and answers. */
export const DIGEST_HEADER = "x-nearcast-digest";
/** Header of an answer's signature. */
export const SIGNATURE_HEADER = "x-nearcast-signature";
/** Header of the admin MAC on a credential answer (HMAC-SHA256 of the body with the token). */
export const ADMIN_MAC_HEADER = "x-nearcast-admin-mac";

const EMPTY_DIGEST = "sha256=" + createHash("sha256").digest("hex");

/** A node's key pair as stored (base64 DER: SPKI public, PKCS#8 private). */
export interface StoredKey {
  publicKey: string;
  privateKey: string;
}

/** Makes a new key pair. */
export function newKey(): StoredKey {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return {
    publicKey: publicKey.export({ type: "spki", format: "der" }).toString("base64"),
    privateKey: privateKey.export({ type: "pkcs8", format: "der" }).toString("base64"),
  };
}

/**
 * Reads the key pair in `file`, making and storing one (mode 0600) when there is none
 * (`created`: no node can have admitted it yet). Throws when the file exists but is not a key
 * pair.
 */
export function loadOrCreateKey(file: string): { key: StoredKey; created: boolean } {
  let text: string | null = null;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (text !== null) {
    const k = JSON.parse(text) as Partial<StoredKey>;
    if (typeof k.publicKey !== "string" || typeof k.privateKey !== "string") {
      throw new Error(`${file} is not a node key: {"publicKey", "privateKey"} expected`);
    }
    privateKeyOf(k.privateKey); // throws on a damaged key
    return { key: { publicKey: k.publicKey, privateKey: k.privateKey }, created: false };
  }
  const k = newKey();
  const tmp = `${file}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(k) + "\n", { mode: 0o600 });
  Deno.renameSync(tmp, file);
  return { key: k, created: true };
}

function privateKeyOf(b64: string): KeyObject {
  return createPrivateKey({ key: Buffer.from(b64, "base64"), format: "der", type: "pkcs8" });
}

const publicKeys = new Map<string, KeyObject | null>();

function publicKeyOf(b64: string): KeyObject | null {
  let k = publicKeys.get(b64);
  if (k === undefined) {
    try {
      k = createPublicKey({ key: Buffer.from(b64, "base64"), format: "der", type: "spki" });
      if (k.asymmetricKeyType !== "ed25519") k = null;
    } catch {
      k = null;
    }
    if (publicKeys.size > 10_000) publicKeys.clear();
    publicKeys.set(b64, k);
  }
  return k;
}

/** True when `publicKey` is a usable Ed25519 public key (base64 SPKI). */
export function validPublicKey(publicKey: unknown): publicKey is string {
  return typeof publicKey === "string" && publicKey.length <= 200 &&
    publicKeyOf(publicKey) !== null;
}

/** Signs with a node's private key. */
export class Signer {
  readonly #key: KeyObject;
  constructor(readonly id: string, key: StoredKey) {
    this.#key = privateKeyOf(key.privateKey);
  }
  sign(text: string): string {
    return sign(null, new TextEncoder().encode(text), this.#key).toString("base64");
  }
}

/** True when `sig` is `publicKey`'s signature of `text`. */
export function verifySignature(publicKey: string, text: string, sig: string): boolean {
  const k = publicKeyOf(publicKey);
  if (k === null || sig.length > 200) return false;
  try {
    return verify(null, new TextEncoder().encode(text), k, Buffer.from(sig, "base64"));
  } catch {
    return false;
  }
}

/** The digest of a JSON or empty body. */
export function bodyDigest(body: string | Uint8Array | null): string {
  if (body === null || body.length === 0) return EMPTY_DIGEST;
  return "sha256=" + createHash("sha256").update(body).digest("hex");
}

/** The digest of an object stream: what its header line must say. */
export function objectDigest(h: ObjectHeader & { version?: Version }): string {
  const v = h.version === undefined ? "-" : `${h.version.ts}.${h.version.node}`;
  return `object=${encodeURIComponent(h.name)};v=${v};sha256=${h.deleted ? "" : h.sha256};` +
    `deleted=${h.deleted ? 1 : 0}`;
}

/** The text a request signature covers. */
export function requestText(
  method: string,
  pathQuery: string,
  ts: number,
  nonce: string,
  digest: string,
): string {
  return `nearcast-req-v1\n${method}\n${pathQuery}\n${ts}\n${nonce}\n${digest}`;
}

/** The text an answer signature covers. */
export function responseText(nonce: string, status: number, digest: string): string {
  return `nearcast-res-v1\n${nonce}\n${status}\n${digest}`;
}

/** A parsed `Nearcast-Node` authorization or `x-nearcast-signature` header. */
export interface AuthFields {
  id: string;
  ts: number;
  nonce: string;
  sig: string;
  /** The TLS certificate key's signature (`--node-auth cert`, `lib/tls/cert_identity.ts`). */
  csig: string;
}

/** Parses `id=.., ts=.., nonce=.., sig=.., csig=..` (after the scheme, if any); null when malformed. */
export function parseAuthFields(value: string): Partial<AuthFields> | null {
  const out: Record<string, string> = {};
  for (const part of value.split(",")) {
    const m = /^\s*([a-z]+)=([^\s,]*)\s*$/.exec(part);
    if (m === null) return null;
    out[m[1]] = m[2];
  }
  const r: Partial<AuthFields> = {};
  if (out.id !== undefined) r.id = decodeURIComponent(out.id);
  if (out.ts !== undefined) r.ts = Number(out.ts);
  if (out.nonce !== undefined) r.nonce = out.nonce;
  if (out.sig !== undefined) r.sig = out.sig;
  if (out.csig !== undefined) r.csig = out.csig;
  return r;
}

/** A fresh nonce: 16 random bytes, hex. */
export function newNonce(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Nonces seen within the skew window: `fresh` is true once per nonce and only for times
 * within {@link MAX_CLOCK_SKEW_MS} of now.
 */
export class NonceWindow {
  #seen = new Map<string, number>();
  constructor(private readonly now: () => number) {}
  fresh(nonce: string, ts: number): boolean {
    const now = this.now();
    if (!Number.isSafeInteger(ts) || Math.abs(now - ts) > MAX_CLOCK_SKEW_MS) return false;
    if (!/^[0-9a-f]{32}$/.test(nonce) || this.#seen.has(nonce)) return false;
    if (this.#seen.size >= MAX_NONCES) {
      for (const [n, t] of this.#seen) {
        if (now - t > MAX_CLOCK_SKEW_MS) this.#seen.delete(n);
      }
      // Still full of fresh nonces: refuse rather than forget one (a replay could slip in).
      if (this.#seen.size >= MAX_NONCES) return false;
    }
    this.#seen.set(nonce, ts);
    return true;
  }
}

/** HMAC-SHA256 of `body` with `key`, hex. */
export function hmacHex(key: string, body: string | Uint8Array): string {
  return createHmac("sha256", key).update(body).digest("hex");
}

/** Why a version cannot come from another node (too far ahead of this clock), or null. */
export function futureVersionError(v: Version, now: number): string | null {
  if (v.ts > now + MAX_CLOCK_SKEW_MS) {
    return `version ${v.ts} of ${v.node} is ${v.ts - now} ms ahead of this node's clock ` +
      `(at most ${MAX_CLOCK_SKEW_MS} ms accepted)`;
  }
  return null;
}
