/**
 * What a replica's answer says about its bytes: the SHA-256 it states for the whole
 * representation, and the validator a resumed request carries in `If-Range`.
 *
 * @module
 */

/** Hex of bytes. */
function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * The SHA-256 (lower-case hex) the headers state for the whole file, or null: `Repr-Digest:
 * sha-256=:BASE64:` (RFC 9530; for a 206 it still covers the whole representation), or the
 * strong ETag of a Nearcast upload (it is the file's SHA-256; uploads carry
 * `X-Nearcast-Version`). A cached origin file's ETag is the origin's and is not used.
 */
export function statedSha256(h: Headers): string | null {
  const rd = h.get("repr-digest");
  const m = rd === null ? null : /(?:^|,)\s*sha-256=:([A-Za-z0-9+/]+={0,2}):/i.exec(rd);
  if (m !== null) {
    try {
      const bytes = Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0));
      if (bytes.length === 32) return hex(bytes);
    } catch { /* not base64: ignored */ }
  }
  if (h.has("x-nearcast-version")) {
    const e = /^"([0-9a-f]{64})"$/.exec(h.get("etag") ?? "");
    if (e !== null) return e[1];
  }
  return null;
}

/**
 * What `If-Range` can carry so a changed file is not spliced (RFC 9110 §13.1.5): a strong
 * ETag, else `Last-Modified`; null when there is neither (a resume then starts over).
 */
export function validatorOf(h: Headers): string | null {
  const etag = h.get("etag");
  if (etag !== null && !etag.startsWith("W/")) return etag;
  return h.get("last-modified");
}
