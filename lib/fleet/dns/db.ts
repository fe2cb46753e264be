/**
 * The DNS server's replica registry in SQLite (WAL, prepared statements, plain SQL), so a
 * restarted server knows its fleet at once. One row per replica; the held-paths list is a
 * JSON column (read once at start, written when a replica reports a change).
 *
 * Credentials live in their own tables, so they outlive a replica's row (a replica that
 * deregisters at shutdown comes back by its key): `credentials` (the admitted Ed25519 public
 * key of each replica id), `revoked` (keys refused for good) and `meta` (the DNS server's own
 * key pair, which signs its answers to registrations).
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { StoredKey } from "../../replication/trust.ts";

/** Bumped when the table changes shape; an older file is migrated by recreating the table. */
export const FLEET_SCHEMA_VERSION = 2;

/** A stored replica. */
export interface FleetRow {
  id: string;
  /** `static` (from the config) or `registered`. */
  source: string;
  address: string;
  port: number;
  /** The replica's port speaks HTTPS (true), plain HTTP (false), or it did not say (null). */
  tls: boolean | null;
  lat: number | null;
  lon: number | null;
  provider: string;
  token: string;
  registeredAt: number;
  lastHeartbeat: number | null;
  state: string;
  held: string[];
}

/** See the module doc. */
export class FleetDb {
  readonly #db: DatabaseSync;
  readonly #upsert: StatementSync;
  readonly #state: StatementSync;
  readonly #held: StatementSync;
  readonly #delete: StatementSync;

  /** Opens `DIR/fleet.sqlite`, or an in-memory database for `:memory:`. */
  constructor(dir: string) {
    const path = dir === ":memory:" ? ":memory:" : `${dir}/fleet.sqlite`;
    this.#db = new DatabaseSync(path);
    this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    const v = (this.#db.prepare("PRAGMA user_version").get() as { user_version: number })
      .user_version;
    if (v !== FLEET_SCHEMA_VERSION) {
      this.#db.exec(`DROP TABLE IF EXISTS replicas;
        CREATE TABLE replicas (
          id TEXT PRIMARY KEY NOT NULL, source TEXT NOT NULL, address TEXT NOT NULL,
          port INTEGER NOT NULL, tls INTEGER, lat REAL, lon REAL, provider TEXT NOT NULL, token TEXT NOT NULL,
          registered_at INTEGER NOT NULL, last_heartbeat INTEGER, state TEXT NOT NULL,
          held TEXT NOT NULL DEFAULT '[]');
        PRAGMA user_version = ${FLEET_SCHEMA_VERSION};`);
    }
    this.#db.exec(`CREATE TABLE IF NOT EXISTS credentials (
        id TEXT PRIMARY KEY NOT NULL, public_key TEXT NOT NULL, admitted_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS revoked (
        public_key TEXT PRIMARY KEY NOT NULL, id TEXT NOT NULL, revoked_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);`);
    this.#upsert = this.#db.prepare(
      `INSERT INTO replicas (id, source, address, port, tls, lat, lon, provider, token,
         registered_at, last_heartbeat, state, held) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET source = excluded.source, address = excluded.address,
         port = excluded.port, tls = excluded.tls, lat = excluded.lat, lon = excluded.lon,
         provider = excluded.provider, token = excluded.token,
         registered_at = excluded.registered_at, last_heartbeat = excluded.last_heartbeat,
         state = excluded.state, held = excluded.held`,
    );
    this.#state = this.#db.prepare(
      "UPDATE replicas SET state = ?, last_heartbeat = ? WHERE id = ?",
    );
    this.#held = this.#db.prepare("UPDATE replicas SET held = ? WHERE id = ?");
    this.#delete = this.#db.prepare("DELETE FROM replicas WHERE id = ?");
  }

  /** Every stored replica. */
  all(): FleetRow[] {
    const rows = this.#db.prepare(
      `SELECT id, source, address, port, tls, lat, lon, provider, token, registered_at,
         last_heartbeat, state, held FROM replicas ORDER BY registered_at, id`,
    ).all() as Record<string, unknown>[];
    return rows.map((r) => ({
      id: r.id as string,
      source: r.source as string,
      address: r.address as string,
      port: Number(r.port),
      tls: r.tls === null ? null : Number(r.tls) === 1,
      lat: r.lat === null ? null : Number(r.lat),
      lon: r.lon === null ? null : Number(r.lon),
      provider: r.provider as string,
      token: r.token as string,
      registeredAt: Number(r.registered_at),
      lastHeartbeat: r.last_heartbeat === null ? null : Number(r.last_heartbeat),
      state: r.state as string,
      held: JSON.parse(r.held as string) as string[],
    }));
  }

  put(r: FleetRow): void {
    this.#upsert.run(
      r.id,
      r.source,
      r.address,
      r.port,
      r.tls === null ? null : r.tls ? 1 : 0,
      r.lat,
      r.lon,
      r.provider,
      r.token,
      r.registeredAt,
      r.lastHeartbeat,
      r.state,
      JSON.stringify(r.held),
    );
  }

  setState(id: string, state: string, lastHeartbeat: number | null): void {
    this.#state.run(state, lastHeartbeat, id);
  }

  setHeld(id: string, held: string[]): void {
    this.#held.run(JSON.stringify(held), id);
  }

  delete(id: string): void {
    this.#delete.run(id);
  }

  /** The admitted public key of replica `id`, or null. */
  credential(id: string): string | null {
    const r = this.#db.prepare("SELECT public_key FROM credentials WHERE id = ?").get(id) as
      | { public_key: string }
      | undefined;
    return r?.public_key ?? null;
  }

  /** Admits `publicKey` as replica `id`'s credential (replacing an older one). */
  admit(id: string, publicKey: string, at: number): void {
    this.#db.prepare(
      `INSERT INTO credentials (id, public_key, admitted_at) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key,
         admitted_at = excluded.admitted_at`,
    ).run(id, publicKey, at);
  }

  /** Revokes replica `id`'s key for good; returns it, or null when it had none. */
  revoke(id: string, at: number): string | null {
    const key = this.credential(id);
    if (key === null) return null;
    this.#db.exec("BEGIN");
    try {
      this.#db.prepare("DELETE FROM credentials WHERE id = ?").run(id);
      this.#db.prepare(
        "INSERT OR IGNORE INTO revoked (public_key, id, revoked_at) VALUES (?, ?, ?)",
      ).run(key, id, at);
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
    return key;
  }

  /** True when `publicKey` was revoked. */
  isRevoked(publicKey: string): boolean {
    return this.#db.prepare("SELECT 1 AS x FROM revoked WHERE public_key = ?").get(publicKey) !==
      undefined;
  }

  /** The DNS server's key pair: the stored one, else `make()`'s, stored. */
  serverKey(make: () => StoredKey): StoredKey {
    const r = this.#db.prepare("SELECT value FROM meta WHERE name = 'server_key'").get() as
      | { value: string }
      | undefined;
    if (r !== undefined) return JSON.parse(r.value) as StoredKey;
    const k = make();
    this.#db.prepare("INSERT INTO meta (name, value) VALUES ('server_key', ?)").run(
      JSON.stringify(k),
    );
    return k;
  }

  close(): void {
    this.#db.close();
  }
}
