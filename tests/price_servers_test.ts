/**
 * Every node's server list (`GET /_cdn/servers`) shows each server's id, URL and provider (a
 * replica's `--provider`), learned through admission and heartbeats: what the routing proxy
 * and price steering read to price each server.
 */
import { equal } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { ReplicationDb } from "../lib/replication/db.ts";
import { PROTOBUF_TYPE } from "../lib/wire/encoding.ts";
import { decodeMessage } from "../lib/wire/messages.ts";
import {
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";

interface View {
  id: string;
  url: string;
  provider: string;
  alive: boolean;
}

async function view(node: TestNode): Promise<View[]> {
  return await (await tfetch(`${node.url}/_cdn/servers`)).json();
}

/** An `--announce` target where no DNS server listens (node a registers nowhere). */
function deadAnnounce(): string {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return `127.0.0.1:${port}`;
}

for (const wire of ["json", "protobuf"]) {
  Deno.test(`server list: every node shows each server's id, URL and provider (--wire ${wire})`, async () => {
    await withTempDir(async (dir) => {
      const nodes: TestNode[] = [];
      const announce = deadAnnounce();
      const w = ["--wire", wire];
      try {
        const a = await startNode("a", `${dir}/a`, [
          ...w,
          "--announce",
          announce,
          "--provider",
          "aws",
        ]);
        nodes.push(a);
        const startB = (provider: string) =>
          startNode("b", `${dir}/b`, [
            ...w,
            "--join",
            a.url,
            "--provider", // without --announce: a node of an uploads-only fleet
            provider,
          ]);
        const b = await startB("gcp");
        nodes.push(b);
        const c = await startNode("c", `${dir}/c`, [...w, "--join", a.url]);
        nodes.push(c);
        const want: Record<string, [string, string]> = {
          a: [a.url, "aws"],
          b: [b.url, "gcp"],
          c: [c.url, ""],
        };
        const complete = async (n: TestNode) => {
          const v = await view(n);
          return Object.entries(want).every(([id, [url, provider]]) =>
            v.some((s) => s.id === id && s.url === url && s.provider === provider && s.alive)
          );
        };
        await waitUntil(
          async () => await complete(a) && await complete(b) && await complete(c),
          20_000,
          "every node to list a (aws), b (gcp) and c (no provider)",
        );
        for (const n of nodes) equal((await view(n)).length, 3);

        // b comes back on another provider: the others learn it from heartbeats alone.
        await b.proc.close();
        const b2 = await startB("azure");
        nodes[1] = b2;
        want.b = [b2.url, "azure"];
        await waitUntil(
          async () => await complete(a) && await complete(c),
          20_000,
          "a and c to list b on azure",
        );
        // The list in Protobuf carries the provider too.
        const res = await tfetch(`${a.url}/_cdn/servers`, { headers: { accept: PROTOBUF_TYPE } });
        equal(res.headers.get("content-type"), PROTOBUF_TYPE);
        const pb = await decodeMessage(
          "servers",
          new Uint8Array(await res.arrayBuffer()),
          "protobuf",
        );
        equal((pb as View[]).find((s) => s.id === "b")?.provider, "azure");
      } finally {
        await stopAll(nodes);
      }
    });
  });
}

Deno.test("server list: a replication database of schema 2 gains the provider column", async () => {
  await withTempDir((dir) => {
    const old = new DatabaseSync(`${dir}/replication.sqlite`);
    old.exec(`CREATE TABLE kv (k TEXT PRIMARY KEY NOT NULL, v TEXT NOT NULL);
      CREATE TABLE tombstones (name TEXT PRIMARY KEY NOT NULL, ts INTEGER NOT NULL,
        node TEXT NOT NULL);
      CREATE TABLE servers (id TEXT PRIMARY KEY NOT NULL, url TEXT NOT NULL,
        ts INTEGER NOT NULL, node TEXT NOT NULL, removed INTEGER NOT NULL,
        key TEXT NOT NULL DEFAULT '');
      INSERT INTO servers VALUES ('a', 'http://127.0.0.1:1', 5, 'a', 0, '');
      PRAGMA user_version = 2;`);
    old.close();
    const db = new ReplicationDb(dir);
    try {
      equal(db.servers()[0].provider, "");
      db.putServer({ ...db.servers()[0], provider: "aws" });
      equal(db.servers()[0].provider, "aws");
    } finally {
      db.close();
    }
    const check = new DatabaseSync(`${dir}/replication.sqlite`);
    equal((check.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, 3);
    check.close();
  });
});
