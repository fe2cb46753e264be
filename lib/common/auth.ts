/**
 * Bearer-token checks shared by every process (replica purge and admin routes, the replication
 * API, the DNS server's control API).
 *
 * Uniform answers:
 * - **401** (with `WWW-Authenticate: Bearer realm="nearcast"`) for a missing credential, another
 *   scheme, or a token that is not one the route accepts;
 * - **403** for a valid credential that lacks the right (e.g. one replica's session token on
 *   another replica's route), or for a route no credential can open (disabled by config).
 *
 * The scheme name `Bearer` is matched case-insensitively (RFC 9110 §11.1); tokens are compared
 * in time independent of where they differ.
 *
 * @example
 * ```ts
 * import { checkBearer } from "./auth.ts";
 * const req = new Request("http://x/", { headers: { authorization: "bearer s3cret" } });
 * console.assert(checkBearer(req, "s3cret") === null);
 * console.assert(checkBearer(req, "other")?.status === 401);
 * ```
 *
 * @module
 */

/** The realm named in every `WWW-Authenticate` challenge. */
export const REALM = "nearcast";

const SCHEME = /^bearer[ \t]+/i;

/**
 * The token of an `Authorization: Bearer TOKEN` header, or null when the header is missing, uses
 * another scheme or has an empty token.
 */
export function bearerToken(req: Request | Headers): string | null {
  const headers = req instanceof Headers ? req : req.headers;
  const h = headers.get("authorization");
  if (h === null) return null;
  const m = SCHEME.exec(h);
  if (m === null) return null;
  const token = h.slice(m[0].length).trim();
  return token === "" ? null : token;
}

const encoder = new TextEncoder();

/**
 * Whether `given` equals `expected`, in time that depends only on the length of `expected`
 * (not on where the two differ).
 */
export function sameSecret(given: string, expected: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}

/** A plain-text 401 with the Bearer challenge. */
export function unauthorized(message: string, headers: HeadersInit = {}): Response {
  const h = new Headers(headers);
  h.set("content-type", "text/plain; charset=utf-8");
  h.set("cache-control", "no-store");
  h.set("www-authenticate", `Bearer realm="${REALM}"`);
  return new Response(`401: ${message}\n`, { status: 401, headers: h });
}

/** A plain-text 403. */
export function forbidden(message: string, headers: HeadersInit = {}): Response {
  const h = new Headers(headers);
  h.set("content-type", "text/plain; charset=utf-8");
  h.set("cache-control", "no-store");
  return new Response(`403: ${message}\n`, { status: 403, headers: h });
}

/**
 * Checks a request against the one token a route accepts. Answers null when it may proceed, a
 * 401 when the credential is missing or wrong, a 403 when `expected` is null (the route is
 * disabled: no credential can open it; `disabled` says why).
 */
export function checkBearer(
  req: Request | Headers,
  expected: string | null,
  disabled = "this route is disabled: no token is configured",
): Response | null {
  if (expected === null) return forbidden(disabled);
  const given = bearerToken(req);
  if (given === null) return unauthorized("this needs Authorization: Bearer TOKEN");
  if (!sameSecret(given, expected)) return unauthorized("wrong token");
  return null;
}
