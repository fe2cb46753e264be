/**
 * The durable object store of a replica: `node:sqlite` (WAL) for metadata and small bodies,
 * content-addressed files for large ones.
 *
 * Layout of `DIR`:
 * - `store.sqlite` (+ `-wal`, `-shm`): one table `objects`, schema version in `user_version`;
 * - `objects/ab/abcdef…`: bodies of `fileThreshold` bytes or more, named by their SHA-256, shared
 *   by every key with the same body and removed when no row references them;
 * - `objects/tmp/`: bodies being written. A temporary file is fsynced, renamed into its shard
 *   (same file system, so the rename is atomic), the shard directory is fsynced, and only then
 *   is the row committed. A crash therefore leaves at worst a temporary or unreferenced file,
 *   both removed at the next open.
 *
 * Durability: `synchronous = FULL`. In WAL mode, NORMAL only syncs the WAL at checkpoints, so a
 * power loss could undo a commit whose promise already resolved; the contract says "durable when
 * the promise resolves" and uploads are acknowledged to users on that promise, so every commit
 * syncs the WAL (one fdatasync per put, small next to the fsyncs of a body file).
 *
 * @example
 * ```ts
 * import { openStore } from "./sqlite_store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = openStore(dir);
 * await store.put("/hello", "{}", new TextEncoder().encode("hi"));
 * console.log(new TextDecoder().decode((await store.read("/hello"))!)); // "hi"
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { BlobFiles, sha256Hex } from "./_blobs.ts";
import { putBytes, putStream, type PutTarget } from "./_put.ts";
import { recover, type RecoveryReport } from "./_recover.ts";
import {
  ENTRIES_PAGE,
  migrate,
  prepareStatements,
  type Row,
  type Statements,
  toEntry,
} from "./_schema.ts";
import type { ObjectStore, OpenBody, PutStreamOptions, StoreEntry } from "./types.ts";

export type { RecoveryReport } from "./_recover.ts";
export { SCHEMA_VERSION } from "./_schema.ts";

/** Bodies of this many bytes or more live in files (SQLite reads small blobs faster than files, large ones slower). */
export const DEFAULT_FILE_THRESHOLD = 64 * 1024;
/** Largest accepted `fileThreshold`: bigger blobs would bloat the WAL and every page cache read. */
export const MAX_FILE_THRESHOLD = 16 * 1024 * 1024;
/** Longest key, in UTF-16 code units: a URL plus its Vary part; nginx caps a request line at 8 KiB. */
export const MAX_KEY_LENGTH = 16 * 1024;
/** Longest metadata string: status and headers as JSON; header blocks are capped far below this. */
export const MAX_META_LENGTH = 1024 * 1024;
/** Reads retried when a concurrent replace unlinks the file being read. */
const READ_ATTEMPTS = 3;

const DB_FILE = "store.sqlite";

/** Options of {@linkcode openStore}. */
export interface OpenStoreOptions {
  /** Bodies of at least this many bytes are stored as files. Default 64 KiB. */
  fileThreshold?: number;
  /** Clock for `storedAt`, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** A store opened by {@linkcode openStore}. */
export interface SqliteObjectStore extends ObjectStore {
  /** The directory given to `openStore`. */
  readonly dir: string;
  /** What the last open repaired. */
  readonly recovery: RecoveryReport;
}

/**
 * Opens (creating if needed) the store in `dir`, repairing what a crash left: temporary files
 * and unreferenced body files are removed, rows whose file is missing or has the wrong size are
 * dropped.
 *
 * @throws {RangeError} for a bad `fileThreshold`.
 * @throws {Error} when the database was written by a newer schema version.
 */
export function openStore(dir: string, options: OpenStoreOptions = {}): SqliteObjectStore {
  if (typeof dir !== "string" || dir === "") {
    throw new TypeError(`Cannot open store: dir must be a non-empty string: received ${dir}`);
  }
  const threshold = options.fileThreshold ?? DEFAULT_FILE_THRESHOLD;
  if (!Number.isSafeInteger(threshold) || threshold < 0 || threshold > MAX_FILE_THRESHOLD) {
    throw new RangeError(
      `Cannot open store "${dir}": fileThreshold must be an integer in 0..${MAX_FILE_THRESHOLD}: received ${threshold}`,
    );
  }
  return new Store(dir, threshold, options.now ?? Date.now);
}

class Store implements SqliteObjectStore {
  readonly dir: string;
  readonly recovery: RecoveryReport;
  #now: () => number;
  #db: DatabaseSync;
  #blobs: BlobFiles;
  #closed = false;
  /** Database bodies (by key) whose hash was checked since open. */
  #verifiedKeys = new Set<string>();
  #q: Statements;
  /** What the put functions use of this store. */
  #target: PutTarget;

  constructor(dir: string, threshold: number, now: () => number) {
    this.dir = dir;
    this.#now = now;
    this.#blobs = new BlobFiles(dir);
    this.#target = {
      threshold,
      blobs: this.#blobs,
      closed: () => this.#closed,
      checkOpen: (key) => this.#checkOpen("store", key),
      record: this.#record,
      release: (sha) => this.#releaseFile(sha),
    };
    const dbPath = `${dir}/${DB_FILE}`;
    this.#db = new DatabaseSync(dbPath);
    try {
      this.#db.exec("PRAGMA journal_mode = WAL");
      this.#db.exec("PRAGMA synchronous = FULL");
      this.#db.exec("PRAGMA busy_timeout = 5000");
      migrate(this.#db, dbPath);
      this.#q = prepareStatements(this.#db);
      this.recovery = recover(this.#db, this.#q, this.#blobs);
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  #checkOpen(what: string, key: string): void {
    if (this.#closed) throw new Error(`Cannot ${what} "${key}": store "${this.dir}" is closed`);
  }

  #checkKey(what: string, key: unknown): asserts key is string {
    if (typeof key !== "string" || key === "") {
      throw new TypeError(`Cannot ${what}: key must be a non-empty string: received ${key}`);
    }
    if (key.length > MAX_KEY_LENGTH) {
      throw new RangeError(
        `Cannot ${what} "${
          key.slice(0, 64)
        }…": key is longer than ${MAX_KEY_LENGTH}: received ${key.length}`,
      );
    }
  }

  #checkMeta(what: string, key: string, meta: unknown): asserts meta is string {
    if (typeof meta !== "string") {
      throw new TypeError(
        `Cannot ${what} "${key}": meta must be a string: received ${typeof meta}`,
      );
    }
    if (meta.length > MAX_META_LENGTH) {
      throw new RangeError(
        `Cannot ${what} "${key}": meta is longer than ${MAX_META_LENGTH}: received ${meta.length}`,
      );
    }
  }

  #row(key: string): Row | undefined {
    return this.#q.get.get(key) as unknown as Row | undefined;
  }

  /** Unlinks the file of `sha` when no row references it and no put is recording it. */
  #releaseFile(sha: string): void {
    if (this.#blobs.isHeld(sha) || this.#q.fileRef.get(sha) !== undefined) return;
    this.#blobs.remove(sha);
  }

  /** Commits a row (replacing any previous one) and releases the previous file if unshared. */
  #record: PutTarget["record"] = (key, meta, size, sha, pinned, body) => {
    const storedAt = this.#now();
    const old = this.#row(key);
    if (old !== undefined && old.pinned === 1 && !pinned) {
      // An upload is never replaced by a cache fill, whatever arrives last.
      throw new Error(`Cannot store "${key}": an upload (pinned object) holds the key`);
    }
    this.#q.upsert.run(key, meta, size, sha, pinned ? 1 : 0, storedAt, body ? 0 : 1, body);
    this.#verifiedKeys.delete(key);
    // This process hashed the bytes it wrote: a file body needs no check on its first read.
    if (body === null) this.#blobs.markVerified(sha);
    if (old && old.in_file === 1 && !(body === null && old.sha256 === sha)) {
      this.#releaseFile(old.sha256);
    }
    return { key, meta, size, sha256: sha, pinned, storedAt };
  };

  async put(key: string, meta: string, body: Uint8Array, pinned = false): Promise<StoreEntry> {
    this.#checkKey("store", key);
    this.#checkMeta("store", key, meta);
    this.#checkOpen("store", key);
    return await putBytes(this.#target, key, meta, body, pinned);
  }

  async putStream(
    key: string,
    meta: string,
    body: ReadableStream<Uint8Array>,
    opts: PutStreamOptions = {},
  ): Promise<StoreEntry> {
    this.#checkKey("store", key);
    this.#checkMeta("store", key, meta);
    this.#checkOpen("store", key);
    return await putStream(this.#target, key, meta, body, opts);
  }

  head(key: string): StoreEntry | null {
    this.#checkKey("look up", key);
    this.#checkOpen("look up", key);
    const r = this.#row(key);
    return r ? toEntry(r) : null;
  }

  async read(key: string): Promise<Uint8Array | null> {
    this.#checkKey("read", key);
    this.#checkOpen("read", key);
    // A concurrent replace can unlink the file being read; then the new value is read.
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const r = this.#row(key);
      if (!r) return null;
      const got = await this.#readRow(key, r);
      if (got !== "replaced") return got;
    }
    throw new Error(
      `Cannot read "${key}": replaced ${READ_ATTEMPTS} times while being read in "${this.dir}"`,
    );
  }

  async open(key: string): Promise<OpenBody | null> {
    this.#checkKey("read", key);
    this.#checkOpen("read", key);
    // A concurrent replace can unlink the file before it is opened; then the new value is read.
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const r = this.#row(key);
      if (!r) return null;
      if (r.in_file === 0) {
        const got = await this.#readRow(key, r);
        if (got === "replaced") continue;
        return got === null ? null : { entry: toEntry(r), bytes: got, file: null };
      }
      const path = this.#blobs.pathOf(r.sha256);
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true });
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) {
          throw new Error(`Cannot read "${key}": opening "${path}" failed: ${err}`, { cause: err });
        }
        if (this.#closed) return null;
        if (this.#row(key)?.sha256 !== r.sha256) continue;
        if (!this.#blobs.isHeld(r.sha256)) this.#dropCorrupt(r.sha256);
        return null;
      }
      let good = false;
      try {
        good = (await file.stat()).size === r.size &&
          (this.#blobs.isVerified(r.sha256) || await this.#blobs.verify(r.sha256, path));
      } finally {
        if (!good) file.close();
      }
      if (!good) {
        if (!this.#closed && !this.#blobs.isHeld(r.sha256)) this.#dropCorrupt(r.sha256);
        return null;
      }
      return { entry: toEntry(r), bytes: null, file };
    }
    throw new Error(
      `Cannot read "${key}": replaced ${READ_ATTEMPTS} times while being opened in "${this.dir}"`,
    );
  }

  async #readRow(key: string, r: Row): Promise<Uint8Array | null | "replaced"> {
    const stillSame = () => !this.#closed && this.#row(key)?.sha256 === r.sha256;
    if (r.in_file === 0) {
      const { body } = this.#q.getBody.get(key) as { body: Uint8Array | null };
      const bytes = body ?? new Uint8Array(0);
      if (
        bytes.length !== r.size ||
        !this.#verifiedKeys.has(key) && (await sha256Hex(bytes)) !== r.sha256
      ) {
        // The row may have been replaced while hashing; only drop what was checked.
        if (!stillSame()) return this.#closed ? null : "replaced";
        this.#q.del.run(key);
        return null;
      }
      this.#verifiedKeys.add(key);
      return bytes;
    }
    const path = this.#blobs.pathOf(r.sha256);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new Error(`Cannot read "${key}": reading "${path}" failed: ${err}`, { cause: err });
      }
      if (!stillSame()) return this.#closed ? null : "replaced";
      if (!this.#blobs.isHeld(r.sha256)) this.#dropCorrupt(r.sha256);
      return null;
    }
    if (
      bytes.length !== r.size ||
      !this.#blobs.isVerified(r.sha256) && (await sha256Hex(bytes)) !== r.sha256
    ) {
      if (!this.#closed && !this.#blobs.isHeld(r.sha256)) this.#dropCorrupt(r.sha256);
      return null;
    }
    this.#blobs.markVerified(r.sha256);
    return bytes;
  }

  /** Removes a corrupt or missing body file and every row that pointed to it. */
  #dropCorrupt(sha: string): void {
    if (this.#closed) return;
    this.#q.delBySha.run(sha);
    this.#releaseFile(sha);
  }

  filePath(key: string): string | null {
    this.#checkKey("look up", key);
    this.#checkOpen("look up", key);
    const r = this.#row(key);
    return r && r.in_file === 1 ? this.#blobs.pathOf(r.sha256) : null;
  }

  updateMeta(key: string, meta: string): void {
    this.#checkKey("update", key);
    this.#checkMeta("update", key, meta);
    this.#checkOpen("update", key);
    this.#q.updateMeta.run(meta, key);
  }

  delete(key: string): boolean {
    this.#checkKey("delete", key);
    this.#checkOpen("delete", key);
    const r = this.#row(key);
    if (!r) return false;
    this.#q.del.run(key);
    this.#verifiedKeys.delete(key);
    if (r.in_file === 1) this.#releaseFile(r.sha256);
    return true;
  }

  *entries(): Iterable<StoreEntry> {
    let after = 0;
    while (!this.#closed) {
      const rows = this.#q.page.all(after) as unknown as (Row & { id: number })[];
      for (const r of rows) yield toEntry(r);
      if (rows.length < ENTRIES_PAGE) return;
      after = rows[rows.length - 1].id;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#blobs.close();
    this.#db.close();
  }
}
