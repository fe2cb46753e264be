/**
 * One membership: replicas that only announce to the same DNS server (no `--join`, no
 * `--servers`) learn each other from it, list each other on `/_cdn/servers` and replicate
 * uploads to each other.
 */
import { equal } from "node:assert/strict";
import { startDns } from "../lib/fleet/_testing.ts";
import {
  get,
  runUpload,
  startNode,
  tfetch,
  TOKEN,
  waitUntil,
  withNodes,
} from "./_upload_cluster.ts";

const CONVERGE_MS = 20_000;

Deno.test({
  name: "replication: replicas announced to one DNS server replicate to each other",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dns = await startDns(["-n", "cdn.test", "--admin-token", TOKEN]);
    await withNodes(async (dir, nodes) => {
      for (const id of ["a", "b"]) {
        nodes.push(
          await startNode(id, `${dir}/${id}`, ["--announce", `127.0.0.1:${dns.control}`]),
        );
      }
      const [a, b] = nodes;
      await waitUntil(
        async () => {
          for (const n of nodes) {
            const list = await (await tfetch(`${n.url}/_cdn/servers`)).json() as {
              id: string;
              alive: boolean;
            }[];
            if (list.filter((s) => s.alive).length !== 2) return false;
          }
          return true;
        },
        CONVERGE_MS,
        "a and b to list each other as alive",
      );
      await Deno.writeTextFile(`${dir}/f.txt`, "through the DNS server's list");
      const r = await runUpload([`${dir}/f.txt`, "--to", a.url, "--token", TOKEN]);
      equal(r.code, 0, r.err);
      await waitUntil(
        async () => (await get(`${b.url}/f.txt`)).status === 200,
        CONVERGE_MS,
        "b to serve f.txt",
      );
    });
    await dns.stop("SIGTERM");
  },
});
