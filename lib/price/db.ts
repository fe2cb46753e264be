/**
 * The pricing service's store: SQLite (`node:sqlite`, WAL, `synchronous = FULL`) in
 * `DIR/price.sqlite`, or in memory. Prepared statements; each mutation is one transaction that
 * writes the record and bumps the global version together, so a crash never leaves one without
 * the other. The records are also held in memory (reads never touch SQLite).
 *
 * - **Global version**: an integer, bumped by every mutation, kept in the `meta` table so it
 *   survives a restart. A new database starts it at the current Unix time in milliseconds, so a
 *   restarted in-memory service does not reuse a version its subscribers still hold.
 * - **Per-record version**: the global version of the record's last change (its ETag).
 * - **Tombstones**: a provider deleted through the API is remembered (`deleted` table), so a
 *   `--config` that still lists it does not bring it back at the next start ({@link seed}).
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { ProviderFields, ProviderPrice } from "./record.ts";

/** A stored record: its fields, name, version (number) and time of change. */
export interface StoredProvider {
  name: string;
  fields: ProviderFields;
  version: number;
  updated: string;
}

/** A record as the API and the snapshot show it. */
export function toPrice(s: StoredProvider): ProviderPrice {
  return { name: s.name, ...s.fields, version: String(s.version), updated: s.updated };
}

/** See the module doc. */
export class PriceDb {
  readonly #db: DatabaseSync;
  readonly #upsert: StatementSync;
  readonly #delete: StatementSync;
  readonly #setVersion: StatementSync;
  readonly #tomb: StatementSync;
  readonly #untomb: StatementSync;
  readonly #isTomb: StatementSync;
  readonly #records = new Map<string, StoredProvider>();
  #version: number;

  /** Opens `DIR/price.sqlite`, or an in-memory database for `:memory:`. */
  constructor(dir: string, now: () => number = Date.now) {
    this.#db = new DatabaseSync(dir === ":memory:" ? ":memory:" : `${dir}/price.sqlite`);
    this.#db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
      CREATE TABLE IF NOT EXISTS providers (
        name TEXT PRIMARY KEY NOT NULL, fields TEXT NOT NULL, version INTEGER NOT NULL,
        updated TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS deleted (name TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);`);
    this.#db.prepare("INSERT OR IGNORE INTO meta (name, value) VALUES ('version', ?)").run(now());
    this.#version = Number(
      (this.#db.prepare("SELECT value FROM meta WHERE name = 'version'").get() as { value: number })
        .value,
    );
    for (const r of this.#db.prepare("SELECT * FROM providers ORDER BY name").all()) {
      const row = r as { name: string; fields: string; version: number; updated: string };
      this.#records.set(row.name, {
        name: row.name,
        fields: JSON.parse(row.fields),
        version: Number(row.version),
        updated: row.updated,
      });
    }
    this.#upsert = this.#db.prepare(
      `INSERT INTO providers (name, fields, version, updated) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET fields = excluded.fields, version = excluded.version,
         updated = excluded.updated`,
    );
    this.#delete = this.#db.prepare("DELETE FROM providers WHERE name = ?");
    this.#setVersion = this.#db.prepare("UPDATE meta SET value = ? WHERE name = 'version'");
    this.#tomb = this.#db.prepare(
      "INSERT OR REPLACE INTO deleted (name, version) VALUES (?, ?)",
    );
    this.#untomb = this.#db.prepare("DELETE FROM deleted WHERE name = ?");
    this.#isTomb = this.#db.prepare("SELECT 1 AS x FROM deleted WHERE name = ?");
  }

  /** The global version. */
  get version(): number {
    return this.#version;
  }

  /** Number of providers. */
  get size(): number {
    return this.#records.size;
  }

  /** One provider, or undefined. */
  get(name: string): StoredProvider | undefined {
    return this.#records.get(name);
  }

  /** Every provider, by name. */
  all(): StoredProvider[] {
    return [...this.#records.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Runs `fn` in one transaction with the next global version; commits it with `fn`'s writes. */
  #mutate<T>(fn: (version: number) => T): T {
    const version = this.#version + 1;
    this.#db.exec("BEGIN IMMEDIATE");
    let out: T;
    try {
      out = fn(version);
      this.#setVersion.run(version);
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
    this.#version = version;
    return out;
  }

  /** Creates or replaces `name`'s record; answers the stored record and whether it is new. */
  put(name: string, fields: ProviderFields): { record: StoredProvider; created: boolean } {
    const created = !this.#records.has(name);
    const record = this.#mutate((version) => {
      const updated = new Date().toISOString();
      this.#upsert.run(name, JSON.stringify(fields), version, updated);
      this.#untomb.run(name);
      return { name, fields, version, updated };
    });
    this.#records.set(name, record);
    return { record, created };
  }

  /** Deletes `name` (and remembers it as deleted); false when absent. */
  delete(name: string): boolean {
    if (!this.#records.has(name)) return false;
    this.#mutate((version) => {
      this.#delete.run(name);
      this.#tomb.run(name, version);
    });
    this.#records.delete(name);
    return true;
  }

  /**
   * Adds each `--config` provider the database has never seen (no record, not deleted through
   * the API), all in one transaction; answers the names added.
   */
  seed(providers: Record<string, ProviderFields>): string[] {
    const fresh = Object.keys(providers).filter((n) =>
      !this.#records.has(n) && this.#isTomb.get(n) === undefined
    );
    if (fresh.length === 0) return [];
    const records = this.#mutate((version) => {
      const updated = new Date().toISOString();
      return fresh.map((name) => {
        this.#upsert.run(name, JSON.stringify(providers[name]), version, updated);
        return { name, fields: providers[name], version, updated };
      });
    });
    for (const r of records) this.#records.set(r.name, r);
    return fresh;
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
