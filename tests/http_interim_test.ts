/**
 * End-to-end: what becomes of an origin's 1xx interim response (103 Early Hints). Deno's
 * `fetch` consumes it and yields the final response only, and `Deno.serve` cannot send one (a
 * `Response` status must be 101 or 200-599), so the replica forwards the final response and
 * not the 103. Deno's `node:http` can do both (`writeEarlyHints`, the client's `information`
 * event): the way to forward them would be a replica listener and origin client on it.
 */
import http from "node:http";
import { equal, ok, throws } from "node:assert/strict";
import { rawResponse, startRawOrigin } from "./_http_raw_origin.ts";
import { startReplica } from "./_http_replica.ts";

const EARLY_HINTS = "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n";

/** The raw bytes of a `Connection: close` GET to `port`, as text. */
async function rawGet(port: number, path: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`),
  );
  let text = "";
  const buf = new Uint8Array(16 * 1024);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return text;
}

Deno.test("http interim responses: Deno.serve cannot send a 1xx", () => {
  throws(() => new Response(null, { status: 103 }), RangeError);
  throws(() => new Response(null, { status: 100 }), RangeError);
});

Deno.test("http interim responses: a 103 from the origin is not forwarded, the final one is", async () => {
  const origin = startRawOrigin(() =>
    EARLY_HINTS + rawResponse("200 OK", [["cache-control", "max-age=60"]], "final")
  );
  const replica = await startReplica(["-o", origin.url, "--id", "interim", "--index", "ts"]);
  try {
    // Deno's fetch sees only the final response.
    const direct = await fetch(origin.url + "/direct");
    equal(direct.status, 200);
    equal(direct.headers.get("link"), null);
    equal(await direct.text(), "final");
    // Through the replica, on the wire: one response, the final 200, no 103.
    const wire = await rawGet(replica.port, "/page");
    ok(wire.startsWith("HTTP/1.1 200 OK\r\n"), wire);
    ok(!wire.includes("103"), wire);
    ok(wire.endsWith("\r\n\r\nfinal"), wire);
  } finally {
    await replica.close();
    await origin.close();
  }
});

Deno.test("http interim responses: Deno's node:http can send and receive a 103", async () => {
  const server = http.createServer((_req, res) => {
    res.writeEarlyHints({ link: "</style.css>; rel=preload; as=style" });
    res.end("final");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    const wire = await rawGet(port, "/");
    ok(wire.startsWith("HTTP/1.1 103 Early Hints\r\n"), wire);
    const interim: number[] = [];
    const final = await new Promise<number>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path: "/" }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("information", (info) => interim.push(info.statusCode));
      req.on("error", reject);
    });
    equal(final, 200);
    equal(interim.join(), "103");
  } finally {
    await new Promise((r) => server.close(r));
  }
});
