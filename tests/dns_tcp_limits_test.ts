/**
 * The DNS server's TCP listener under `ulimit -n 256` with a configured connection cap far above
 * it: the cap is lowered to its share of the descriptors (at EMFILE Deno 2.9.6 can panic, which
 * ended the process before), 400 idle connections leave it up and not spinning, and it answers
 * TCP queries again once they are gone.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { shareConnections } from "../lib/dns/flags.ts";
import { closeAll, openIdle, sleep, spawnLimited, waitOutput } from "./_limits.ts";

/** CPU seconds (user + system) a process has used so far (Linux). */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
}

async function tcpQueryOk(port: number): Promise<boolean> {
  const cmd = new Deno.Command("dig", {
    args: ["+tcp", "+tries=1", "+time=3", "@127.0.0.1", "-p", String(port), "cdn.test", "SOA"],
    stdout: "piped",
    stderr: "null",
  });
  const out = new TextDecoder().decode((await cmd.output()).stdout);
  return /status: NOERROR/.test(out);
}

Deno.test({
  name:
    "dns tcp: a cap above the open-file limit is lowered; 400 idle connections under ulimit -n 256",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const config = `${dir}/dns.json`;
    await Deno.writeTextFile(config, JSON.stringify({ tcp: { maxConnections: 5000 } }));
    const d = spawnLimited(256, ["main_dns.ts", "-p", "0", "-n", "cdn.test", "--config", config]);
    let conns: Deno.TcpConn[] = [];
    try {
      const m = await waitOutput(d, /port (\d+) \(udp\+tcp/);
      const port = Number(m[1]);
      ok(/tcp\.maxConnections 5000 lowered to 96/.test(d.output()), d.output());
      conns = await openIdle(port, 400); // more than the 256 descriptors the process may hold
      await sleep(300);
      equal(d.exited(), null, `the DNS server exited:\n${d.output()}`);
      const before = cpuSeconds(d.pid);
      await sleep(2_000);
      const used = cpuSeconds(d.pid) - before;
      equal(d.exited(), null, `the DNS server exited:\n${d.output()}`);
      // A spinning accept loop burns a whole core (about 2 s here); backing off uses almost none.
      ok(used < 0.5, `the DNS server used ${used} s of CPU in 2 s with 400 connections held open`);
      closeAll(conns);
      conns = [];
      let answered = false;
      for (let i = 0; i < 20 && !answered; i++) {
        answered = await tcpQueryOk(port);
        if (!answered) await sleep(250);
      }
      ok(answered, `no TCP answer after the descriptors were freed:\n${d.output()}`);
    } finally {
      closeAll(conns);
      await d.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("dns tcp: the TCP and control caps share the descriptor budget", () => {
  // ulimit -n 1024: 768 descriptors for connections; the defaults fit as they are.
  deepEqual(shareConnections(256, undefined, 768), { tcp: 256, control: 512, note: null });
  const high = shareConnections(5000, undefined, 768);
  equal(high.tcp, 384);
  equal(high.control, 384);
  ok(high.note?.includes("lowered to 384"));
  // An explicit --max-conns is kept; ulimit -n 256: 192 descriptors.
  equal(shareConnections(256, 1000, 768).control, 1000);
  deepEqual(
    [shareConnections(5000, undefined, 192).tcp, shareConnections(5000, undefined, 192).control],
    [96, 96],
  );
});
