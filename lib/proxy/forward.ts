/**
 * Forwarding one request through the proxy: the request as the server gets it (hop-by-hop
 * headers removed, `Host` from the absolute-form target, our `Via` added), the exchange with
 * passive measurement and failure accounting, and the response as the client gets it (hop-by-hop
 * headers removed, `Via`, `X-Nearcast-Server`, `X-Nearcast-Reason`), its body streamed.
 *
 * @module
 */

import { appendVia, HOP_BY_HOP } from "../http/headers.ts";
import type { BodyEnd } from "./_h1.ts";
import type { ServerState } from "./server_state.ts";
import { type UpstreamPool, type UpstreamRequest, type UpstreamResponse } from "./upstream.ts";
import { ownError } from "../common/error_body.ts";

/** Methods retried on another server when the first fails before answering (without a body). */
export const IDEMPOTENT: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
/** Statuses that count as a server failure (its own or its origin's). */
const FAILURE_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);
/** Request headers never forwarded besides hop-by-hop ones (`Expect`: we stream the body). */
const DROP_REQUEST: ReadonlySet<string> = new Set(["expect"]);

/** A plain-text answer of the proxy itself. */
export function proxyText(
  status: number,
  text: string,
  headers: [string, string][] = [],
): Response {
  const res = new Response(`${status}: ${text}\n`, {
    status,
    headers: [
      ["content-type", "text/plain; charset=utf-8"],
      ["cache-control", "no-store"],
      ...headers,
    ],
  });
  return ownError(res, text);
}

/**
 * A client request's header fields, read in one pass (every iteration of a `Headers` sorts and
 * joins its fields anew): what to forward, and what the handler checks.
 */
export interface RequestFields {
  /** End-to-end fields to forward, without `host`, `content-length` and `via` (set anew). */
  forward: [string, string][];
  /** Size of the head's fields (names, values, separators). */
  bytes: number;
  via: string | null;
  contentLength: string | null;
}

/** Reads `h` once into {@link RequestFields}. */
export function readRequestFields(h: Headers): RequestFields {
  const all: [string, string][] = [];
  let bytes = 0;
  let via: string | null = null;
  let contentLength: string | null = null;
  let connection: string | null = null;
  for (const f of h) {
    const [n, v] = f;
    bytes += n.length + v.length + 4;
    if (n === "via") via = v;
    else if (n === "content-length") contentLength = v;
    else if (n === "connection") connection = v;
    else if (n !== "host") all.push(f);
  }
  const named = connection === null ? null : new Set(
    connection.split(",").map((x) => x.trim().toLowerCase()).filter((x) => x !== ""),
  );
  const forward = all.filter(([n]) =>
    !HOP_BY_HOP.has(n) && !n.startsWith("proxy-") && !DROP_REQUEST.has(n) && !named?.has(n)
  );
  return { forward, bytes, via, contentLength };
}

/** The request to send upstream for client request `req` aimed at `url`. */
export function upstreamRequest(
  req: Request,
  url: URL,
  via: string,
  fields: RequestFields = readRequestFields(req.headers),
): UpstreamRequest {
  const headers: [string, string][] = [["host", url.host], ...fields.forward];
  headers.push(["via", appendVia(fields.via, via)]);
  const len = fields.contentLength;
  return {
    method: req.method,
    target: url.pathname + url.search,
    headers,
    body: req.body,
    bodyLength: req.body !== null && len !== null && /^\d{1,15}$/.test(len) ? Number(len) : null,
  };
}

/**
 * The client's response for an upstream response, with our headers added. The fields are
 * appended to the response's own `Headers` one by one: the same checks as a header list in
 * the constructor, without the conversion of a list of pairs (an iterator and its results per
 * pair: 3.7 KiB of garbage per response of 8 fields, `new Response` with a list of pairs against
 * one without and `append`s).
 */
export function clientResponse(
  res: UpstreamResponse,
  via: string,
  extra: [string, string][],
): Response {
  const { status, reason } = res.head;
  const refuse = (why: string) => {
    if (res.body instanceof ReadableStream) res.body.cancel();
    return proxyText(502, `the server answered ${why}, which this proxy cannot relay`);
  };
  if (status < 200 || status > 599) return refuse(`status ${status}`);
  try {
    const out = new Response(res.body, { status, statusText: reason });
    const h = out.headers;
    appendEndToEnd(h, res.head.headers, via);
    for (let i = 0; i < extra.length; i++) h.append(extra[i][0], extra[i][1]);
    return out;
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return refuse(`a header or reason phrase (${e.message})`);
  }
}

/** Names `Connection` lists in `list` (lower case), or null when it has none. */
function connectionNamed(list: readonly [string, string][]): Set<string> | null {
  let named: Set<string> | null = null;
  for (let i = 0; i < list.length; i++) {
    if (list[i][0] !== "connection") continue;
    named ??= new Set();
    for (const part of list[i][1].split(",")) {
      const t = part.trim().toLowerCase();
      if (t !== "") named.add(t);
    }
  }
  return named;
}

/**
 * Whether a server's field `n` (lower case) is end-to-end: not hop-by-hop (RFC 9110 §7.6.1: the
 * `HOP_BY_HOP` list, `Proxy-*`, and the names `Connection` lists).
 */
function endToEnd(n: string, named: Set<string> | null): boolean {
  return !HOP_BY_HOP.has(n) && !n.startsWith("proxy-") && !named?.has(n);
}

/** A server's end-to-end fields appended to `h`, its `Via` values joined with ours appended. */
function appendEndToEnd(h: Headers, list: readonly [string, string][], ours: string): void {
  const named = connectionNamed(list);
  let via: string | null = null;
  for (let i = 0; i < list.length; i++) {
    const [n, v] = list[i];
    if (!endToEnd(n, named)) continue;
    if (n === "via") via = via === null ? v : `${via}, ${v}`;
    else h.append(n, v);
  }
  h.append("via", appendVia(via, ours));
}

/** What {@link exchange} needs. */
export interface ExchangeContext {
  pool: UpstreamPool;
  now: () => number;
  log: (line: string) => void;
}

/**
 * Sends `up` to server `s`, counting it in flight until its body ends, and records the
 * outcome: the time to head as a latency sample, or a failure (a body the client stopped
 * reading is not one). Rejects with the pool's `UpstreamError` when no head came.
 */
export async function exchange(
  s: ServerState,
  up: UpstreamRequest,
  c: ExchangeContext,
): Promise<UpstreamResponse> {
  s.outstanding++;
  s.requests++;
  let ended = false;
  const end = (how: BodyEnd) => {
    if (ended) return;
    ended = true;
    s.outstanding--;
    if (how === "error" && s.failed("response body cut short", false, c.now())) {
      c.log(`proxy: ejected ${s.id}: ${s.lastError}`);
    }
  };
  let res: UpstreamResponse;
  try {
    res = await c.pool.request(s.hostname, s.port, { ...up, onEnd: end });
  } catch (e) {
    if (!ended) {
      ended = true;
      s.outstanding--;
    }
    const why = (e as Error).message;
    const phase = (e as { phase?: string }).phase;
    if (phase !== "local" && s.failed(why, phase === "connect", c.now())) {
      c.log(`proxy: ejected ${s.id}: ${why}`);
    }
    throw e;
  }
  s.headSeconds.observe(res.headMs / 1000);
  if (FAILURE_STATUSES.has(res.head.status)) {
    if (s.failed(`answered ${res.head.status}`, false, c.now())) {
      c.log(`proxy: ejected ${s.id}: answered ${res.head.status} ${CONSECUTIVE_NOTE}`);
    }
  } else s.succeeded(res.headMs, c.now());
  return res;
}

const CONSECUTIVE_NOTE = "(failures in a row)";
