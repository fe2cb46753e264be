/**
 * The replication state a node keeps beside its object store (`DIR/replication.sqlite`,
 * `node:sqlite`, WAL, `synchronous = FULL`): its node id, delete tombstones and the server
 * list. Uploaded objects themselves (and their versions) live in the object store.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import type { Version } from "./version.ts";

/** Schema version kept in `PRAGMA user_version`. */
export const REPLICATION_SCHEMA_VERSION = 3;

/**
 * One entry of the server list. `removed` entries are tombstones (they win by version); a
 * removed entry also revokes its `key` for good.
 */
export interface ServerEntry {
  id: string;
  url: string;
  version: Version;
  removed: boolean;
  /** The node's Ed25519 public key (base64 SPKI); empty until it has been admitted. */
  key: string;
  /** The node's cloud provider (`--provider`, for pricing); empty or absent when unknown. */
  provider?: string;
}

/** The durable replication state. */
export class ReplicationDb {
  #db: DatabaseSync;

  constructor(dir: string) {
    this.#db = new DatabaseSync(`${dir}/replication.sqlite`);
    try {
      this.#db.exec("PRAGMA journal_mode = WAL");
      this.#db.exec("PRAGMA synchronous = FULL");
      this.#db.exec("PRAGMA busy_timeout = 5000");
      const { user_version: v } = this.#db.prepare("PRAGMA user_version").get() as {
        user_version: number;
      };
      if (v > REPLICATION_SCHEMA_VERSION) {
        throw new Error(
          `Cannot open ${dir}/replication.sqlite: schema version ${v} is newer than ${REPLICATION_SCHEMA_VERSION}`,
        );
      }
      if (v === 1 || v === 2) {
        this.#db.exec(`BEGIN IMMEDIATE;
          ${v === 1 ? "ALTER TABLE servers ADD COLUMN key TEXT NOT NULL DEFAULT '';" : ""}
          ALTER TABLE servers ADD COLUMN provider TEXT NOT NULL DEFAULT '';
          PRAGMA user_version = ${REPLICATION_SCHEMA_VERSION};
          COMMIT;`);
      } else if (v < REPLICATION_SCHEMA_VERSION) {
        this.#db.exec(`BEGIN IMMEDIATE;
          CREATE TABLE kv (k TEXT PRIMARY KEY NOT NULL, v TEXT NOT NULL);
          CREATE TABLE tombstones (name TEXT PRIMARY KEY NOT NULL, ts INTEGER NOT NULL,
            node TEXT NOT NULL);
          CREATE TABLE servers (id TEXT PRIMARY KEY NOT NULL, url TEXT NOT NULL,
            ts INTEGER NOT NULL, node TEXT NOT NULL, removed INTEGER NOT NULL,
            key TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '');
          PRAGMA user_version = ${REPLICATION_SCHEMA_VERSION};
          COMMIT;`);
      }
    } catch (e) {
      this.#db.close();
      throw e;
    }
  }

  /** The stored node id, storing `fallback()` the first time. */
  nodeId(fallback: () => string): string {
    const row = this.#db.prepare("SELECT v FROM kv WHERE k = 'node_id'").get() as
      | { v: string }
      | undefined;
    if (row !== undefined) return row.v;
    const id = fallback();
    this.#db.prepare("INSERT INTO kv (k, v) VALUES ('node_id', ?)").run(id);
    return id;
  }

  tombstones(): { name: string; version: Version }[] {
    const rows = this.#db.prepare("SELECT name, ts, node FROM tombstones").all() as unknown as {
      name: string;
      ts: number;
      node: string;
    }[];
    return rows.map((r) => ({ name: r.name, version: { ts: r.ts, node: r.node } }));
  }

  putTombstone(name: string, v: Version): void {
    this.#db.prepare(
      `INSERT INTO tombstones (name, ts, node) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET ts = excluded.ts, node = excluded.node`,
    ).run(name, v.ts, v.node);
  }

  deleteTombstone(name: string): void {
    this.#db.prepare("DELETE FROM tombstones WHERE name = ?").run(name);
  }

  servers(): ServerEntry[] {
    const rows = this.#db.prepare("SELECT id, url, ts, node, removed, key, provider FROM servers")
      .all() as unknown as {
        id: string;
        url: string;
        ts: number;
        node: string;
        removed: number;
        key: string;
        provider: string;
      }[];
    return rows.map((r) => ({
      id: r.id,
      url: r.url,
      version: { ts: r.ts, node: r.node },
      removed: r.removed === 1,
      key: r.key,
      provider: r.provider,
    }));
  }

  putServer(s: ServerEntry): void {
    this.#db.prepare(
      `INSERT INTO servers (id, url, ts, node, removed, key, provider) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET url = excluded.url, ts = excluded.ts, node = excluded.node,
         removed = excluded.removed, key = excluded.key, provider = excluded.provider`,
    ).run(s.id, s.url, s.version.ts, s.version.node, s.removed ? 1 : 0, s.key, s.provider ?? "");
  }

  /** The value stored under `k` in the key-value table, or null. */
  getKv(k: string): string | null {
    const row = this.#db.prepare("SELECT v FROM kv WHERE k = ?").get(k) as
      | { v: string }
      | undefined;
    return row?.v ?? null;
  }

  /** Stores `v` under `k` (null deletes it). */
  putKv(k: string, v: string | null): void {
    if (v === null) this.#db.prepare("DELETE FROM kv WHERE k = ?").run(k);
    else {
      this.#db.prepare(
        "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
      ).run(k, v);
    }
  }

  close(): void {
    this.#db.close();
  }
}
