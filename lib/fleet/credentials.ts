/**
 * Replica credentials at the DNS server: each replica registers with its own Ed25519 key (the
 * replication node key, `DIR/node_key.json`), admitted once with the admin token; later
 * registrations are signed with the key alone. The DNS server signs its answers with its own
 * key, which the replica pins (learnt from an answer MAC'd with the admin token).
 *
 * ```text
 * request:  x-nearcast-node-signature: id=ID, ts=MS, nonce=HEX, sig=BASE64
 *           x-nearcast-digest: sha256=HEX (of the body)
 *           signs "nearcast-req-v1\nPOST\n/register\nMS\nNONCE\nDIGEST" with the replica's key
 *           (+ authorization: Bearer ADMIN_TOKEN when the key is being admitted)
 * answer:   x-nearcast-signature: id=dns, sig=BASE64
 *           x-nearcast-digest: sha256=HEX (of the body)
 *           signs "nearcast-res-v1\nNONCE\nSTATUS\nDIGEST" with the DNS server's key
 * ```
 *
 * @module
 */
import {
  bodyDigest,
  DIGEST_HEADER,
  newNonce,
  parseAuthFields,
  requestText,
  responseText,
  SIGNATURE_HEADER,
  type Signer,
  validPublicKey,
  verifySignature,
} from "../replication/trust.ts";
import { NODE_SIGNATURE_HEADER, type NonceSet } from "./protocol.ts";
import {
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";

/** The id the DNS server signs its answers as. */
export const SERVER_SIGNER_ID = "dns";

/** The fields of a registration's node signature. */
export interface NodeSignature {
  id: string;
  ts: number;
  nonce: string;
  sig: string;
}

/**
 * Headers of a registration of `body` signed by `signer` (the replica's key), with the admin
 * token when `adminToken` is given (admission). `nonce` keys the answer's signature.
 */
export function registrationHeaders(
  signer: Signer,
  pathQuery: string,
  body: string,
  adminToken: string | null,
): { headers: Record<string, string>; nonce: string } {
  const ts = Date.now(), nonce = newNonce(), digest = bodyDigest(body);
  const sig = signer.sign(requestText("POST", pathQuery, ts, nonce, digest));
  const headers: Record<string, string> = {
    "content-type": "application/json",
    [NODE_SIGNATURE_HEADER]: `id=${encodeURIComponent(signer.id)}, ts=${ts}, nonce=${nonce}, ` +
      `sig=${sig}`,
    [DIGEST_HEADER]: digest,
  };
  if (adminToken !== null) headers.authorization = `Bearer ${adminToken}`;
  return { headers, nonce };
}

/**
 * The node signature of a registration request, null when it has none; throws a `TypeError`
 * when the header is malformed.
 */
export function nodeSignature(req: Request): NodeSignature | null {
  const h = req.headers.get(NODE_SIGNATURE_HEADER);
  if (h === null) return null;
  let f;
  try {
    f = parseAuthFields(h);
  } catch {
    f = null;
  }
  if (
    f?.id === undefined || f.ts === undefined || f.nonce === undefined || f.sig === undefined
  ) {
    throw new TypeError(`${NODE_SIGNATURE_HEADER}: id=ID, ts=MS, nonce=HEX, sig=BASE64 expected`);
  }
  return f as NodeSignature;
}

/**
 * True when `f` is `publicKey`'s signature of this request (method, path, time, nonce and the
 * digest header: checked before the body is read), at a time within the skew and with a nonce
 * not seen. The body must then match the digest ({@link digestMatches}).
 */
export function signedBy(
  req: Request,
  f: NodeSignature,
  publicKey: string,
  seen: NonceSet,
): boolean {
  const digest = req.headers.get(DIGEST_HEADER) ?? "";
  const u = new URL(req.url);
  const text = requestText(req.method, u.pathname + u.search, f.ts, f.nonce, digest);
  return verifySignature(publicKey, text, f.sig) && seen.fresh(f.nonce, f.ts);
}

/** True when `bodyText` is what the request's signed digest header describes. */
export function digestMatches(req: Request, bodyText: string): boolean {
  return req.headers.get(DIGEST_HEADER) === bodyDigest(bodyText);
}

/** Headers that sign an answer to the request with nonce `nonce`. */
export function answerHeaders(
  signer: Signer,
  nonce: string,
  status: number,
  body: string,
): Record<string, string> {
  const digest = bodyDigest(body);
  const sig = signer.sign(responseText(nonce, status, digest));
  return {
    [DIGEST_HEADER]: digest,
    [SIGNATURE_HEADER]: `id=${encodeURIComponent(signer.id)}, sig=${sig}`,
  };
}

/** True when the answer (`status`, `headers`, `body`) is signed by `publicKey` for `nonce`. */
export function answerSigned(
  publicKey: string,
  nonce: string,
  status: number,
  headers: Headers,
  body: string,
): boolean {
  const digest = headers.get(DIGEST_HEADER) ?? "";
  if (digest !== bodyDigest(body)) return false;
  let f;
  try {
    f = parseAuthFields(headers.get(SIGNATURE_HEADER) ?? "");
  } catch {
    return false;
  }
  return f?.sig !== undefined &&
    verifySignature(publicKey, responseText(nonce, status, digest), f.sig);
}

/**
 * The DNS server keys pinned in `file` by announce target: `{"announce", "serverKey"}` for
 * one (the shape every version reads), `{"servers": {ANNOUNCE: KEY, ...}}` for several. Empty
 * for no file or a damaged one (the replica then needs the admin token to learn the keys again).
 */
function readPins(file: string): Record<string, string> {
  let v: { announce?: unknown; serverKey?: unknown; servers?: unknown };
  try {
    v = JSON.parse(Deno.readTextFileSync(file));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return {};
    throw e;
  }
  const out: Record<string, string> = {};
  if (typeof v?.announce === "string" && validPublicKey(v.serverKey)) {
    out[v.announce] = v.serverKey;
  }
  if (typeof v?.servers === "object" && v.servers !== null) {
    for (const [a, k] of Object.entries(v.servers)) if (validPublicKey(k)) out[a] = k;
  }
  return out;
}

/**
 * The DNS server key pinned in `file` for `announce`, or null (no file, another server, or a
 * damaged file: the replica then needs the admin token to learn the key again).
 */
export function readPin(file: string | null, announce: string): string | null {
  if (file === null) return null;
  const pins = readPins(file);
  return Object.hasOwn(pins, announce) ? pins[announce] : null;
}

/**
 * Pins the DNS server's key for `announce` in `file`, keeping the other servers' pins (written
 * atomically, mode 0600).
 */
export function writePin(file: string | null, announce: string, serverKey: string): void {
  if (file === null) return;
  const pins = { ...readPins(file), [announce]: serverKey };
  const entries = Object.entries(pins);
  const value = entries.length === 1 ? { announce, serverKey } : { servers: pins };
  const tmp = `${file}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(value) + "\n", { mode: 0o600 });
  Deno.renameSync(tmp, file);
}

/** An X25519 key pair made for one registration (its public half base64 SPKI). */
export function newDhKey(): { publicKey: string; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync("x25519");
  return {
    publicKey: publicKey.export({ type: "spki", format: "der" }).toString("base64"),
    privateKey,
  };
}

/**
 * The session token of a registration with an X25519 exchange: HMAC-SHA256 keyed with the
 * shared secret of `privateKey` and the other side's `peerPublic`, over
 * `nearcast-session-key-v1\nID\nNONCE` (NONCE of the signed registration), first 128 bits in
 * hex. Throws a `TypeError` when `peerPublic` is not an X25519 public key.
 */
export function dhSession(
  privateKey: KeyObject,
  peerPublic: string,
  id: string,
  nonce: string,
): string {
  let peer: KeyObject;
  try {
    peer = createPublicKey({ key: Buffer.from(peerPublic, "base64"), format: "der", type: "spki" });
  } catch {
    throw new TypeError("dh must be an X25519 public key (base64 SPKI)");
  }
  if (peer.asymmetricKeyType !== "x25519") {
    throw new TypeError("dh must be an X25519 public key (base64 SPKI)");
  }
  const shared = diffieHellman({ privateKey, publicKey: peer });
  return createHmac("sha256", shared).update(`nearcast-session-key-v1\n${id}\n${nonce}`)
    .digest("hex").slice(0, 32);
}
