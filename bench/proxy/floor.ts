/**
 * Controls for `bench:proxy` (`--proxies floor,floor-serve`): the least a Deno program does to
 * forward this benchmark's requests, to tell what the runtime costs from what our proxy adds.
 * No routing, no measurement, no limits, no request bodies, no chunked responses (a connection
 * that sends anything else is closed): not proxies anyone should run, only floors.
 *
 * - `floor`: `Deno.listen` (no `Deno.serve`), one kept-alive server connection per client
 *   connection; per request it reads the head, rewrites the absolute-form target to origin
 *   form, writes the head to the server, reads the response head and its `Content-Length`
 *   body, inserts one field and writes it all to the client with one write.
 * - `floor-serve` (`--serve`): the same exchange on pooled server connections, with
 *   `Deno.serve` for the clients and a `Response` built per request, as our proxy does.
 *
 * Usage: deno run --allow-net bench/proxy/floor.ts PORT SERVER_HOST SERVER_PORT [--serve]
 *
 * @module
 */

const [port, serverHost, serverPort] = [Number(Deno.args[0]), Deno.args[1], Number(Deno.args[2])];
const HEAD_MAX = 16 * 1024;
const BODY_MAX = 1024 * 1024;
const dec = new TextDecoder();
const enc = new TextEncoder();
const FIELD = enc.encode("X-Nearcast-Server: floor\r\n");

/** Index just past the first CRLFCRLF in `b[0..n)`, or -1. */
function headEnd(b: Uint8Array, n: number): number {
  for (let i = 3; i < n; i++) {
    if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i + 1;
  }
  return -1;
}

/** Reads into `b` from `n` until a head ends; the head's end, or -1 on a clean close. */
async function readHead(c: Deno.Conn, b: Uint8Array, n: { v: number }): Promise<number> {
  for (let end = headEnd(b, n.v);; end = headEnd(b, n.v)) {
    if (end >= 0) return end;
    if (n.v >= b.length) throw new Error("head too large");
    const r = await c.read(b.subarray(n.v));
    if (r === null) return -1;
    n.v += r;
  }
}

/** Reads into `b` from `n` until `total` bytes are there; false if the connection ends first. */
async function readTo(c: Deno.Conn, b: Uint8Array, n: { v: number }, total: number) {
  while (n.v < total) {
    const r = await c.read(b.subarray(n.v, total));
    if (r === null) return false;
    n.v += r;
  }
  return true;
}

async function serve(client: Deno.Conn): Promise<void> {
  let server: Deno.Conn | null = null;
  const req = new Uint8Array(HEAD_MAX);
  const res = new Uint8Array(HEAD_MAX + BODY_MAX);
  const n = { v: 0 };
  try {
    server = await Deno.connect({ hostname: serverHost, port: serverPort });
    for (;;) {
      const end = await readHead(client, req, n);
      if (end < 0) return;
      const head = dec.decode(req.subarray(0, end));
      const lineEnd = head.indexOf("\r\n");
      const [method, absolute, version] = head.slice(0, lineEnd).split(" ");
      const target = absolute.startsWith("http://")
        ? absolute.slice(absolute.indexOf("/", 7))
        : absolute;
      const fields = head.slice(lineEnd + 2).replace(/^proxy-connection:[^\r]*\r\n/gim, "");
      await server.write(enc.encode(`${method} ${target} ${version}\r\n${fields}`));
      req.copyWithin(0, end, n.v);
      n.v -= end;
      const m = { v: 0 };
      const rend = await readHead(server, res, m);
      if (rend < 0) return;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(dec.decode(res.subarray(0, rend)));
      if (length === null || Number(length[1]) > BODY_MAX) return;
      const total = rend + Number(length[1]);
      if (!await readTo(server, res, m, total)) return;
      const out = new Uint8Array(total + FIELD.length);
      out.set(res.subarray(0, rend - 2));
      out.set(FIELD, rend - 2);
      out.set(res.subarray(rend - 2, total), rend - 2 + FIELD.length);
      for (let w = 0; w < out.length;) w += await client.write(out.subarray(w));
    }
  } catch {
    // a reset or a closed server: the connection ends
  } finally {
    client.close();
    server?.close();
  }
}

/** Idle server connections with their read buffers, reused last in first out. */
const idle: { conn: Deno.Conn; buf: Uint8Array }[] = [];

/** One exchange with the server on a pooled connection: the response's status, fields, body. */
async function exchange(
  head: string,
): Promise<[number, [string, string][], Uint8Array<ArrayBuffer>]> {
  const pooled = idle.pop() ?? {
    conn: await Deno.connect({ hostname: serverHost, port: serverPort }),
    buf: new Uint8Array(HEAD_MAX + BODY_MAX),
  };
  const { conn: server, buf: res } = pooled;
  try {
    await server.write(enc.encode(head));
    const m = { v: 0 };
    const end = await readHead(server, res, m);
    if (end < 0) throw new Error("closed");
    const lines = dec.decode(res.subarray(0, end - 4)).split("\r\n");
    const fields: [string, string][] = [];
    let length = -1;
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      const name = lines[i].slice(0, colon);
      const value = lines[i].slice(colon + 1).trim();
      if (name.toLowerCase() === "content-length") length = Number(value);
      else fields.push([name, value]);
    }
    if (length < 0 || length > BODY_MAX) throw new Error("no usable content-length");
    if (!await readTo(server, res, m, end + length)) throw new Error("closed");
    idle.push(pooled);
    return [Number(lines[0].split(" ")[1]), fields, res.slice(end, end + length)];
  } catch (e) {
    server.close();
    throw e;
  }
}

if (Deno.args[3] === "--serve") {
  // The same job with Deno.serve on the client side: what Deno's HTTP server costs.
  Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    let head = `${req.method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
    for (const [name, value] of req.headers) {
      if (name !== "proxy-connection") head += `${name}: ${value}\r\n`;
    }
    const [status, fields, body] = await exchange(head + "\r\n");
    const headers = new Headers();
    for (const [name, value] of fields) headers.append(name, value);
    headers.append("x-nearcast-server", "floor");
    return new Response(body, { status, headers });
  });
  console.log(`floor (Deno.serve) listening on ${port}`);
} else {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log(`floor listening on ${port}`);
  for await (const c of listener) serve(c);
}
