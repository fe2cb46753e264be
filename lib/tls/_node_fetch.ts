/**
 * `fetch` for `https:` URLs over `node:https`, so that `--ca` is the only trust: Node's `ca`
 * option replaces the default roots, and Deno's `node:tls` does the same (a CA added as a public
 * root through `NODE_EXTRA_CA_CERTS` is refused once `ca` is given), while Deno's own TLS
 * (`fetch` with `Deno.createHttpClient({ caCerts })`, `Deno.connectTls`, `Deno.startTls`) adds
 * `caCerts` to the built-in Mozilla roots and to `DENO_CERT`. See README "TLS between nodes".
 *
 * What it does not do, unlike `fetch`: follow redirects (a 3xx is returned as it is), decompress
 * bodies (it sends no `Accept-Encoding`), or use HTTP/2.
 *
 * @module
 */
import https from "node:https";
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";

/** Statuses whose response has no body (`new Response` refuses one). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * An agent whose TLS trusts `caPem` alone, keeping a few idle connections per peer for 10 s
 * (well under the 30 s after which our listeners close an idle connection).
 */
export function pinnedAgent(caPem: string): https.Agent {
  return new https.Agent({ keepAlive: true, maxFreeSockets: 8, timeout: 10_000, ca: caPem });
}

/**
 * Sends `init` to the `https:` `url` with `agent` ({@link pinnedAgent}) and resolves with a
 * `Response` whose body streams. Rejects with the TLS or socket error (its `code` kept), or with
 * `init.signal`'s reason when it aborts before the response head. (A kept-alive connection
 * that the peer closed is retried on a new one by Deno's `node:http` itself.)
 */
export async function nodeFetch(
  url: URL,
  init: RequestInit,
  agent: https.Agent,
): Promise<Response> {
  // A Request normalises the body (string, bytes, stream, form) and its default Content-Type.
  const r = new Request(url, { ...init, redirect: "manual" });
  const headers: Record<string, string> = {};
  r.headers.forEach((v, k) => headers[k] = v);
  const bytes = r.body === null || init.body instanceof ReadableStream
    ? null
    : new Uint8Array(await r.arrayBuffer());
  if (bytes !== null) headers["content-length"] = String(bytes.length);
  else if (r.body !== null) headers["transfer-encoding"] = "chunked";
  const signal = init.signal ?? null;
  signal?.throwIfAborted();
  return await new Promise<Response>((resolve, reject) => {
    let settled = false;
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      req.destroy();
      reject(e);
    };
    const req = https.request({
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port === "" ? 443 : Number(url.port),
      method: r.method,
      path: url.pathname + url.search,
      headers,
      agent,
    }, (res: IncomingMessage) => {
      if (settled) return res.destroy();
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      const status = res.statusCode ?? 0;
      const h = new Headers();
      const raw = res.rawHeaders;
      for (let i = 0; i + 1 < raw.length; i += 2) h.append(raw[i], raw[i + 1]);
      if (NULL_BODY.has(status) || r.method === "HEAD") {
        res.resume();
        resolve(new Response(null, { status, headers: h }));
        return;
      }
      const body = Readable.toWeb(res) as ReadableStream<Uint8Array>;
      // An abort after the head ends the body with the signal's reason, as fetch does.
      signal?.addEventListener("abort", () => res.destroy(signal.reason), { once: true });
      resolve(new Response(body, { status, headers: h }));
    });
    const onAbort = () => fail(signal?.reason ?? new DOMException("aborted", "AbortError"));
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", fail);
    if (bytes !== null) req.end(bytes);
    else if (r.body === null) req.end();
    else sendStream(r.body, req).catch(fail);
  });
}

/** Writes `body` to `req` with back-pressure, then ends it. */
async function sendStream(
  body: ReadableStream<Uint8Array>,
  req: ReturnType<typeof https.request>,
): Promise<void> {
  for await (const chunk of body) {
    if (!req.write(chunk)) await new Promise((resolve) => req.once("drain", resolve));
  }
  req.end();
}
