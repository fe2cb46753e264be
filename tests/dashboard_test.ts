/**
 * The DNS server's live dashboard in a real browser: a DNS server and three replicas (real
 * processes on loopback), the page opened in headless Chromium (Debian's `chromium`) and in
 * headless Firefox (Debian's `firefox-esr`), both driven by npm `puppeteer-core`. Every replica
 * appears with its state; a DNS answer shows as a decision; an upload appears as an event; a
 * replica killed with SIGKILL turns dead without a reload; drain needs the admin token; at phone
 * width nothing overflows sideways. Screenshots are kept in a temp folder whose path the test
 * prints. Also: the event-stream bounds (a cap on streams, a slow client dropped).
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import type { Browser, Page } from "puppeteer-core";
import { resolveA, startDns, waitFor } from "../lib/fleet/_testing.ts";
import { EventHub } from "../lib/fleet/dns/dashboard/hub.ts";
import {
  type BrowserKind,
  browserLabel,
  browserPath,
  launch,
  stateIs,
  states,
} from "./_browser.ts";
import { startOrigin } from "./_http_origin.ts";
import { runUpload, startNode, stopAll, type TestNode, TOKEN } from "./_upload_cluster.ts";

/** Generous bound for what the page shows (the 3 s figure belongs to a benchmark). */
const SHOWN_MS = 30_000;

/** Waits for the page to draw a state sent after now. */
async function nextUpdate(page: Page): Promise<void> {
  await page.waitForFunction(`Number(document.body.dataset.updated) > ${Date.now()}`, {
    timeout: SHOWN_MS,
  });
}

/**
 * The whole check in one browser: a fleet started, the page opened in `kind`, every step above;
 * screenshots named after the browser.
 */
async function checkDashboard(kind: BrowserKind): Promise<void> {
  browserPath(kind); // before starting anything: names the missing package
  const dir = await Deno.makeTempDir({ prefix: `nearcast-dashboard-${kind}-` });
  const shots = await Deno.makeTempDir({ prefix: `nearcast-dashboard-shots-${kind}-` });
  const dns = await startDns(["-n", "cdn.test", "--admin-token", TOKEN, "--policy", "geo"]);
  const origin = await startOrigin({
    "/pic.txt": { body: "a cached picture", headers: { "cache-control": "max-age=600" } },
  });
  const nodes: TestNode[] = [];
  let browser: Browser | null = null;
  const base = `http://127.0.0.1:${dns.control}`;
  try {
    const where = [["a", 40.7, -74], ["b", 51.5, -0.1], ["c", 35.7, 139.7]] as const;
    for (const [id, lat, lon] of where) {
      await Deno.mkdir(`${dir}/${id}`);
      nodes.push(
        await startNode(id, `${dir}/${id}`, [
          "--announce",
          `127.0.0.1:${dns.control}`,
          `--lat=${lat}`,
          `--lon=${lon}`,
          "--provider",
          `p${id}`,
          "-o",
          origin.url,
        ]),
      );
    }
    await waitFor("three replicas alive", async () => {
      const r = await (await fetch(`${base}/replicas`)).json();
      const alive = r.replicas.filter((x: { state: string }) => x.state === "alive");
      return alive.length === 3 ? true : undefined;
    }, SHOWN_MS);
    // The root page links to the dashboard.
    const root = await fetch(`${base}/`, { headers: { accept: "text/html" } });
    ok((await root.text()).includes('href="/dashboard"'), "the root page links /dashboard");

    browser = await launch(dir, kind);
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    await page.goto(`${base}/dashboard`);
    await page.waitForFunction(
      `document.querySelectorAll('[data-replica][data-state="alive"]').length === 3`,
      { timeout: SHOWN_MS },
    );
    deepStrictEqual(await states(page), { a: "alive", b: "alive", c: "alive" });
    // A mark that a reload would lose.
    await page.evaluate(() => ((globalThis as unknown as { mark: number }).mark = 42));

    // A DNS answer appears among the latest decisions, with its explanation.
    ok((await resolveA(dns.port, "cdn.test")) !== "", "the DNS server answers");
    await page.waitForFunction(
      `document.getElementById("decisions").textContent.includes("127.0.0.1/32")`,
      { timeout: SHOWN_MS },
    );

    // An upload appears as an event.
    const file = `${dir}/hello.txt`;
    await Deno.writeTextFile(file, "hello dashboard\n");
    const up = await runUpload([
      file,
      "--name",
      "dash/hello.txt",
      "--to",
      nodes[0].url,
      "--token",
      TOKEN,
    ]);
    equal(up.code, 0, up.err);
    await page.waitForFunction(
      `[...document.querySelectorAll('#events li[data-kind="upload"]')]
          .some((li) => li.textContent.includes("dash/hello.txt"))`,
      { timeout: SHOWN_MS },
    );

    // A replica killed: its element turns dead, without a reload.
    await nodes[2].proc.kill9();
    await page.waitForFunction(
      stateIs("c", "dead"),
      { timeout: SHOWN_MS },
    );
    equal(await page.evaluate(() => (globalThis as unknown as { mark: number }).mark), 42);
    deepStrictEqual(await states(page), { a: "alive", b: "alive", c: "dead" });
    await page.screenshot({ path: `${shots}/dashboard_${kind}_1280x800.png`, fullPage: true });

    // Drain: refused without the admin token (nothing changes), done with it from the page.
    const refused = await fetch(`${base}/dashboard/replicas/a/drain`, { method: "POST" });
    await refused.body?.cancel();
    equal(refused.status, 401);
    const wrong = await fetch(`${base}/dashboard/purge`, {
      method: "POST",
      headers: { authorization: "Bearer wrong" },
      body: JSON.stringify({ url: "/x" }),
    });
    await wrong.body?.cancel();
    equal(wrong.status, 401);
    equal((await states(page)).a, "alive");
    // The drain button outlives the page's updates (a click is not lost to a redraw).
    const button = await page.$('button[data-drain="a"]');
    await nextUpdate(page);
    ok(await button!.evaluate((b) => b.isConnected), "the drain button survives an update");
    await button!.dispose();
    await page.type("#token", TOKEN);
    await page.click('button[data-drain="a"]');
    await page.waitForFunction(
      stateIs("a", "draining"),
      { timeout: SHOWN_MS },
    );
    const listed = await (await fetch(`${base}/replicas`)).json();
    equal(listed.replicas.find((r: { id: string }) => r.id === "a").state, "draining");
    await page.click('button[data-drain="a"]');
    await page.waitForFunction(
      stateIs("a", "alive"),
      { timeout: SHOWN_MS },
    );

    // Purge from the page (with the token typed above): sent through a live replica, shown as
    // an action, and the replica's purged count going up shows as a purge.
    for (const want of ["MISS", "HIT"]) {
      const res = await fetch(`${nodes[0].url}/pic.txt`);
      await res.body?.cancel();
      equal(res.headers.get("x-cache"), want);
    }
    await page.type("#purge", "/pic.txt");
    await page.click('#purgeform button[type="submit"]');
    await page.waitForFunction(
      `document.getElementById("result").textContent.includes("200")`,
      { timeout: SHOWN_MS },
    );
    await page.waitForFunction(
      `[...document.querySelectorAll('#events li[data-kind="action"]')]
          .some((li) => li.textContent.includes("purge url /pic.txt via a"))`,
      { timeout: SHOWN_MS },
    );
    await page.waitForFunction(
      `[...document.querySelectorAll('#events li[data-kind="purge"]')]
          .some((li) => li.textContent.includes("a purged 1 cache entries"))`,
      { timeout: SHOWN_MS },
    );

    // Phone width: the page fits, nothing overflows sideways.
    await page.setViewport({ width: 375, height: 740 });
    await nextUpdate(page);
    const widths = await page.evaluate(
      "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
    ) as number[];
    ok(widths[0] <= widths[1], `horizontal overflow at 375 px: ${widths}`);
    await page.screenshot({ path: `${shots}/dashboard_${kind}_375.png`, fullPage: true });
    console.log(`dashboard screenshots (${browserLabel(kind)}): ${shots}`);
  } finally {
    await browser?.close();
    await stopAll(nodes);
    await dns.stop();
    await origin.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

for (const kind of ["chromium", "firefox"] as const) {
  Deno.test({
    name: `dashboard: a real fleet in headless ${
      browserLabel(kind)
    }: states, decisions, uploads, a death, drain`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => checkDashboard(kind),
  });
}

Deno.test("dashboard event streams: capped, and a client that stops reading is dropped", async () => {
  const hub = new EventHub(2, 64 * 1024);
  const a = hub.open("event: state\ndata: {}\n\n");
  const b = hub.open("event: state\ndata: {}\n\n");
  ok(a !== null && b !== null);
  equal(hub.open("x"), null, "a third stream is refused");
  equal(hub.stats.refused, 1);
  // b is read; a is never read: its buffer fills and it is dropped, b keeps its frames.
  const reader = b.getReader();
  await reader.read();
  const big = `event: state\ndata: ${"x".repeat(10_000)}\n\n`;
  for (let i = 0; i < 10; i++) {
    hub.send(big);
    await reader.read();
  }
  equal(hub.stats.dropped, 1);
  equal(hub.stats.open, 1);
  await a.getReader().read().then(
    () => {},
    (e) => ok(/too slow/.test(String(e))),
  );
  hub.close();
  equal((await reader.read()).done, true, "close ends the open streams");
});
