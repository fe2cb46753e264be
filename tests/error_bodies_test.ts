/**
 * Error bodies are consistent across processes: every process's own error is `STATUS: message`
 * text or `{"error": message}` JSON, chosen by `Accept`; without a preference each keeps its
 * usual form. An origin's error relayed by a replica is never rewritten.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import { preferredErrorForm } from "../lib/common/error_body.ts";
import { startDns } from "../lib/fleet/_testing.ts";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";
import { startPrice } from "./_price_service.ts";
import { startProxyProc } from "./_proxy_procs.ts";

Deno.test("error bodies: Accept preference", () => {
  equal(preferredErrorForm(null), null);
  equal(preferredErrorForm("*/*"), null);
  equal(preferredErrorForm("application/json"), "json");
  equal(preferredErrorForm("text/plain"), "text");
  equal(preferredErrorForm("application/json;q=0.5, text/plain"), "text");
  equal(preferredErrorForm("text/*;q=0.2, application/*"), "json");
  equal(preferredErrorForm("text/html,application/xhtml+xml,*/*;q=0.8"), null);
});

/** The same 404 as text, as JSON, and in the process's usual form. */
async function check(url: string, usual: "text" | "json"): Promise<void> {
  const asText = await fetch(url, { headers: { accept: "text/plain" } });
  equal(asText.status, 404, url);
  match(asText.headers.get("content-type")!, /^text\/plain/);
  const text = await asText.text();
  const m = /^404: (.+)\n$/.exec(text);
  equal(m !== null, true, `${url}: ${text}`);
  const asJson = await fetch(url, { headers: { accept: "application/json" } });
  equal(asJson.status, 404);
  match(asJson.headers.get("content-type")!, /^application\/json/);
  const body = await asJson.json();
  equal(body.error, m![1], url);
  const plain = await fetch(url);
  match(plain.headers.get("content-type")!, usual === "json" ? /^application\/json/ : /^text\//);
  await plain.body?.cancel();
}

Deno.test({
  name: "error bodies: text or JSON by Accept on every process; relayed errors untouched",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const origin = await startOrigin({ "/teapot": { status: 418, body: "origin's own\n" } });
    const stops: (() => Promise<void>)[] = [() => origin.close()];
    try {
      const r = await startReplica(["-o", origin.url]);
      stops.push(() => r.close());
      await check(`${r.url}/_cdn/nothing`, "text");
      const relayed = await fetch(`${r.url}/teapot`, { headers: { accept: "application/json" } });
      equal(relayed.status, 418);
      equal(await relayed.text(), "origin's own\n");
      const dns = await startDns(["-n", "cdn.test", "--probe-port", "9"]);
      stops.push(() => dns.stop());
      await check(`http://127.0.0.1:${dns.control}/nothing`, "json");
      const price = await startPrice([]);
      stops.push(() => price.close());
      await check(`${price.url}/nothing`, "json");
      const proxy = await startProxyProc(["--node", r.url, "--name", "cdn.test"]);
      stops.push(() => proxy.close());
      await check(`${proxy.url}/_proxy/nothing`, "text");
      deepEqual(
        await (await fetch(`${price.url}/nothing`, { headers: { accept: "application/json" } }))
          .json(),
        { error: "no such route: /nothing" },
      );
    } finally {
      for (const s of stops.reverse()) await s();
    }
  },
});
