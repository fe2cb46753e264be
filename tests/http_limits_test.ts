/**
 * The replica's listener limits with real processes: a connection cap below the open-file
 * limit (1,100 idle connections under `ulimit -n 1024` do not end it), header timeout
 * (slowloris), idle timeout that spares streams which keep sending, and bodies: purge answers
 * 401 before reading an unauthenticated body and 413 while reading an oversize one.
 */
import { equal, ok } from "node:assert/strict";
import { type Route, startOrigin } from "./_http_origin.ts";
import {
  chunkedUpload,
  closeAll,
  closedWithin,
  limitedReplica,
  type LimitedServer,
  openIdle,
  rssBytes,
  sleep,
  withServer,
} from "./_limits.ts";

const TOKEN = "limits-token";
const MiB = 1024 * 1024;

/** A counter or gauge of the replica's `/_cdn/metrics`. */
async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url + "/_cdn/metrics")).text();
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  if (m === null) throw new Error(`no ${name} in /_cdn/metrics:\n${text}`);
  return Number(m[1]);
}

/**
 * Runs `fn` with an origin serving `routes` and a limited replica in front of it (`extra`
 * flags); afterwards closes the connections `fn` left in `conns` and stops both.
 */
async function withReplica(
  routes: Record<string, Route>,
  extra: string[],
  fn: (r: LimitedServer, conns: Deno.TcpConn[]) => Promise<void>,
): Promise<void> {
  const origin = await startOrigin(routes);
  try {
    await withServer(
      await limitedReplica(["-o", origin.url, "--admin-token", TOKEN, ...extra]),
      fn,
    );
  } finally {
    await origin.close();
  }
}

/** A complete request on a new connection is answered: 200 from `/_cdn/health`. */
async function healthy(url: string): Promise<void> {
  const res = await fetch(url + "/_cdn/health");
  equal(res.status, 200);
  await res.body?.cancel();
}

Deno.test({
  name: "http limits: 1,100 idle connections under ulimit -n 1024 do not end the replica",
  sanitizeResources: false,
  async fn() {
    await withReplica(
      {
        "/a": { body: "a", headers: { "cache-control": "max-age=60" } },
      },
      [],
      async (r, conns) => {
        conns.push(...await openIdle(r.port, 1100));
        await sleep(500);
        equal(r.p.exited(), null, `the replica exited:\n${r.p.output()}`);
        const res = await fetch(r.url + "/a");
        equal(res.status, 200);
        equal(await res.text(), "a");
        await healthy(r.url);
        // The oldest idle connections were closed to stay under the cap (768 at 1024 files).
        const closed = await Promise.all(conns.slice(0, 200).map((c) => closedWithin(c, 2000)));
        ok(closed.filter(Boolean).length >= 100, `closed ${closed.filter(Boolean).length}/200`);
        equal(await metric(r.url, "nearcast_http_connections_max"), 768);
        ok(await metric(r.url, "nearcast_http_connections_evicted_total") >= 100);
        ok(await metric(r.url, "nearcast_http_connections_open") <= 768);
      },
    );
  },
});

Deno.test({
  name: "http limits: accept errors (EMFILE) with --max-conns above the file limit are survived",
  sanitizeResources: false,
  async fn() {
    await withReplica({}, ["--max-conns", "5000"], async (r, conns) => {
      conns.push(...await openIdle(r.port, 1100));
      await sleep(1500);
      equal(r.p.exited(), null, `the replica exited:\n${r.p.output()}`);
      ok(/accept failed/.test(r.p.output()), `no accept error was logged:\n${r.p.output()}`);
      closeAll(conns.splice(0, 200));
      ok(await metric(r.url, "nearcast_http_accept_errors_total") >= 1);
      await healthy(r.url);
    });
  },
});

Deno.test({
  name: "http limits: at the cap with every connection busy, a new one is closed at once",
  sanitizeResources: false,
  async fn() {
    await withReplica(
      {
        "/slow": { body: "slow", delayMs: 2000, headers: { "cache-control": "no-store" } },
      },
      ["--max-conns", "2"],
      async (r) => {
        const clients = [Deno.createHttpClient({}), Deno.createHttpClient({})];
        const busy = clients.map((client) =>
          fetch(r.url + "/slow", { client }).then((res) => res.text())
        );
        await sleep(500);
        const [extra] = await openIdle(r.port, 1);
        await extra.write(new TextEncoder().encode("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
          .catch(() => {});
        ok(await closedWithin(extra, 1500), "the connection over the cap was served");
        closeAll([extra]);
        for (const b of await Promise.all(busy)) equal(b, "slow");
        for (const c of clients) c.close();
        await healthy(r.url);
      },
    );
  },
});

Deno.test({
  name: "http limits: partial request heads are closed after --header-timeout",
  sanitizeResources: false,
  async fn() {
    await withReplica({}, ["--header-timeout", "1s"], async (r, conns) => {
      conns.push(...await openIdle(r.port, 200, "GET /a HTTP/1.1\r\nHost: x\r\nX-Slow: 1"));
      const t0 = Date.now();
      const closed = await Promise.all(conns.map((c) => closedWithin(c, 15_000)));
      equal(closed.filter((x) => !x).length, 0, "some slowloris connections stayed open");
      ok(Date.now() - t0 < 15_000);
      ok(await metric(r.url, "nearcast_http_connections_header_timeouts_total") >= 200);
      // A complete request on a new connection is still answered.
      await healthy(r.url);
    });
  },
});

Deno.test({
  name: "http limits: a stream that keeps sending outlives --idle-timeout; a stalled one does not",
  sanitizeResources: false,
  async fn() {
    await withReplica(
      {
        // 12 chunks 250 ms apart: 3 s in all, with an idle timeout of 1 s.
        "/events": {
          body: "x".repeat(12),
          chunks: 12,
          chunkDelayMs: 250,
          headers: { "cache-control": "no-store", "content-type": "text/event-stream" },
        },
        // One chunk, then 4 s of silence.
        "/stall": {
          body: "yz",
          chunks: 2,
          chunkDelayMs: 4000,
          headers: { "cache-control": "no-store" },
        },
      },
      ["--idle-timeout", "1s", "--header-timeout", "1s"],
      async (r) => {
        const t0 = Date.now();
        const res = await fetch(r.url + "/events");
        equal(await res.text(), "x".repeat(12));
        ok(Date.now() - t0 >= 2500, "the stream was not slow: the test proves nothing");
        const stalled = await fetch(r.url + "/stall");
        const body = await stalled.text().then(() => "complete", (e) => `cut: ${e.message}`);
        ok(body.startsWith("cut"), `a stalled stream must be cut by the idle timeout: ${body}`);
        ok(await metric(r.url, "nearcast_http_connections_idle_timeouts_total") >= 1);
      },
    );
  },
});

Deno.test({
  name: "http limits: a large cached body read slowly is not cut by the 1 s timeouts",
  sanitizeResources: false,
  async fn() {
    const big = new Uint8Array(16 * MiB).fill(7);
    await withReplica(
      {
        "/big": { body: big, headers: { "cache-control": "max-age=600" } },
      },
      ["--idle-timeout", "1s", "--header-timeout", "1s"],
      async (r) => {
        await (await fetch(r.url + "/big")).arrayBuffer(); // fill the cache
        // Raw TCP (fetch would buffer ahead): about 4 s for 16 MiB, far longer than the idle
        // timeout, and more than the socket buffers hold.
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: r.port });
        await conn.write(new TextEncoder().encode("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
        const buf = new Uint8Array(64 * 1024);
        let got = 0;
        let head = "";
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          got += n;
          if (head.length < 200) {
            head += new TextDecoder().decode(buf.subarray(0, Math.min(n, 200)));
          }
          if (got >= big.byteLength + 100 && /\r\n\r\n/.test(head)) break;
          await sleep(n / 4096); // ~4 MiB/s
        }
        conn.close();
        ok(/^HTTP\/1\.1 200/.test(head) && /x-cache: HIT/i.test(head), head);
        const bodyStart = head.indexOf("\r\n\r\n") + 4;
        ok(got - bodyStart >= big.byteLength, `got ${got - bodyStart} of ${big.byteLength} bytes`);
      },
    );
  },
});

Deno.test({
  name: "http limits: purge answers 401 before reading a body, 413 while reading one",
  sanitizeResources: false,
  async fn() {
    await withReplica({}, [], async (r) => {
      const before = rssBytes(r.p.pid);
      const head = (auth: string) =>
        `POST /_cdn/purge HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n`;
      const anon = await chunkedUpload(r.port, head(""), 300 * MiB);
      equal(anon.status, 401);
      ok(anon.sent < 64 * MiB, `sent ${anon.sent} bytes before the 401`);
      const big = await chunkedUpload(
        r.port,
        head(`Authorization: Bearer ${TOKEN}\r\n`),
        300 * MiB,
      );
      equal(big.status, 413);
      ok(big.sent < 64 * MiB, `sent ${big.sent} bytes before the 413`);
      const grew = rssBytes(r.p.pid) - before;
      console.log(`purge: 401 after ${anon.sent} bytes, 413 after ${big.sent}, RSS +${grew}`);
      ok(grew < 64 * MiB, `RSS grew by ${grew} bytes`);
    });
  },
});
