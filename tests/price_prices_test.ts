/**
 * `GET /prices` on the real service: the snapshot, the long poll (waits while nothing changes,
 * wakes within a second of a change, 304 at the end of its wait) and Server-Sent Events.
 */
import { equal, match, notEqual, ok } from "node:assert/strict";
import { send, startPrice } from "./_price_service.ts";

const TOKEN = "poll-token";
const AWS = { serverPerHour: 0.5, egressPerGiB: 0.09, currency: "USD" };

Deno.test("prices: long poll waits, wakes within 1 s of a change, answers 304 when none came", async () => {
  const svc = await startPrice(["--admin-token", TOKEN]);
  try {
    equal((await send(`${svc.url}/providers/aws`, "PUT", AWS, TOKEN)).status, 201);
    const snap = await (await fetch(`${svc.url}/prices`)).json();
    equal(snap.providers.length, 1);

    // An old version answers at once.
    const t0 = performance.now();
    const old = await fetch(`${svc.url}/prices?since=1`);
    equal(old.status, 200);
    equal((await old.json()).version, snap.version);
    ok(performance.now() - t0 < 5000);

    // The current version waits: still pending after 500 ms, then a PATCH wakes it.
    let settled = 0;
    const poll = fetch(`${svc.url}/prices?since=${snap.version}`).then((r) => {
      settled = performance.now();
      return r;
    });
    await new Promise((r) => setTimeout(r, 500));
    equal(settled, 0, "the long poll answered before any change");
    const patched = performance.now();
    const p = await send(`${svc.url}/providers/aws`, "PATCH", { egressPerGiB: 0.01 }, TOKEN);
    equal(p.status, 200);
    await p.body?.cancel();
    const res = await poll;
    equal(res.status, 200);
    const next = await res.json();
    notEqual(next.version, snap.version);
    equal(next.providers[0].egressPerGiB, 0.01);
    ok(settled - patched < 1000, `woke ${settled - patched} ms after the change`);
    equal(res.headers.get("etag"), `"${next.version}"`);

    // No change within wait=1: 304 with the same version.
    const quiet = await fetch(`${svc.url}/prices?since=${next.version}&wait=1`);
    equal(quiet.status, 304);
    equal(quiet.headers.get("etag"), `"${next.version}"`);
    const bad = await fetch(`${svc.url}/prices?since=1&wait=abc`);
    equal(bad.status, 400);
    equal((await bad.json()).field, "wait");
  } finally {
    await svc.close();
  }
});

Deno.test("prices: Server-Sent Events deliver one event per version", async () => {
  const svc = await startPrice(["--admin-token", TOKEN]);
  const ac = new AbortController();
  try {
    const res = await fetch(`${svc.url}/prices`, {
      headers: { accept: "text/event-stream" },
      signal: ac.signal,
    });
    equal(res.status, 200);
    match(res.headers.get("content-type")!, /^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const readUntil = async (re: RegExp) => {
      const deadline = setTimeout(() => ac.abort(), 5000);
      try {
        while (!re.test(text)) {
          const { done, value } = await reader.read();
          if (done) throw new Error(`stream ended before ${re}: ${text}`);
          text += value;
        }
      } finally {
        clearTimeout(deadline);
      }
    };
    await readUntil(/event: prices\ndata: .*"providers":\[\]/);
    equal((await send(`${svc.url}/providers/aws`, "PUT", AWS, TOKEN)).status, 201);
    await readUntil(/event: prices\ndata: .*"name":"aws"/);
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => m[1]);
    equal(ids.length, 2);
    notEqual(ids[0], ids[1]);
  } finally {
    ac.abort();
    await svc.close();
  }
});

Deno.test("prices: SIGTERM ends open event streams and long polls, and the service stops", async () => {
  const svc = await startPrice(["--admin-token", TOKEN]);
  const ac = new AbortController();
  try {
    const stream = await fetch(`${svc.url}/prices`, {
      headers: { accept: "text/event-stream" },
      signal: ac.signal,
    });
    const reader = stream.body!.getReader();
    await reader.read(); // the stream is open
    const v = (await (await fetch(`${svc.url}/prices`)).json()).version;
    const poll = fetch(`${svc.url}/prices?since=${v}`, { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const exited = svc.close().then(() => performance.now() - t0);
    const timer = setTimeout(() => ac.abort(), 10_000);
    const ms = await exited;
    clearTimeout(timer);
    ok(!ac.signal.aborted, "the service waited for its clients to leave");
    ok(ms < 10_000, `exited after ${ms} ms`);
    equal((await poll).status, 304);
    for (;;) if ((await reader.read()).done) break;
    match(svc.output(), /price: stopped \(SIGTERM\)/);
  } finally {
    ac.abort();
    await svc.close();
  }
});

Deno.test("prices: a short --idle-timeout shortens long polls and keepalives instead of cutting them", async () => {
  const svc = await startPrice(["--admin-token", TOKEN, "--idle-timeout", "2s"]);
  const ac = new AbortController();
  try {
    const v = (await (await fetch(`${svc.url}/prices`)).json()).version;
    const t0 = performance.now();
    const quiet = await fetch(`${svc.url}/prices?since=${v}`); // asks the default 25 s
    equal(quiet.status, 304);
    ok(performance.now() - t0 < 10_000);
    const stream = await fetch(`${svc.url}/prices`, {
      headers: { accept: "text/event-stream" },
      signal: ac.signal,
    });
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const until = performance.now() + 5000; // past two idle timeouts
    while (performance.now() < until) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`the event stream was cut: ${text}`);
      text += value;
    }
    match(text, /: keepalive\n\n/);
  } finally {
    ac.abort();
    await svc.close();
  }
});
