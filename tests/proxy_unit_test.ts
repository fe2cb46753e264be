/**
 * The routing proxy's pure parts: Peak-EWMA, ranking by mode (ties, the balanced window,
 * panic, p2c), outlier ejection with backoff, the server list parser, the flags, and the
 * HTTP/1.1 response reader (framings, limits) over a real loopback socket.
 */
import { deepStrictEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import { PeakEwma } from "../lib/proxy/peak_ewma.ts";
import { type PriceLookup, rank, type RankOptions } from "../lib/proxy/select.ts";
import { ServerState } from "../lib/proxy/server_state.ts";
import { parseServerList } from "../lib/proxy/server_list.ts";
import { parseProxyConfig } from "../lib/proxy/config.ts";
import { UpstreamPool } from "../lib/proxy/upstream.ts";
import { clientResponse } from "../lib/proxy/forward.ts";

Deno.test("PeakEwma: peaks at once, decays towards lower samples with time", () => {
  const e = new PeakEwma(1000);
  equal(e.value, null);
  e.observe(10, 0);
  equal(e.value, 10);
  e.observe(50, 10);
  equal(e.value, 50); // the peak is taken at once
  e.observe(10, 10); // no time passed: a lower sample does not move it
  equal(e.value, 50);
  e.observe(10, 1010); // one time constant: 1 - 1/e of the way down
  ok(Math.abs(e.value! - (10 + 40 / Math.E)) < 1e-9);
  throws(() => e.observe(-1, 2000), RangeError);
});

function server(id: string, provider: string | null, latency: number | null): ServerState {
  const s = new ServerState(
    { id, url: `http://127.0.0.1:${1000 + id.charCodeAt(0)}`, provider, alive: true },
    10_000,
    { baseMs: 1000, maxMs: 8000 },
  );
  if (latency !== null) s.latency.observe(latency, 0);
  return s;
}

const PRICES: Record<string, number> = { cheap: 0.01, mid: 0.05, dear: 0.09 };
const prices: PriceLookup = (p) =>
  PRICES[p] === undefined ? undefined : { perGiB: PRICES[p], currency: "USD" };
const opts = (mode: RankOptions["mode"], more: Partial<RankOptions> = {}): RankOptions => ({
  mode,
  maxExtraMs: 20,
  pick: "best",
  prices,
  now: 0,
  random: Math.random,
  ...more,
});
const ids = (l: ServerState[]) => l.map((s) => s.id);

Deno.test("rank: latency, price (ties by latency), balanced window", () => {
  const near = server("n", "dear", 5);
  const mid = server("m", "mid", 20);
  const far = server("f", "cheap", 80);
  const all = [far, mid, near];
  deepStrictEqual(ids(rank(all, opts("latency")).order), ["n", "m", "f"]);
  deepStrictEqual(ids(rank(all, opts("price")).order), ["f", "m", "n"]);
  // Balanced: fastest 5 ms, window 25 ms: m (mid) is the cheapest inside it.
  const b = rank(all, opts("balanced"));
  deepStrictEqual(ids(b.order), ["m", "n", "f"]);
  match(
    b.reason(mid),
    /^price 0\.0500 USD\/GiB, rtt 20\.0 ms, 0 in flight, mode balanced: cheapest within 20 ms of fastest 5\.0 ms$/,
  );
  // A wider window takes the cheapest; a zero window the fastest.
  deepStrictEqual(ids(rank(all, opts("balanced", { maxExtraMs: 100 })).order).at(0), "f");
  deepStrictEqual(ids(rank(all, opts("balanced", { maxExtraMs: 0 })).order).at(0), "n");
  // Exact price tie: the lower expected latency (in-flight counts) wins.
  const t1 = server("a", "mid", 10), t2 = server("b", "mid", 10);
  t1.outstanding = 2;
  deepStrictEqual(ids(rank([t1, t2], opts("price")).order), ["b", "a"]);
  // Unknown price ranks after priced; unmeasured after measured.
  const unpriced = server("u", null, 1);
  equal(rank([unpriced, far], opts("price")).order[0].id, "f");
  match(rank([unpriced], opts("price")).reason(unpriced), /^price unknown/);
  equal(rank([server("x", "mid", null), far], opts("latency")).order[0].id, "f");
});

Deno.test("rank: ejected servers are skipped; all ejected is panic; p2c draws two", () => {
  const a = server("a", "cheap", 5), b = server("b", "dear", 50), c = server("c", "mid", 60);
  a.failed("cannot connect", true, 0);
  equal(rank([a, b, c], opts("price")).order[0].id, "c");
  equal(rank([a, b, c], opts("latency")).order[0].id, "b");
  b.info = { ...b.info, alive: false }; // the node says it is dead
  equal(rank([a, b, c], opts("latency")).order[0].id, "c");
  b.lastProbe = { at: 0, ok: true, status: 200 }; // but it answers this proxy's probes
  equal(rank([a, b, c], opts("latency")).order[0].id, "b");
  b.lastProbe = { at: 0, ok: false, status: null };
  c.failed("x", true, 0);
  const p = rank([a, b, c], opts("latency"));
  ok(p.panic);
  match(p.reason(p.order[0]), /every server ejected, trying anyway/);
  // p2c: two servers drawn at random from the eligible ones, the lower cost of the two wins.
  const s = [server("p", null, 30), server("q", null, 10), server("r", null, 20)];
  const seq = [0.9, 0.9];
  const r = rank(s, opts("latency", { pick: "p2c", random: () => seq.shift()! }));
  // Sorted q, r, p; draws i = 2 (p) and j = 1 (r): r wins over p, though q is best.
  equal(r.order[0].id, "r");
  match(r.reason(r.order[0]), /two drawn \(r, p\)/);
});

Deno.test("ServerState: ejection backs off 1, 2, 4, 8 (max) s; soft failures need three", () => {
  const s = server("s", null, 5);
  ok(!s.failed("503", false, 0));
  ok(!s.failed("503", false, 0));
  ok(s.failed("503", false, 0)); // the third in a row
  equal(s.ejectedUntil, 1000);
  ok(!s.failed("again", true, 500)); // already ejected: unchanged
  equal(s.ejectedUntil, 1000);
  ok(s.failed("refused", true, 1000));
  equal(s.ejectedUntil, 3000);
  ok(s.failed("refused", true, 3000));
  equal(s.ejectedUntil, 7000);
  ok(s.failed("refused", true, 7000));
  equal(s.ejectedUntil, 15000);
  ok(s.failed("refused", true, 15000));
  equal(s.ejectedUntil, 23000); // capped at 8 s
  s.succeeded(5, 23000); // after the ejection ended: the count resets
  equal(s.ejections, 0);
  ok(s.eligible(23000));
});

Deno.test("parseServerList: removed entries left out, provider and alive read", () => {
  deepStrictEqual(
    parseServerList([
      { id: "a", url: "http://127.0.0.1:1/", alive: true, removed: false, provider: "aws" },
      { id: "b", url: "http://127.0.0.1:2", alive: false, removed: false },
      { id: "c", url: "http://127.0.0.1:3", removed: true },
      { id: 4, url: "http://127.0.0.1:4" },
      { id: "e", url: "not a url" },
    ]),
    [
      { id: "a", url: "http://127.0.0.1:1", provider: "aws", alive: true },
      { id: "b", url: "http://127.0.0.1:2", provider: null, alive: false },
    ],
  );
  throws(() => parseServerList({}), TypeError);
});

Deno.test("parseProxyConfig: defaults, modes that need --price, bad values named", () => {
  const c = parseProxyConfig(["--node", "http://127.0.0.1:8080/", "--name", "CDN.test."]);
  ok(c !== "help");
  equal(c.mode, "latency");
  equal(c.node, "http://127.0.0.1:8080");
  deepStrictEqual(c.names, ["cdn.test"]);
  equal(c.other, "forward");
  equal(c.maxExtraMs, 20);
  throws(
    () => parseProxyConfig(["--node", "http://x", "--mode", "price"]),
    /--mode price needs --price/,
  );
  throws(
    () => parseProxyConfig(["--node", "http://x", "--mode", "fast"]),
    /--mode must be one of latency, price or balanced: received fast/,
  );
  throws(() => parseProxyConfig([]), /--node is required/);
  throws(
    () => parseProxyConfig(["--node", "http://x", "--other", "drop"]),
    /--other must be forward or refuse/,
  );
});

/** A one-shot server on loopback that answers every connection with `reply`. */
function rawServer(reply: string | Uint8Array): { port: number; close(): void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of l) {
      (async () => {
        await c.read(new Uint8Array(4096));
        await c.write(typeof reply === "string" ? new TextEncoder().encode(reply) : reply).catch(
          () => {},
        );
        c.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  return { port: (l.addr as Deno.NetAddr).port, close: () => l.close() };
}

const GET = {
  method: "GET",
  target: "/",
  headers: [["host", "x"]] as [string, string][],
  body: null,
  bodyLength: null,
};

Deno.test("UpstreamPool: chunked, 1xx skipped, close-delimited, bad heads refused", async () => {
  const pool = new UpstreamPool({ headTimeoutMs: 2000 });
  const cases: [string, string | null][] = [
    [
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
      "abcde",
    ],
    ["HTTP/1.0 200 OK\r\n\r\nuntil close", "until close"],
    ["HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", null],
    ["HTTP/1.1 200 OK\r\nbad header\r\n\r\n", null],
    ["HTTP/1.1 200 OK\r\nx: " + "y".repeat(70 * 1024) + "\r\n\r\n", null],
    ["", null],
  ];
  try {
    for (const [reply, body] of cases) {
      const s = rawServer(reply);
      try {
        if (body === null) {
          await rejects(
            pool.request("127.0.0.1", s.port, GET),
            { name: "UpstreamError" },
            reply.slice(0, 60),
          );
          continue;
        }
        const res = await pool.request("127.0.0.1", s.port, GET);
        equal(res.head.status, 200);
        equal(await new Response(res.body as BodyInit).text(), body);
      } finally {
        s.close();
      }
    }
    // A kept-alive connection the server closed meanwhile: the request goes again on a new one.
    const once = rawServer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    const p2 = new UpstreamPool();
    for (let i = 0; i < 2; i++) {
      const r = await p2.request("127.0.0.1", once.port, GET);
      equal(new TextDecoder().decode(r.body as Uint8Array), "ok");
      await new Promise((r) => setTimeout(r, 50)); // the server's close arrives
    }
    deepStrictEqual(p2.stats, { connects: 2, reused: 1 });
    p2.close();
    once.close();
    // A small body cut short fails the request (nothing was relayed yet); a large one errors
    // its stream.
    const small = rawServer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    await rejects(pool.request("127.0.0.1", small.port, GET), { name: "UpstreamError" });
    small.close();
    const large = rawServer("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc");
    const res = await pool.request("127.0.0.1", large.port, GET);
    ok(res.body instanceof ReadableStream);
    await rejects(new Response(res.body).text());
    large.close();
  } finally {
    pool.close();
  }
});

Deno.test("UpstreamPool: a head arriving a few bytes at a time, bare LFs, TE over bad lengths", async () => {
  const pool = new UpstreamPool({ headTimeoutMs: 5000 });
  const replies: [string, string][] = [
    [
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A:  b \r\nContent-Length: 5\r\n\r\nhello",
      "hello",
    ],
    ["HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", "hi"],
    [
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "ok",
    ],
  ];
  try {
    for (const [reply, body] of replies) {
      for (const piece of [1, 3, 7]) {
        // The server writes the reply `piece` bytes at a time, so the head is split everywhere.
        const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const served = (async () => {
          const c = await l.accept();
          c.setNoDelay(true);
          await c.read(new Uint8Array(4096));
          const bytes = new TextEncoder().encode(reply);
          for (let i = 0; i < bytes.length; i += piece) {
            await c.write(bytes.subarray(i, i + piece));
            await new Promise((r) => setTimeout(r, 1));
          }
          await new Promise((r) => setTimeout(r, 50));
          c.close();
        })();
        try {
          const res = await pool.request("127.0.0.1", (l.addr as Deno.NetAddr).port, GET);
          equal(res.head.status, 200, reply);
          equal(await new Response(res.body as BodyInit).text(), body, `${piece}: ${reply}`);
          if (reply.includes("X-A")) {
            deepStrictEqual(res.head.headers.find(([n]) => n === "x-a"), ["x-a", "b"]);
          }
        } finally {
          await served.catch(() => {});
          l.close();
        }
      }
    }
  } finally {
    pool.close();
  }
});

Deno.test("UpstreamPool: head fields cut in place: names lower case, values trimmed, bytes kept as latin1", async () => {
  const pool = new UpstreamPool({ headTimeoutMs: 2000 });
  // obs-text bytes 0x85 and 0xE9 are U+0085 and U+00E9 (not windows-1252's U+2026); tabs,
  // spaces and NBSP (0xA0) around a value are trimmed; a colon inside a value stays.
  const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  const reply = bytes(
    "HTTP/1.1 200 Fine\r\nX-Obs: a\x85b\xe9\r\nX-Trim: \t\xa0 v  w \xa0\t\r\nX-Url: http://a:1/\r\n" +
      "X-Empty:\r\nContent-Length: 0\r\n\r\n",
  );
  const bad = [
    "HTTP/1.1 200 OK\r\n x: leading space\r\n\r\n",
    "HTTP/1.1 200 OK\r\nx : space before colon\r\n\r\n",
    "HTTP/1.1 200 OK\r\nx\xa0y: nbsp in name\r\n\r\n",
    "HTTP/1.1 200 OK\r\n: no name\r\n\r\n",
    "HTTP/1.1 200 OK\r\nno colon here\r\nx: y\r\n\r\n",
    "HTTP/1.1 2000 OK\r\n\r\n",
  ];
  try {
    const s = rawServer(reply);
    try {
      const res = await pool.request("127.0.0.1", s.port, GET);
      deepStrictEqual(res.head, {
        minor: 1,
        status: 200,
        reason: "Fine",
        headers: [
          ["x-obs", "a\u0085b\u00e9"],
          ["x-trim", "v  w"],
          ["x-url", "http://a:1/"],
          ["x-empty", ""],
          ["content-length", "0"],
        ],
      });
    } finally {
      s.close();
    }
    for (const b of bad) {
      const s = rawServer(bytes(b));
      try {
        await rejects(pool.request("127.0.0.1", s.port, GET), { name: "UpstreamError" }, b);
      } finally {
        s.close();
      }
    }
  } finally {
    pool.close();
  }
});

Deno.test("clientResponse: hop-by-hop dropped, Via appended; what cannot be relayed is a 502", async () => {
  const head = (headers: [string, string][], status = 200) => ({
    head: { minor: 1, status, reason: "OK", headers },
    body: new TextEncoder().encode("ok"),
    connectMs: null,
    headMs: 1,
  });
  const ok1 = clientResponse(
    head([["connection", "x-a"], ["x-a", "1"], ["keep-alive", "t=5"], ["via", "1.1 s"], [
      "x-b",
      "2",
    ]]),
    "1.1 p",
    [["x-nearcast-server", "s"]],
  );
  deepStrictEqual([...ok1.headers], [["via", "1.1 s, 1.1 p"], ["x-b", "2"], [
    "x-nearcast-server",
    "s",
  ]]);
  equal(await ok1.text(), "ok");
  const bad = clientResponse(head([["x-c", "a\0b"]]), "1.1 p", []);
  equal(bad.status, 502);
  match(await bad.text(), /cannot relay/);
  equal(clientResponse(head([], 600), "1.1 p", []).status, 502);
});

/** Closes every connection of `conns`, those closed already included. */
function closeAll(conns: Deno.Conn[]): void {
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
}

Deno.test("UpstreamPool: head and idle timeouts close a stalled server's connection", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const c of l) {
      held.push(c);
      const buf = new Uint8Array(4096);
      const n = await c.read(buf);
      const text = new TextDecoder().decode(buf.subarray(0, n ?? 0));
      // /body: a head and part of a body, then nothing; anything else: nothing at all.
      if (text.startsWith("GET /body ")) {
        await c.write(
          new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\nabc"),
        );
      }
    }
  })().catch(() => {});
  const port = (l.addr as Deno.NetAddr).port;
  const pool = new UpstreamPool({ headTimeoutMs: 300, idleTimeoutMs: 300 });
  try {
    const t0 = performance.now();
    await rejects(pool.request("127.0.0.1", port, GET), /no response head within 300 ms/);
    ok(performance.now() - t0 < 5_000);
    const res = await pool.request("127.0.0.1", port, { ...GET, target: "/body" });
    await rejects(new Response(res.body as ReadableStream).text());
  } finally {
    pool.close();
    l.close();
    closeAll(held);
  }
});

Deno.test("UpstreamPool: among many exchanges at once only the stalled ones time out; answered connections stay usable", async () => {
  // Per connection, in a loop: /wait/MS answered after MS ms, /stall never.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const enc = new TextEncoder();
  (async () => {
    for await (const c of l) {
      held.push(c);
      (async () => {
        const buf = new Uint8Array(4096);
        for (;;) {
          const n = await c.read(buf);
          if (n === null) return;
          const target = new TextDecoder().decode(buf.subarray(0, n)).split(" ")[1];
          if (target === "/stall") return;
          await new Promise((r) => setTimeout(r, Number(target.split("/")[2])));
          await c.write(enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        }
      })().catch(() => {});
    }
  })().catch(() => {});
  const port = (l.addr as Deno.NetAddr).port;
  // Timeouts well above the longest answer (240 ms), so a loaded machine does not turn an
  // answer into a timeout.
  const pool = new UpstreamPool({ headTimeoutMs: 1000, idleTimeoutMs: 1000 });
  try {
    // Answers come back in another order than the requests went out, stalls in between: the
    // watchdog's list of armed connections is cut from its middle, not only from its end.
    const waits = [120, 40, 200, 80, 160, 10, 240, 60, 180, 20, 100, 140];
    const targets = waits.flatMap((ms, i) =>
      i % 2 === 0 ? [`/wait/${ms}`, "/stall"] : [`/wait/${ms}`]
    );
    const outcomes = await Promise.all(targets.map(async (target) => {
      try {
        const res = await pool.request("127.0.0.1", port, { ...GET, target });
        return `${target} ${new TextDecoder().decode(res.body as Uint8Array)}`;
      } catch (e) {
        return `${target} ${(e as Error).message}`;
      }
    }));
    deepStrictEqual(
      outcomes,
      targets.map((t) => t === "/stall" ? `${t} no response head within 1000 ms` : `${t} ok`),
    );
    // Past the timeouts, the 12 answered connections are idle in the pool, none closed by the
    // watchdog: each is reused, and no new connection is opened.
    await new Promise((r) => setTimeout(r, 1200));
    const connects = pool.stats.connects;
    const again = await Promise.all(
      Array.from(
        { length: 12 },
        () => pool.request("127.0.0.1", port, { ...GET, target: "/wait/0" }),
      ),
    );
    equal(again.length, 12);
    equal(pool.stats.connects, connects, "no answered connection was closed by the watchdog");
  } finally {
    pool.close();
    l.close();
    closeAll(held);
  }
});
