/**
 * The process's trust for outgoing HTTPS: with `--ca FILE`, every call to another node
 * ({@link peerFetch}, and `node:https` for streamed pushes) verifies the peer against that CA
 * alone and the address it dialled. Without it, https URLs are verified against Deno's built-in
 * roots (an ACME certificate from a public CA). There is no switch to skip verification.
 *
 * `--ca` calls go through `node:https` (`_node_fetch.ts`), whose `ca` replaces the default roots;
 * Deno's `fetch` would add `--ca` to its public roots, so a public CA's certificate for a
 * node's address would pass.
 *
 * @module
 */
import type https from "node:https";
import { nodeFetch, pinnedAgent } from "./_node_fetch.ts";

let trust: { caPem: string; agent: https.Agent } | null = null;

/** Trusts `caPem`, and it alone, for every outgoing HTTPS call of this process from now on. */
export function trustCa(caPem: string): void {
  trust?.agent.destroy();
  trust = { caPem, agent: pinnedAgent(caPem) };
}

/**
 * `fetch` with the process's trust ({@link trustCa}); the same arguments as `fetch`. With a
 * trusted CA, `https:` URLs go through `node:https` verified against it alone (redirects are
 * not followed); `http:` URLs (a plain node in a mixed fleet) and no CA: `fetch`.
 */
export function peerFetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
  if (trust === null) return fetch(input, init);
  const url = new URL(input);
  if (url.protocol !== "https:") return fetch(url, init);
  return nodeFetch(url, init, trust.agent);
}

/** Options for `node:https` requests with the process's trust: `{ ca }` or nothing. */
export function nodeTlsOptions(): { ca?: string } {
  return trust === null ? {} : { ca: trust.caPem };
}

/** rustls and OpenSSL-style reasons, and what they mean for an operator. */
const REASONS: [RegExp, string][] = [
  [/Expired|CERT_HAS_EXPIRED|certificate has expired/i, "the peer's certificate has expired"],
  [/NotValidYet|CERT_NOT_YET_VALID/i, "the peer's certificate is not valid yet"],
  [
    /UnknownIssuer|BadSignature|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to get (local )?issuer/i,
    "the peer's certificate is not signed by our CA (--ca)",
  ],
  [
    /NotValidForName|ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match/i,
    "the peer's certificate does not name the address dialled",
  ],
  [
    /InvalidContentType|wrong version number|corrupt message|HTTP\/1\.[01] \d/i,
    "the peer does not speak TLS",
  ],
];

/** `node:tls` error codes as rustls names them, so that log lines read the same either way. */
const NODE_CODES: Record<string, string> = {
  CERT_HAS_EXPIRED: "Expired",
  CERT_NOT_YET_VALID: "NotValidYet",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "UnknownIssuer",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "UnknownIssuer",
  SELF_SIGNED_CERT_IN_CHAIN: "UnknownIssuer",
  DEPTH_ZERO_SELF_SIGNED_CERT: "UnknownIssuer",
  ERR_TLS_CERT_ALTNAME_INVALID: "NotValidForName",
  ERR_SSL_WRONG_VERSION_NUMBER: "InvalidContentType",
};

/**
 * `TLS: <reason> (<detail>)` when `e` (or one of its causes: fetch wraps the TLS error) is a
 * failed TLS handshake, else null.
 */
export function tlsFailure(e: unknown): string | null {
  const parts: string[] = [];
  let code = "";
  for (let c: unknown = e; c instanceof Error && parts.length < 5; c = c.cause) {
    const own = (c as { code?: unknown }).code;
    if (code === "" && typeof own === "string") code = own;
    parts.push(`${c.message} ${own ?? ""}`);
  }
  const all = parts.join(" | ");
  for (const [re, reason] of REASONS) {
    if (re.test(all)) {
      const detail = /invalid peer certificate: ([A-Za-z]+)/.exec(all)?.[1] ??
        NODE_CODES[code] ?? code;
      return `TLS: ${reason}${detail === "" ? "" : ` (${detail})`}`;
    }
  }
  return null;
}

/**
 * {@link tlsFailure}, else the error's message followed by its first cause's when the message
 * alone says little (fetch's "fetch failed" keeps the reason in `cause`).
 */
export function describeFetchError(e: unknown): string {
  const tls = tlsFailure(e);
  if (tls !== null) return tls;
  const msg = (e as Error)?.message ?? String(e);
  const cause = (e as Error)?.cause;
  return cause instanceof Error && cause.message !== "" ? `${msg}: ${cause.message}` : msg;
}
