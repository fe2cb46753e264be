/**
 * A raw TCP test origin for what `Deno.serve` cannot send: repeated header lines, interim
 * (1xx) responses, and connections closed without an answer. Each request (head only; no
 * request bodies) is passed to `answer` with its number on the connection; the returned text
 * is written as is (then the connection is closed if `close` is set), or the connection is
 * closed without an answer when it returns null.
 *
 * @module
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A request the raw origin saw. */
export interface RawRequest {
  /** The request line and headers, as received. */
  head: string;
  /** Path and query. */
  path: string;
  /** 1-based number of the request on its connection. */
  onConn: number;
  /** 1-based number of the connection. */
  conn: number;
}

/** Text to write (then close when `close` is set), or null to close without answering. */
export type Answer = string | { text: string; close: true } | null;

/** A running raw origin. */
export interface RawOrigin {
  url: string;
  requests: RawRequest[];
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** `HTTP/1.1 STATUS` response text with `headers` (name, value lines) and `body`. */
export function rawResponse(status: string, headers: [string, string][], body = ""): string {
  const lines = headers.map(([n, v]) => `${n}: ${v}\r\n`).join("");
  return `HTTP/1.1 ${status}\r\n${lines}content-length: ${enc.encode(body).length}\r\n\r\n${body}`;
}

/** Starts a raw origin on 127.0.0.1 with a free port. */
export function startRawOrigin(
  answer: (r: RawRequest) => Answer | Promise<Answer>,
): RawOrigin {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: RawRequest[] = [];
  const conns = new Set<Deno.Conn>();
  let accepted = 0;
  const serveConn = async (conn: Deno.Conn, connNo: number) => {
    const buf = new Uint8Array(16 * 1024);
    let pending = "";
    let onConn = 0;
    try {
      while (true) {
        while (!pending.includes("\r\n\r\n")) {
          const n = await conn.read(buf);
          if (n === null) return;
          pending += dec.decode(buf.subarray(0, n));
        }
        const end = pending.indexOf("\r\n\r\n");
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        const path = head.split(" ")[1] ?? "/";
        const r: RawRequest = { head, path, onConn: ++onConn, conn: connNo };
        requests.push(r);
        const a = await answer(r);
        if (a === null) return;
        await conn.write(enc.encode(typeof a === "string" ? a : a.text));
        if (typeof a !== "string") return;
      }
    } catch {
      // the client hung up
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      serveConn(conn, ++accepted);
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    requests,
    connections: () => accepted,
    async close() {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop.catch(() => {});
    },
  };
}
