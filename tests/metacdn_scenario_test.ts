/**
 * The meta-CDN scenario (`scripts/scenario_metacdn.ts`, also `deno task scenario:metacdn`):
 * three replicas on three providers at 10, 40 and 150 ms from the client, in network
 * namespaces `dp-*` with the link emulator. For the same request the DNS server answers the
 * nearest under `--policy latency`, the cheapest under `price`, and the cheapest within 60 ms
 * of the fastest under `balanced`, which flips when a price changes through the pricing API,
 * when a delay grows past the bound and when the chosen replica is killed, and back each time.
 * The same decisions through three routing proxies on the client (one per mode) with curl, and
 * for the three modes with wget and headless Chromium too (X-Nearcast-Server; the page's
 * script reports the server). A missing tool (dig, curl, wget, chromium) is named. Each decision waits at most 30 s (then fails with the processes' output), so the test is
 * bounded; the namespaces are removed even on failure. Needs root (like the other netns
 * tests); do not run it beside fleet_scenario_test, netemu_test or fleet_failover_test.
 */
import assert from "node:assert/strict";
import { runMetacdnScenario } from "../scripts/scenario_metacdn.ts";

Deno.test({
  name: "meta-CDN scenario: latency, price and balanced decisions, and what flips balanced",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const decisions = await runMetacdnScenario({ log: (line) => console.log(line) });
    const seen = decisions.map((d) => `${d.step} | ${d.via}: ${d.got}`);
    const all = (step: string, mode: string, id: string) =>
      ["dig", `curl -x ${mode} proxy`, `wget -x ${mode} proxy`, `chromium -x ${mode} proxy`]
        .map((via) => `${step} | ${via}: ${id}`);
    const two = (
      step: string,
      id: string,
    ) => [`${step} | dig: ${id}`, `${step} | curl -x balanced proxy: ${id}`];
    assert.deepEqual(seen, [
      ...all("latency", "latency", "r1"),
      ...all("price", "price", "r3"),
      ...all("balanced", "balanced", "r2"),
      ...two("balanced, alpha cheaper", "r1"),
      ...two("balanced, alpha's price restored", "r2"),
      ...two("balanced, r2 slow", "r1"),
      ...two("balanced, r2's delay restored", "r2"),
      ...two("balanced, r2 killed", "r1"),
      ...two("balanced, r2 back", "r2"),
    ]);
    const proxied = decisions.filter((d) => d.via.startsWith("curl") || d.via.startsWith("wget"));
    for (const d of proxied) assert.match(d.reason, /price \d\.\d+ USD\/GiB, rtt/, d.via);
    const reason = (step: string) =>
      decisions.find((d) => d.step === step && d.via === "dig")!.reason;
    assert.match(reason("latency"), /^r1: lowest measured RTT/);
    assert.match(reason("price"), /^r3: cheapest \(0\.01 USD\/GiB from gamma/);
    assert.match(reason("balanced"), /^r2: cheapest within 60 ms of the fastest \(0\.05 USD/);
    assert.match(reason("balanced, alpha cheaper"), /^r1: cheapest within 60 ms .*0\.001 USD/);
    assert.match(reason("balanced, r2 killed"), /not live \(never answered\): r2/);
  },
});
