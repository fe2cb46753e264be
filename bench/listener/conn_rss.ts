/**
 * Memory per open connection of the replica's listener: starts `main_http.ts` (origin unused),
 * opens N connections that each send a partial request head, and prints the replica's RSS
 * before and after.
 *
 * Usage: deno run -A bench/listener/conn_rss.ts [N] (default 700; the replica runs under
 * `prlimit --nofile=1024:1024`, so N above its cap of 768 measures the cap, not N).
 *
 * @module
 */
import { closeAll, limitedReplica, openIdle, rssBytes, sleep } from "../../tests/_limits.ts";

const n = Number(Deno.args[0] ?? "700");
if (!Number.isInteger(n) || n < 1) {
  console.error(`conn_rss: N must be a positive integer: received ${Deno.args[0]}`);
  Deno.exit(2);
}
const { p, port } = await limitedReplica(["-o", "127.0.0.1:9"]);
try {
  await sleep(1000);
  const before = rssBytes(p.pid);
  const conns = await openIdle(port, n, "GET / HTTP/1.1\r\nHost: x\r\n");
  await sleep(1000);
  const after = rssBytes(p.pid);
  const mib = (b: number) => (b / 1048576).toFixed(1);
  console.log(
    `replica RSS ${mib(before)} MiB idle, ${mib(after)} MiB with ${conns.length} open ` +
      `partial-head connections: ${((after - before) / conns.length / 1024).toFixed(1)} KiB each`,
  );
  closeAll(conns);
} finally {
  await p.stop();
}
