/**
 * A node's TLS certificate as its node-to-node credential (`--node-auth cert`; README "TLS
 * between nodes", Identity). Mutual TLS is out of reach of `Deno.serve` (no client certificate
 * can be asked for or read), so the certificate travels in a header and the node signs every
 * request and answer with the certificate's private key, over the same text the node key signs
 * (`lib/replication/trust.ts`: method, path, time, nonce and body digest; status for answers):
 *
 * ```text
 * x-nearcast-cert: BASE64(DER)[,BASE64(DER of an intermediate)...]   (leaf first)
 * authorization:   Nearcast-Node id=ID, ts=MS, nonce=HEX, csig=BASE64
 * answer:          x-nearcast-signature: id=ID, csig=BASE64 (and x-nearcast-cert)
 * ```
 *
 * `csig` is ECDSA or RSA with SHA-256, or Ed25519, as the certificate's key is. A certificate
 * is accepted when its chain ends at a certificate of `--ca` (each one issued by and verified
 * with the next's key), every certificate of it is within its validity dates now, its common
 * name is ID (the name `deno task certs` writes), and `csig` verifies with its key. The chain is
 * checked once per distinct header (cached), so a request costs one signature verification.
 *
 * @module
 */
import { createPrivateKey, type KeyObject, sign, verify, X509Certificate } from "node:crypto";
import type { TlsKeyPair } from "./listen.ts";

/** The header that carries the signer's certificate chain. */
export const CERT_HEADER = "x-nearcast-cert";
/** Longest accepted certificate header (a leaf and a few intermediates). */
export const MAX_CERT_HEADER = 16 * 1024;
/** Most certificates in one chain header. */
export const MAX_CHAIN = 4;
/** Distinct certificate headers remembered (verified or refused). */
export const MAX_CACHED_CERTS = 1024;

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM text, in order. */
export function pemCertificates(pem: string): X509Certificate[] {
  return (pem.match(PEM_CERT) ?? []).map((p) => new X509Certificate(p));
}

/** The common name of `cert`'s subject, or null when it has none. */
export function commonName(cert: X509Certificate): string | null {
  for (const part of cert.subject.split("\n")) {
    if (part.startsWith("CN=")) return part.slice(3);
  }
  return null;
}

/** The hash `sign`/`verify` take for a key: none for EdDSA, SHA-256 otherwise. */
function hashOf(key: KeyObject): string | null {
  const t = key.asymmetricKeyType;
  return t === "ed25519" || t === "ed448" ? null : "sha256";
}

const encoder = new TextEncoder();

/** Signs with a node's TLS key; `header` is its certificate chain as {@link CERT_HEADER}. */
export class CertSigner {
  /** The certificate's common name (the node's id). */
  readonly name: string;
  readonly header: string;
  readonly #key: KeyObject;
  readonly #hash: string | null;

  /** Throws a `TypeError` when `pair.cert` holds no certificate or its leaf has no CN. */
  constructor(pair: TlsKeyPair) {
    const chain = pemCertificates(pair.cert);
    if (chain.length === 0) throw new TypeError("the certificate file holds no certificate");
    const name = commonName(chain[0]);
    if (name === null) {
      throw new TypeError(`the certificate (${chain[0].subject}) has no common name (CN)`);
    }
    this.name = name;
    this.header = chain.map((c) => c.raw.toString("base64")).join(",");
    this.#key = createPrivateKey(pair.key);
    this.#hash = hashOf(this.#key);
  }

  /** The signature of `text`, base64. */
  sign(text: string): string {
    return sign(this.#hash, encoder.encode(text), this.#key).toString("base64");
  }
}

/** Validity dates of one certificate of a chain. */
interface Dates {
  what: string;
  notBefore: number;
  notAfter: number;
}

/** A chain that passed the CA check: its leaf's key and name, and every date to check. */
interface Chain {
  key: KeyObject;
  hash: string | null;
  name: string | null;
  dates: Dates[];
}

/**
 * Checks certificate credentials against the CA certificates of `--ca` ({@link check}); see
 * the module doc.
 */
export class CertVerifier {
  readonly #cas: X509Certificate[];
  readonly #now: () => number;
  readonly #cache = new Map<string, Chain | string>();

  /** Throws a `TypeError` when `caPem` holds no certificate. */
  constructor(caPem: string, now: () => number = Date.now) {
    this.#cas = pemCertificates(caPem);
    if (this.#cas.length === 0) throw new TypeError("--ca holds no certificate");
    this.#now = now;
  }

  /**
   * Null when `header` is a chain to the CA valid now whose leaf is named `id` and `sig` is its
   * key's signature of `text`; else why not, for a log line and the refusal's body.
   */
  check(header: string | null, id: string, text: string, sig: string | undefined): string | null {
    if (header === null || header === "") return `no certificate (${CERT_HEADER})`;
    if (sig === undefined || sig === "") return "no certificate signature (csig)";
    const chain = this.#chain(header);
    if (typeof chain === "string") return chain;
    const now = this.#now();
    for (const d of chain.dates) {
      if (now > d.notAfter) {
        return `${d.what} expired on ${new Date(d.notAfter).toISOString()} (notAfter)`;
      }
      if (now < d.notBefore) {
        return `${d.what} is not valid before ${new Date(d.notBefore).toISOString()} (notBefore)`;
      }
    }
    if (chain.name !== id) {
      return `the certificate names ${chain.name ?? "no node (no CN)"}, not ${id}`;
    }
    if (sig.length > 1024) return "bad certificate signature";
    let ok: boolean;
    try {
      ok = verify(chain.hash, encoder.encode(text), chain.key, Buffer.from(sig, "base64"));
    } catch {
      ok = false;
    }
    return ok ? null : "bad certificate signature";
  }

  /** The verified chain of `header` (cached), or why it is refused. */
  #chain(header: string): Chain | string {
    let c = this.#cache.get(header);
    if (c === undefined) {
      c = this.#verifyChain(header);
      if (this.#cache.size >= MAX_CACHED_CERTS) this.#cache.clear();
      this.#cache.set(header, c);
    }
    return c;
  }

  #verifyChain(header: string): Chain | string {
    if (header.length > MAX_CERT_HEADER) return `certificate header over ${MAX_CERT_HEADER} bytes`;
    const parts = header.split(",");
    if (parts.length > MAX_CHAIN) return `more than ${MAX_CHAIN} certificates in the chain`;
    let chain: X509Certificate[];
    try {
      chain = parts.map((p) => new X509Certificate(Buffer.from(p.trim(), "base64")));
    } catch {
      return "the certificate header is not base64 DER certificates";
    }
    const leaf = chain[0];
    const name = commonName(leaf);
    const label = (c: X509Certificate, i: number) =>
      i === 0 ? `the certificate of ${name ?? c.subject}` : `intermediate ${c.subject}`;
    if (leaf.ca) return `the certificate of ${name ?? leaf.subject} is a CA certificate`;
    for (let i = 0; i + 1 < chain.length; i++) {
      const issuer = chain[i + 1];
      if (!issuer.ca || !chain[i].checkIssued(issuer) || !chain[i].verify(issuer.publicKey)) {
        return `${label(chain[i], i)} is not signed by the next certificate of its chain`;
      }
    }
    const last = chain[chain.length - 1];
    const anchor = this.#cas.find((ca) =>
      ca.fingerprint256 === last.fingerprint256 ||
      (last.checkIssued(ca) && last.verify(ca.publicKey))
    );
    if (anchor === undefined) {
      return `${label(last, chain.length - 1)} is not signed by this node's CA (--ca)`;
    }
    const dates = chain.map((c, i) => ({
      what: label(c, i),
      notBefore: Date.parse(c.validFrom),
      notAfter: Date.parse(c.validTo),
    }));
    dates.push({
      what: `the CA ${anchor.subject}`,
      notBefore: Date.parse(anchor.validFrom),
      notAfter: Date.parse(anchor.validTo),
    });
    return { key: leaf.publicKey, hash: hashOf(leaf.publicKey), name, dates };
  }
}
