/**
 * Requests to the origin with one retry on a new connection. Deno's `fetch` already retries a
 * request once when its pooled keep-alive connection turns out closed, but on another pooled
 * connection: when the origin has closed all of them (its idle timeout, a restart), both tries
 * fail and the request fails with `fetch failed`. An idempotent request without a body is then
 * sent once more on a connection opened for it (RFC 9110 §9.2.2 allows retrying idempotent
 * requests).
 *
 * @module
 */

import { describeFetchError } from "../tls/client.ts";

/** Methods retried (RFC 9110 §9.2.2), when the request has no body. */
export const IDEMPOTENT: ReadonlySet<string> = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

/** Errors where the origin could not be reached at all: a new connection would not help. */
const NOT_RETRIED = /connection refused|dns error|failed to lookup|blocked|certificate/i;

let freshClient: Deno.HttpClient | null = null;

/** A client keeping no idle connection: each of its requests opens a new one. */
function newConnectionClient(): Deno.HttpClient {
  freshClient ??= Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  return freshClient;
}

/** Why a fetch failed, with fetch's `cause` (its message alone is `fetch failed`). */
export function fetchFailure(e: unknown): string {
  return describeFetchError(e);
}

/**
 * `fetch(url, init)`, retried once on a new connection when an idempotent request without a
 * body fails for a reason other than a timeout (`init.signal`) or an unreachable origin; the
 * retry is reported to `onRetry` with the first failure. Throws the last error.
 */
export async function originFetch(
  url: string,
  init: RequestInit,
  onRetry?: (firstFailure: string) => void,
): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const method = (init.method ?? "GET").toUpperCase();
    const failure = fetchFailure(e);
    if (
      init.signal?.aborted || !IDEMPOTENT.has(method) || (init.body ?? null) !== null ||
      NOT_RETRIED.test(failure)
    ) throw e;
    onRetry?.(failure);
    return await fetch(url, { ...init, client: newConnectionClient() });
  }
}
