/**
 * Child process of `tls_pin_test.ts`, run with a second CA injected as a public root
 * (`DENO_CERT` for Deno's TLS, `NODE_EXTRA_CA_CERTS` for `node:tls`). It serves HTTPS with
 * FLEET_DIR/good.pem (signed by the fleet CA) and OTHER_DIR/evil.pem (signed by the second CA),
 * both for 127.0.0.1, then calls each with every client a node or the proxy uses, trusting the
 * fleet CA, and prints one JSON object: for each client and server, "ok" or the error.
 *
 * Usage: deno run -A tests/_tls_pin_child.ts FLEET_DIR OTHER_DIR
 */
import { describeFetchError, peerFetch, trustCa } from "../lib/tls/client.ts";
import { UpstreamPool } from "../lib/proxy/upstream.ts";

const [fleetDir, otherDir] = Deno.args;
const ca = Deno.readTextFileSync(`${fleetDir}/ca.pem`);
const serve = (dir: string, name: string) =>
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(`${dir}/${name}.pem`),
    key: Deno.readTextFileSync(`${dir}/${name}-key.pem`),
    onListen() {},
  }, () => new Response("ok"));
const servers = { good: serve(fleetDir, "good"), evil: serve(otherDir, "evil") };

trustCa(ca);
const denoClient = Deno.createHttpClient({ caCerts: [ca] });
const pool = new UpstreamPool({ caPem: ca });
const clients: Record<string, (port: number) => Promise<string>> = {
  // What the code used before --ca was pinned: Deno's fetch with caCerts.
  denoFetchCaCerts: async (port) =>
    await (await fetch(`https://127.0.0.1:${port}/`, { client: denoClient })).text(),
  peerFetch: async (port) => await (await peerFetch(`https://127.0.0.1:${port}/`)).text(),
  proxyUpstream: async (port) => {
    const res = await pool.request("127.0.0.1", port, {
      method: "GET",
      target: "/",
      headers: [["host", `127.0.0.1:${port}`]],
      body: null,
      bodyLength: null,
    });
    const b = res.body;
    return b instanceof Uint8Array ? new TextDecoder().decode(b) : String(b);
  },
};
const out: Record<string, string> = {};
for (const [cname, call] of Object.entries(clients)) {
  for (const [sname, s] of Object.entries(servers)) {
    try {
      out[`${cname} ${sname}`] = await call(s.addr.port);
    } catch (e) {
      out[`${cname} ${sname}`] = `refused: ${describeFetchError(e)}`;
    }
  }
}
console.log(JSON.stringify(out));
pool.close();
for (const s of Object.values(servers)) await s.shutdown();
Deno.exit(0);
