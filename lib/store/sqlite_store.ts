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

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { createHash } from "node:crypto";
import type { ObjectStore, OpenBody, PutStreamOptions, StoreEntry } from "./types.ts";

/** Bodies of this many bytes or more live in files (SQLite reads small blobs faster than files, large ones slower). */
export const DEFAULT_FILE_THRESHOLD = 64 * 1024;
/** Largest accepted `fileThreshold`: bigger blobs would bloat the WAL and every page cache read. */
export const MAX_FILE_THRESHOLD = 16 * 1024 * 1024;
/** Longest key, in UTF-16 code units: a URL plus its Vary part; nginx caps a request line at 8 KiB. */
export const MAX_KEY_LENGTH = 16 * 1024;
/** Longest metadata string: status and headers as JSON; header blocks are capped far below this. */
export const MAX_META_LENGTH = 1024 * 1024;
/** Schema version kept in `PRAGMA user_version`; a newer database is refused, not guessed at. */
export const SCHEMA_VERSION = 1;
/** Rows fetched per page by `entries()`, so iterating a large store holds little in memory. */
const ENTRIES_PAGE = 512;
/** Reads retried when a concurrent replace unlinks the file being read. */
const READ_ATTEMPTS = 3;
/** Bytes per `write` call when a body held in memory goes to a file. */
const WRITE_CHUNK = 1024 * 1024;
/** Largest single synchronous write: bounds how long one write holds the event loop. */
const SYNC_WRITE_PIECE = 256 * 1024;
/** Bytes read per call when a body file is hashed (streamed, never held whole). */
const HASH_READ_PIECE = 1024 * 1024;

const SHA256_HEX = /^[0-9a-f]{64}$/;
const DB_FILE = "store.sqlite";
const OBJECTS = "objects";
const TMP = "tmp";

/** Options of {@linkcode openStore}. */
export interface OpenStoreOptions {
  /** Bodies of at least this many bytes are stored as files. Default 64 KiB. */
  fileThreshold?: number;
  /** Clock for `storedAt`, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** What `openStore` found and repaired; exposed for logs and tests. */
export interface RecoveryReport {
  /** Temporary files removed (bodies a crash interrupted). */
  tempFilesRemoved: number;
  /** Body files removed because no row referenced them. */
  orphanFilesRemoved: number;
  /** Rows removed because their file was missing or had the wrong size. */
  rowsDropped: number;
}

interface Row {
  key: string;
  meta: string;
  size: number;
  sha256: string;
  pinned: number;
  stored_at: number;
  in_file: number;
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
  #threshold: number;
  #now: () => number;
  #db: DatabaseSync;
  #objects: string;
  #tmp: string;
  #closed = false;
  /** Shard directories known to exist. */
  #shards = new Set<string>();
  /** Hashes of file bodies being recorded right now: their files must not be unlinked. */
  #pending = new Map<string, number>();
  /** File bodies (by hash) and database bodies (by key) whose hash was checked since open. */
  #verifiedFiles = new Set<string>();
  #verifiedKeys = new Set<string>();
  /** Hash checks of body files in progress, by hash: concurrent first reads share one. */
  #verifying = new Map<string, Promise<boolean>>();
  #q: {
    get: StatementSync;
    getBody: StatementSync;
    upsert: StatementSync;
    del: StatementSync;
    updateMeta: StatementSync;
    fileRef: StatementSync;
    delBySha: StatementSync;
    page: StatementSync;
  };

  constructor(dir: string, threshold: number, now: () => number) {
    this.dir = dir;
    this.#threshold = threshold;
    this.#now = now;
    this.#objects = `${dir}/${OBJECTS}`;
    this.#tmp = `${this.#objects}/${TMP}`;
    Deno.mkdirSync(this.#tmp, { recursive: true });
    const dbPath = `${dir}/${DB_FILE}`;
    this.#db = new DatabaseSync(dbPath);
    try {
      this.#db.exec("PRAGMA journal_mode = WAL");
      this.#db.exec("PRAGMA synchronous = FULL");
      this.#db.exec("PRAGMA busy_timeout = 5000");
      this.#migrate(dbPath);
      this.#q = {
        get: this.#db.prepare(
          "SELECT key, meta, size, sha256, pinned, stored_at, in_file FROM objects WHERE key = ?",
        ),
        getBody: this.#db.prepare("SELECT body FROM objects WHERE key = ?"),
        upsert: this.#db.prepare(
          `INSERT INTO objects (key, meta, size, sha256, pinned, stored_at, in_file, body)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET meta = excluded.meta, size = excluded.size,
             sha256 = excluded.sha256, pinned = excluded.pinned, stored_at = excluded.stored_at,
             in_file = excluded.in_file, body = excluded.body`,
        ),
        del: this.#db.prepare("DELETE FROM objects WHERE key = ?"),
        updateMeta: this.#db.prepare("UPDATE objects SET meta = ? WHERE key = ?"),
        fileRef: this.#db.prepare(
          "SELECT 1 AS one FROM objects WHERE in_file = 1 AND sha256 = ? LIMIT 1",
        ),
        delBySha: this.#db.prepare("DELETE FROM objects WHERE in_file = 1 AND sha256 = ?"),
        page: this.#db.prepare(
          `SELECT rowid AS id, key, meta, size, sha256, pinned, stored_at, in_file FROM objects
           WHERE rowid > ? ORDER BY rowid LIMIT ${ENTRIES_PAGE}`,
        ),
      };
      this.recovery = this.#recover();
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  #migrate(dbPath: string): void {
    const { user_version: version } = this.#db.prepare("PRAGMA user_version").get() as {
      user_version: number;
    };
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `Cannot open store "${dbPath}": schema version ${version} is newer than ${SCHEMA_VERSION}`,
      );
    }
    if (version === SCHEMA_VERSION) return;
    this.#db.exec(`BEGIN IMMEDIATE;
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

  /** Removes temporary and unreferenced files, and rows whose file is missing or wrong. */
  #recover(): RecoveryReport {
    const report: RecoveryReport = { tempFilesRemoved: 0, orphanFilesRemoved: 0, rowsDropped: 0 };
    for (const e of Deno.readDirSync(this.#tmp)) {
      Deno.removeSync(`${this.#tmp}/${e.name}`, { recursive: true });
      report.tempFilesRemoved++;
    }
    const files = new Map<string, number>(); // sha256 -> size on disk
    for (const shard of Deno.readDirSync(this.#objects)) {
      if (!shard.isDirectory || !/^[0-9a-f]{2}$/.test(shard.name)) continue;
      this.#shards.add(shard.name);
      for (const f of Deno.readDirSync(`${this.#objects}/${shard.name}`)) {
        const path = `${this.#objects}/${shard.name}/${f.name}`;
        if (f.isFile && SHA256_HEX.test(f.name) && f.name.startsWith(shard.name)) {
          files.set(f.name, Deno.statSync(path).size);
        }
      }
    }
    const referenced = new Set<string>();
    const rows = this.#db.prepare("SELECT key, size, sha256 FROM objects WHERE in_file = 1")
      .all() as unknown as { key: string; size: number; sha256: string }[];
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      for (const r of rows) {
        if (files.get(r.sha256) === r.size) {
          referenced.add(r.sha256);
        } else {
          this.#q.del.run(r.key);
          report.rowsDropped++;
        }
      }
      this.#db.exec("COMMIT");
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    }
    for (const sha of files.keys()) {
      if (!referenced.has(sha)) {
        Deno.removeSync(this.#filePathOf(sha));
        report.orphanFilesRemoved++;
      }
    }
    return report;
  }

  #filePathOf(sha: string): string {
    return `${this.#objects}/${sha.slice(0, 2)}/${sha}`;
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

  #toEntry(r: Row): StoreEntry {
    return {
      key: r.key,
      meta: r.meta,
      size: r.size,
      sha256: r.sha256,
      pinned: r.pinned === 1,
      storedAt: r.stored_at,
    };
  }

  #row(key: string): Row | undefined {
    return this.#q.get.get(key) as unknown as Row | undefined;
  }

  /** Unlinks the file of `sha` when no row references it and no put is recording it. */
  #releaseFile(sha: string): void {
    if (this.#pending.has(sha) || this.#q.fileRef.get(sha) !== undefined) return;
    this.#verifiedFiles.delete(sha);
    try {
      Deno.removeSync(this.#filePathOf(sha));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  /** Commits a row (replacing any previous one) and releases the previous file if unshared. */
  #record(
    key: string,
    meta: string,
    size: number,
    sha: string,
    pinned: boolean,
    body: Uint8Array | null,
  ): StoreEntry {
    const storedAt = this.#now();
    const old = this.#row(key);
    if (old !== undefined && old.pinned === 1 && !pinned) {
      // An upload is never replaced by a cache fill, whatever arrives last.
      throw new Error(`Cannot store "${key}": an upload (pinned object) holds the key`);
    }
    this.#q.upsert.run(key, meta, size, sha, pinned ? 1 : 0, storedAt, body ? 0 : 1, body);
    this.#verifiedKeys.delete(key);
    // This process hashed the bytes it wrote: a file body needs no check on its first read.
    if (body === null) this.#verifiedFiles.add(sha);
    if (old && old.in_file === 1 && !(body === null && old.sha256 === sha)) {
      this.#releaseFile(old.sha256);
    }
    return { key, meta, size, sha256: sha, pinned, storedAt };
  }

  async #ensureShard(sha: string): Promise<string> {
    const shard = sha.slice(0, 2);
    const dir = `${this.#objects}/${shard}`;
    if (!this.#shards.has(shard)) {
      await Deno.mkdir(dir, { recursive: true });
      await syncDir(this.#objects);
      this.#shards.add(shard);
    }
    return dir;
  }

  /** Moves a fsynced temporary file to its content address and fsyncs the shard directory. */
  async #publish(tmpPath: string, sha: string): Promise<void> {
    const dir = await this.#ensureShard(sha);
    await Deno.rename(tmpPath, this.#filePathOf(sha));
    await syncDir(dir);
  }

  #newTempPath(): string {
    return `${this.#tmp}/${crypto.randomUUID()}.tmp`;
  }

  #hold(sha: string): void {
    this.#pending.set(sha, (this.#pending.get(sha) ?? 0) + 1);
  }

  #unhold(sha: string): void {
    const n = (this.#pending.get(sha) ?? 1) - 1;
    if (n === 0) this.#pending.delete(sha);
    else this.#pending.set(sha, n);
  }

  async put(key: string, meta: string, body: Uint8Array, pinned = false): Promise<StoreEntry> {
    this.#checkKey("store", key);
    this.#checkMeta("store", key, meta);
    this.#checkOpen("store", key);
    if (!(body instanceof Uint8Array)) {
      throw new TypeError(`Cannot store "${key}": body must be a Uint8Array`);
    }
    if (body.length < this.#threshold) {
      const sha = createHash("sha256").update(body).digest("hex");
      return this.#record(key, meta, body.length, sha, pinned, body.slice());
    }
    const sha = hex(
      new Uint8Array(await crypto.subtle.digest("SHA-256", body as Uint8Array<ArrayBuffer>)),
    );
    const tmpPath = this.#newTempPath();
    this.#hold(sha);
    try {
      try {
        using file = await Deno.open(tmpPath, { write: true, createNew: true });
        for (let off = 0; off < body.length; off += WRITE_CHUNK) {
          await writeAll(file, body.subarray(off, Math.min(off + WRITE_CHUNK, body.length)));
        }
        await file.sync();
        await this.#publish(tmpPath, sha);
      } catch (err) {
        await removeQuietly(tmpPath);
        throw new Error(`Cannot store "${key}": writing "${tmpPath}" failed: ${err}`, {
          cause: err,
        });
      }
      this.#checkOpen("store", key);
      return this.#record(key, meta, body.length, sha, pinned, null);
    } finally {
      this.#unhold(sha);
      if (!this.#closed) this.#releaseFile(sha);
    }
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
    if (!(body instanceof ReadableStream)) {
      throw new TypeError(`Cannot store "${key}": body must be a ReadableStream`);
    }
    const { expectedSize, expectedSha256, onWrite } = opts;
    const inFile = opts.inFile === true;
    if (expectedSize !== undefined && (!Number.isSafeInteger(expectedSize) || expectedSize < 0)) {
      throw new RangeError(
        `Cannot store "${key}": expectedSize must be a non-negative integer: received ${expectedSize}`,
      );
    }
    if (expectedSha256 !== undefined && !SHA256_HEX.test(expectedSha256)) {
      throw new SyntaxError(
        `Cannot store "${key}": expectedSha256 must be 64 lowercase hex digits: received ${expectedSha256}`,
      );
    }
    const pinned = opts.pinned ?? false;
    const hash = createHash("sha256");
    const reader = body.getReader();
    // Bodies below the threshold are gathered in memory (at most `threshold` bytes) and go to
    // the database; once a body reaches the threshold it continues into a temporary file.
    const small: Uint8Array[] = [];
    let size = 0;
    let file: Deno.FsFile | null = null;
    const tmpPath = this.#newTempPath();
    let sha = "";
    let held = false;
    const fail = (reason: string, cause?: unknown): Error =>
      new Error(
        `Cannot store "${key}": ${reason}${file ? ` (temporary file "${tmpPath}")` : ""}`,
        { cause },
      );
    try {
      try {
        while (true) {
          let chunk: Uint8Array | undefined;
          try {
            const r = await reader.read();
            if (r.done) break;
            chunk = r.value;
          } catch (err) {
            throw fail(`body stream failed after ${size} bytes: ${err}`, err);
          }
          if (!(chunk instanceof Uint8Array)) {
            throw fail(`body stream yielded a ${typeof chunk}, not a Uint8Array`);
          }
          size += chunk.length;
          if (expectedSize !== undefined && size > expectedSize) {
            throw fail(`body is longer than expectedSize ${expectedSize}`);
          }
          hash.update(chunk);
          if (file === null && size < this.#threshold && !inFile) {
            small.push(chunk.slice());
            continue;
          }
          if (file === null) {
            file = await Deno.open(tmpPath, { write: true, createNew: true });
            for (const c of small) await writeAll(file, c);
            small.length = 0;
          }
          await writeAll(file, chunk);
          onWrite?.(tmpPath, size);
        }
        if (inFile && file === null) {
          file = await Deno.open(tmpPath, { write: true, createNew: true });
          onWrite?.(tmpPath, 0);
        }
        if (expectedSize !== undefined && size !== expectedSize) {
          throw fail(`body stream ended after ${size} bytes, expected ${expectedSize}`);
        }
        sha = hash.digest("hex");
        if (expectedSha256 !== undefined && sha !== expectedSha256) {
          throw fail(`body SHA-256 ${sha} does not match expected ${expectedSha256}`);
        }
        this.#checkOpen("store", key);
        if (file === null) {
          return this.#record(key, meta, size, sha, pinned, concat(small, size));
        }
        await file.sync();
        file.close();
        file = null;
        this.#hold(sha);
        held = true;
        await this.#publish(tmpPath, sha);
      } catch (err) {
        reader.cancel(err).catch(() => {});
        if (file !== null) {
          try {
            file.close();
          } catch { /* already closed */ }
        }
        await removeQuietly(tmpPath);
        if (err instanceof Error && err.message.startsWith(`Cannot store "${key}"`)) throw err;
        throw new Error(`Cannot store "${key}": writing "${tmpPath}" failed: ${err}`, {
          cause: err,
        });
      }
      this.#checkOpen("store", key);
      return this.#record(key, meta, size, sha, pinned, null);
    } finally {
      reader.releaseLock();
      if (held) {
        this.#unhold(sha);
        if (!this.#closed) this.#releaseFile(sha);
      }
    }
  }

  head(key: string): StoreEntry | null {
    this.#checkKey("look up", key);
    this.#checkOpen("look up", key);
    const r = this.#row(key);
    return r ? this.#toEntry(r) : null;
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
        return got === null ? null : { entry: this.#toEntry(r), bytes: got, file: null };
      }
      const path = this.#filePathOf(r.sha256);
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true });
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) {
          throw new Error(`Cannot read "${key}": opening "${path}" failed: ${err}`, { cause: err });
        }
        if (this.#closed) return null;
        if (this.#row(key)?.sha256 !== r.sha256) continue;
        if (!this.#pending.has(r.sha256)) this.#dropCorrupt(r.sha256);
        return null;
      }
      let good = false;
      try {
        good = (await file.stat()).size === r.size &&
          (this.#verifiedFiles.has(r.sha256) || await this.#verifyFile(r.sha256, path));
      } finally {
        if (!good) file.close();
      }
      if (!good) {
        if (!this.#closed && !this.#pending.has(r.sha256)) this.#dropCorrupt(r.sha256);
        return null;
      }
      return { entry: this.#toEntry(r), bytes: null, file };
    }
    throw new Error(
      `Cannot read "${key}": replaced ${READ_ATTEMPTS} times while being opened in "${this.dir}"`,
    );
  }

  /** Whether the file at `path` hashes to `sha`, read in pieces; shared by concurrent callers. */
  #verifyFile(sha: string, path: string): Promise<boolean> {
    let p = this.#verifying.get(sha);
    if (p === undefined) {
      p = hashFile(path).then((got) => {
        if (got === sha && !this.#closed) this.#verifiedFiles.add(sha);
        return got === sha;
      }, () => false).finally(() => this.#verifying.delete(sha));
      this.#verifying.set(sha, p);
    }
    return p;
  }

  async #readRow(key: string, r: Row): Promise<Uint8Array | null | "replaced"> {
    const stillSame = () => !this.#closed && this.#row(key)?.sha256 === r.sha256;
    if (r.in_file === 0) {
      const { body } = this.#q.getBody.get(key) as { body: Uint8Array | null };
      const bytes = body ?? new Uint8Array(0);
      if (bytes.length !== r.size || !this.#verifiedKeys.has(key) && !(await sameHash(bytes, r))) {
        // The row may have been replaced while hashing; only drop what was checked.
        if (!stillSame()) return this.#closed ? null : "replaced";
        this.#q.del.run(key);
        return null;
      }
      this.#verifiedKeys.add(key);
      return bytes;
    }
    const path = this.#filePathOf(r.sha256);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new Error(`Cannot read "${key}": reading "${path}" failed: ${err}`, { cause: err });
      }
      if (!stillSame()) return this.#closed ? null : "replaced";
      if (!this.#pending.has(r.sha256)) this.#dropCorrupt(r.sha256);
      return null;
    }
    if (
      bytes.length !== r.size ||
      !this.#verifiedFiles.has(r.sha256) && !(await sameHash(bytes, r))
    ) {
      if (!this.#closed && !this.#pending.has(r.sha256)) this.#dropCorrupt(r.sha256);
      return null;
    }
    this.#verifiedFiles.add(r.sha256);
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
    return r && r.in_file === 1 ? this.#filePathOf(r.sha256) : null;
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
      for (const r of rows) yield this.#toEntry(r);
      if (rows.length < ENTRIES_PAGE) return;
      after = rows[rows.length - 1].id;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}

async function sameHash(bytes: Uint8Array, r: Row): Promise<boolean> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return hex(new Uint8Array(digest)) === r.sha256;
}

/** Hex SHA-256 of a file, read in {@link HASH_READ_PIECE} pieces through one buffer. */
async function hashFile(path: string): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const hash = createHash("sha256");
  const buf = new Uint8Array(HASH_READ_PIECE);
  while (true) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * Writes all of `bytes`, synchronously, in pieces of at most {@link SYNC_WRITE_PIECE} bytes.
 *
 * Synchronous on purpose: Deno's async `FsFile.write` holds native memory per write until the
 * file is closed, so a 1 GiB upload streamed through async writes grew a node by ~40-60 MiB
 * (docs/notes/upload.md), while `writeSync` does not grow it and is 4-5x faster. Each piece is a
 * copy into the page cache (well under a millisecond for 256 KiB), so no single call holds the
 * event loop long; between pieces of a stream the caller awaits its source anyway.
 */
// deno-lint-ignore require-await
async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += file.writeSync(bytes.subarray(off, Math.min(off + SYNC_WRITE_PIECE, bytes.length)));
  }
}

/** fsyncs a directory so a rename or a new entry in it survives a power loss. */
async function syncDir(path: string): Promise<void> {
  using dir = await Deno.open(path, { read: true });
  await dir.sync();
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
