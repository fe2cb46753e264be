/**
 * Test origins for the replica tests: a configurable `Deno.serve` origin that counts its
 * requests, and a raw TCP origin that promises a Content-Length and closes early.
 *
 * @module
 */

/** How the origin answers one path. */
export interface Route {
  status?: number;
  /** Response headers; a function gets the request and its 1-based count for the path. */
  headers?: Record<string, string> | ((req: Request, n: number) => Record<string, string>);
  body?:
    | string
    | Uint8Array<ArrayBuffer>
    | ((req: Request, n: number) => string | Uint8Array<ArrayBuffer>);
  /** Wait before sending headers. */
  delayMs?: number;
  /** Send the body in this many chunks, `chunkDelayMs` apart (chunked encoding). */
  chunks?: number;
  chunkDelayMs?: number;
  /** Error the body stream after this many bytes (the connection is cut). */
  cutAfter?: number;
  /** Answer a single `Range: bytes=A-B` with 206. */
  ranges?: boolean;
  /** With `ranges`: cut the 206 body of a range starting at or after this offset (1000 bytes). */
  cutRangesFrom?: number;
  /** Other answers for other methods, e.g. `{ POST: { status: 201 } }`. */
  methods?: Record<string, Route>;
  /** Answer 304 when If-None-Match / If-Modified-Since match these headers. */
  conditional?: boolean;
}

/** A request the origin saw. */
export interface Seen {
  method: string;
  path: string;
  headers: Headers;
}

/** A running test origin. */
export interface TestOrigin {
  url: string;
  port: number;
  routes: Map<string, Route>;
  seen: Seen[];
  /** Requests received for `path` (path and query). */
  count(path: string): number;
  /** Most requests being answered at once (until their headers were sent), since start. */
  maxInFlight(): number;
  close(): Promise<void>;
}

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts an origin on 127.0.0.1 with a free port. Unknown paths answer 404 (no-store). */
export function startOrigin(routes: Record<string, Route> = {}): Promise<TestOrigin> {
  const map = new Map(Object.entries(routes));
  const seen: Seen[] = [];
  const counts = new Map<string, number>();
  const ac = new AbortController();
  const pending = new Set<Promise<unknown>>();
  let inFlight = 0;
  let maxInFlight = 0;
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
      onListen: (addr) => {
        const origin: TestOrigin = {
          url: `http://127.0.0.1:${addr.port}`,
          port: addr.port,
          routes: map,
          seen,
          count: (p) => counts.get(p) ?? 0,
          maxInFlight: () => maxInFlight,
          async close() {
            if (ac.signal.aborted) return;
            ac.abort();
            await server.finished;
            await Promise.allSettled([...pending]);
          },
        };
        resolve(origin);
      },
    }, async (req) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      try {
        return await answer(req);
      } finally {
        inFlight--;
      }
    });
    pending.add(server.finished);
    async function answer(req: Request): Promise<Response> {
      const u = new URL(req.url);
      const path = u.pathname + u.search;
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      seen.push({ method: req.method, path, headers: req.headers });
      if (req.body !== null) await req.arrayBuffer();
      const found = map.get(path) ?? map.get(u.pathname);
      const route = found?.methods?.[req.method] ?? found;
      if (route === undefined) {
        return new Response("no such path\n", {
          status: 404,
          headers: { "cache-control": "no-store" },
        });
      }
      if (route.delayMs) await sleep(route.delayMs);
      const headers = new Headers(
        typeof route.headers === "function" ? route.headers(req, n) : route.headers ?? {},
      );
      if (route.conditional) {
        const inm = req.headers.get("if-none-match");
        const ims = req.headers.get("if-modified-since");
        const etag = headers.get("etag");
        const lm = headers.get("last-modified");
        if (
          (inm !== null && etag !== null && inm === etag) ||
          (inm === null && ims !== null && lm === ims)
        ) {
          return new Response(null, { status: 304, headers });
        }
      }
      const raw = typeof route.body === "function" ? route.body(req, n) : route.body ?? "";
      const body = typeof raw === "string" ? enc.encode(raw) : raw;
      const status = route.status ?? 200;
      const m = route.ranges ? /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "") : null;
      if (m !== null) {
        const [a, b] = [Number(m[1]), Math.min(Number(m[2]), body.byteLength - 1)];
        if (a >= body.byteLength) {
          headers.set("content-range", `bytes */${body.byteLength}`);
          return new Response(null, { status: 416, headers });
        }
        headers.set("content-range", `bytes ${a}-${b}/${body.byteLength}`);
        const part = body.slice(a, b + 1);
        const cutAt = route.cutAfter ??
          (route.cutRangesFrom !== undefined && a >= route.cutRangesFrom ? 1000 : undefined);
        if (cutAt === undefined) return new Response(part, { status: 206, headers });
        // `cutAt` bytes of the part, then the connection is cut.
        const cut = part.slice(0, cutAt);
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(cut);
          },
          async pull(c) {
            await sleep(20);
            c.error(new Error("cut by the test origin"));
          },
        });
        return new Response(stream, { status: 206, headers });
      }
      if (route.chunks === undefined && route.cutAfter === undefined) {
        const nullBody = status === 204 || status === 304 || req.method === "HEAD";
        return new Response(nullBody ? null : body, { status, headers });
      }
      const parts = route.chunks ?? 1;
      const size = Math.ceil(body.byteLength / parts);
      let i = 0;
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (i > 0 && route.chunkDelayMs) await sleep(route.chunkDelayMs);
          if (route.cutAfter !== undefined && sent >= route.cutAfter) {
            c.error(new Error("cut by the test origin"));
            return;
          }
          if (i * size >= body.byteLength) {
            c.close();
            return;
          }
          let end = Math.min(body.byteLength, (i + 1) * size);
          if (route.cutAfter !== undefined) end = Math.min(end, route.cutAfter);
          const chunk = body.slice(sent, end);
          sent = end;
          i = Math.ceil(end / size);
          c.enqueue(chunk);
        },
      });
      return new Response(stream, { status, headers });
    }
  });
}

/**
 * A raw TCP origin that answers every request with `Content-Length: declared`, sends `sent`
 * bytes of body, and closes the connection. Returns its URL, request count and closer.
 */
export function startCutOrigin(
  declared: number,
  sent: number,
): { url: string; count: () => number; close: () => Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let n = 0;
  let closed = false;
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(16 * 1024);
        let head = "";
        try {
          while (!head.includes("\r\n\r\n")) {
            const r = await conn.read(buf);
            if (r === null) return;
            head += new TextDecoder().decode(buf.subarray(0, r));
          }
          n++;
          await conn.write(enc.encode(
            `HTTP/1.1 200 OK\r\nContent-Length: ${declared}\r\nCache-Control: max-age=60\r\n` +
              `Connection: close\r\n\r\n`,
          ));
          await conn.write(new Uint8Array(sent).fill(0x61));
        } catch {
          // the replica hung up first
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* already closed */ }
        }
      })();
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    url: `http://127.0.0.1:${port}`,
    count: () => n,
    async close() {
      if (closed) return;
      closed = true;
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop.catch(() => {});
    },
  };
}

/** One part: its `Content-Range` and body (text, for ASCII test bodies). */
export interface BytePart {
  contentRange: string | null;
  contentType: string | null;
  body: string;
}

/** The parts of `body` sent with `contentType` (`multipart/byteranges; boundary=B`). */
export function parseByteranges(contentType: string | null, body: string): BytePart[] {
  const m = /boundary=("?)([^";]+)\1/.exec(contentType ?? "");
  if (m === null) throw new Error(`no boundary in ${contentType}`);
  const delimiter = `--${m[2]}`;
  const chunks = body.split(delimiter);
  if (chunks.at(-1)?.trim() !== "--") throw new Error("no closing delimiter");
  const parts: BytePart[] = [];
  for (const chunk of chunks.slice(1, -1)) {
    const end = chunk.indexOf("\r\n\r\n");
    if (!chunk.startsWith("\r\n") || end < 0) throw new Error(`bad part: ${chunk.slice(0, 80)}`);
    const head = chunk.slice(2, end).split("\r\n");
    const field = (name: string) =>
      head.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim() ??
        null;
    if (!chunk.endsWith("\r\n")) throw new Error("part not followed by CRLF");
    parts.push({
      contentRange: field("content-range"),
      contentType: field("content-type"),
      body: chunk.slice(end + 4, -2),
    });
  }
  return parts;
}
