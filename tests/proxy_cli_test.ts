/**
 * `main_proxy.ts` start-up as users run it: `--help`, bad flags, no node answering, no CDN
 * name, a port in use: one line naming the cause and the documented exit code.
 */
import { equal, match } from "node:assert/strict";
import { startReplica } from "./_http_replica.ts";
import { runProxyCli } from "./_proxy_procs.ts";

const dec = new TextDecoder();
const out = (r: { stdout: Uint8Array; stderr: string }) => dec.decode(r.stdout) + r.stderr;

/** A loopback port nobody listens on. */
function deadPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("proxy CLI: help, bad flags, no node, no name, port in use", async () => {
  const help = await runProxyCli(["--help"]);
  equal(help.code, 0);
  match(out(help), /Usage: deno task proxy -p PORT --mode latency\|price\|balanced --node URL/);
  match(out(help), /--max-extra-ms MS/);

  const bad = await runProxyCli(["--node", "http://127.0.0.1:1", "--mode", "cheap"]);
  equal(bad.code, 2);
  match(
    out(bad),
    /proxy: --mode must be one of latency, price or balanced: received cheap \(run with --help/,
  );

  const noPrice = await runProxyCli(["--node", "http://127.0.0.1:1", "--mode", "balanced"]);
  equal(noPrice.code, 2);
  match(out(noPrice), /--mode balanced needs --price URL/);

  const noNode = await runProxyCli([
    "--node",
    `http://127.0.0.1:${deadPort()}`,
    "--name",
    "cdn.test",
  ]);
  equal(noNode.code, 2);
  match(out(noNode), /proxy: cannot get the server list: no node answered the server list/);

  const replica = await startReplica(["-o", "http://127.0.0.1:9", "--id", "solo"]);
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const noName = await runProxyCli(["-p", "0", "--node", replica.url]);
    equal(noName.code, 2);
    match(
      out(noName),
      /--name is required: the node at http:\/\/127\.0\.0\.1:\d+ reports no CDN name .*pass --name CDN_HOST/,
    );
    const inUse = await runProxyCli([
      "-p",
      String((busy.addr as Deno.NetAddr).port),
      "--host",
      "127.0.0.1",
      "--node",
      replica.url,
      "--name",
      "cdn.test",
    ]);
    equal(inUse.code, 4);
    match(out(inUse), /cannot listen on --host 127\.0\.0\.1 --port \d+: address already in use/);
  } finally {
    busy.close();
    await replica.close();
  }
});
