/**
 * The process's trust for outgoing HTTPS: with `--ca FILE`, every call to another node (fetch,
 * and `node:https` for streamed pushes) verifies the peer against that CA and the address it
 * dialled. Without it, https URLs are verified against Deno's built-in roots (an ACME
 * certificate from a public CA). There is no switch to skip verification.
 *
 * Deno adds `--ca` to its built-in roots rather than replacing them; node-to-node calls are
 * also authenticated by the per-node credentials (lib/replication/peer_auth.ts), so a
 * certificate from a public CA alone does not admit a server to replication.
 *
 * @module
 */

let trust: { caPem: string; client: Deno.HttpClient } | null = null;

/** Trusts `caPem` for every outgoing HTTPS call of this process from now on. */
export function trustCa(caPem: string): void {
  trust?.client.close();
  trust = { caPem, client: Deno.createHttpClient({ caCerts: [caPem] }) };
}

/** `fetch` with the process's trust ({@link trustCa}); the same arguments as `fetch`. */
export function peerFetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
  if (trust === null) return fetch(input, init);
  return fetch(input, { ...init, client: trust.client } as RequestInit);
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

/**
 * `TLS: <reason> (<detail>)` when `e` (or one of its causes: fetch wraps the TLS error) is a
 * failed TLS handshake, else null.
 */
export function tlsFailure(e: unknown): string | null {
  const parts: string[] = [];
  for (let c: unknown = e; c instanceof Error && parts.length < 5; c = c.cause) {
    parts.push(`${c.message} ${(c as { code?: string }).code ?? ""}`);
  }
  const all = parts.join(" | ");
  for (const [re, reason] of REASONS) {
    if (re.test(all)) {
      const detail = /invalid peer certificate: ([A-Za-z]+)/.exec(all)?.[1] ??
        (e as { code?: string }).code ?? "";
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
