/**
 * The store's SQLite side: the `objects` table, its schema version in `PRAGMA user_version`,
 * and the prepared statements the store runs.
 *
 * @module
 */

import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { StoreEntry } from "./types.ts";

/** Schema version kept in `PRAGMA user_version`; a newer database is refused, not guessed at. */
export const SCHEMA_VERSION = 1;
/** Rows fetched per page by `entries()`, so iterating a large store holds little in memory. */
export const ENTRIES_PAGE = 512;

/**
 * Creates the schema in a new database; leaves a current one as is.
 *
 * @throws {Error} when the database was written by a newer schema version.
 */
export function migrate(db: DatabaseSync, dbPath: string): void {
  const { user_version: version } = db.prepare("PRAGMA user_version").get() as {
    user_version: number;
  };
  if (version > SCHEMA_VERSION) {
    throw new Error(
      `Cannot open store "${dbPath}": schema version ${version} is newer than ${SCHEMA_VERSION}`,
    );
  }
  if (version === SCHEMA_VERSION) return;
  db.exec(`BEGIN IMMEDIATE;
      CREATE TABLE objects (
        key TEXT PRIMARY KEY NOT NULL,
        meta TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        sha256 TEXT NOT NULL,
        pinned INTEGER NOT NULL,
        stored_at INTEGER NOT NULL,
        in_file INTEGER NOT NULL,
        body BLOB
      );
      CREATE INDEX objects_file_sha ON objects (sha256) WHERE in_file = 1;
      PRAGMA user_version = ${SCHEMA_VERSION};
      COMMIT;`);
}

/** One row of `objects` without its body. */
export interface Row {
  key: string;
  meta: string;
  size: number;
  sha256: string;
  pinned: number;
  stored_at: number;
  in_file: number;
}

/** The prepared statements of a store. */
export interface Statements {
  get: StatementSync;
  getBody: StatementSync;
  upsert: StatementSync;
  del: StatementSync;
  updateMeta: StatementSync;
  fileRef: StatementSync;
  delBySha: StatementSync;
  page: StatementSync;
}

/** The public description of a row. */
export function toEntry(r: Row): StoreEntry {
  return {
    key: r.key,
    meta: r.meta,
    size: r.size,
    sha256: r.sha256,
    pinned: r.pinned === 1,
    storedAt: r.stored_at,
  };
}

/** Prepares the store's statements (after {@linkcode migrate}). */
export function prepareStatements(db: DatabaseSync): Statements {
  return {
    get: db.prepare(
      "SELECT key, meta, size, sha256, pinned, stored_at, in_file FROM objects WHERE key = ?",
    ),
    getBody: db.prepare("SELECT body FROM objects WHERE key = ?"),
    upsert: db.prepare(
      `INSERT INTO objects (key, meta, size, sha256, pinned, stored_at, in_file, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET meta = excluded.meta, size = excluded.size,
         sha256 = excluded.sha256, pinned = excluded.pinned, stored_at = excluded.stored_at,
         in_file = excluded.in_file, body = excluded.body`,
    ),
    del: db.prepare("DELETE FROM objects WHERE key = ?"),
    updateMeta: db.prepare("UPDATE objects SET meta = ? WHERE key = ?"),
    fileRef: db.prepare(
      "SELECT 1 AS one FROM objects WHERE in_file = 1 AND sha256 = ? LIMIT 1",
    ),
    delBySha: db.prepare("DELETE FROM objects WHERE in_file = 1 AND sha256 = ?"),
    page: db.prepare(
      `SELECT rowid AS id, key, meta, size, sha256, pinned, stored_at, in_file FROM objects
       WHERE rowid > ? ORDER BY rowid LIMIT ${ENTRIES_PAGE}`,
    ),
  };
}
