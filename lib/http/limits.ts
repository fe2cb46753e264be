/**
 * Request limits of the replica (request target and header section sizes) and the request
 * target of a request as the replica sees it.
 *
 * @module
 */

/**
 * Longest request target accepted (414 beyond): nginx's default `large_client_header_buffers`
 * line size, and the store's key limit leaves room for the Vary part.
 */
export const MAX_URL_LENGTH = 8192;
/**
 * Largest request header section accepted (431 beyond), counting each field as name, value
 * and 4 bytes of framing: nginx's default `large_client_header_buffers 4 8k`. Deno.serve
 * itself answers 400 to far larger sections or more than 100 fields before we see them.
 */
export const MAX_HEADER_BYTES = 32 * 1024;
/** Largest single header field (431 beyond): one nginx header buffer. */
export const MAX_HEADER_FIELD_BYTES = 8 * 1024;

/**
 * Path and query of a request URL (`/` when it has no path, as for CONNECT's
 * `http://host:port`), without parsing it.
 */
export function requestTarget(url: string): string {
  const slash = url.indexOf("/", url.indexOf("//") + 2);
  return slash < 0 ? "/" : url.slice(slash);
}

/** Why a request's header section is too large (RFC 6585 §5), or null. */
export function headerSectionError(h: Headers): string | null {
  let total = 0;
  for (const [name, value] of h) {
    const n = name.length + value.length + 4;
    if (n > MAX_HEADER_FIELD_BYTES) {
      return `header field ${name} is larger than ${MAX_HEADER_FIELD_BYTES} bytes`;
    }
    total += n;
  }
  return total > MAX_HEADER_BYTES ? `request headers larger than ${MAX_HEADER_BYTES} bytes` : null;
}
