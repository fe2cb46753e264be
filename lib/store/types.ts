/**
 * The durable object store contract of a replica (`--data DIR`): SQLite via `node:sqlite` in
 * WAL mode for metadata and small bodies, files named by SHA-256 for bodies above a threshold
 * (written to a temporary name, fsynced, renamed, then recorded). A crash at any point leaves
 * the previous value or nothing: never a partial or corrupt body.
 *
 * @module
 */

/** One stored object's description. */
export interface StoreEntry {
  /** Caller's key (for the cache: the cache key with its Vary part). */
  key: string;
  /** Caller's opaque metadata (for the cache: JSON of status, headers, timings). */
  meta: string;
  /** Body length in bytes. */
  size: number;
  /** Hex SHA-256 of the body. */
  sha256: string;
  /** Pinned objects (uploads) are never evicted by the cache. */
  pinned: boolean;
  /** Milliseconds since the epoch when it was stored. */
  storedAt: number;
}

/**
 * A stored body opened for reading: a body kept in the database as bytes, a file body as an
 * open file positioned at 0 (the caller closes it). An open file stays readable when the key
 * is replaced or deleted meanwhile.
 */
export type OpenBody =
  | { entry: StoreEntry; bytes: Uint8Array; file: null }
  | { entry: StoreEntry; bytes: null; file: Deno.FsFile };

/** Options of {@linkcode ObjectStore.putStream}. */
export interface PutStreamOptions {
  pinned?: boolean;
  expectedSize?: number;
  expectedSha256?: string;
  /** Write the body to a file whatever its size (for a body read while it is written). */
  inFile?: boolean;
  /**
   * Called after each piece reaches the temporary file with its path and the bytes it holds
   * so far: a reader may open the path and read that many bytes while the rest is written.
   */
  onWrite?: (tmpPath: string, bytesInFile: number) => void;
}

/** A durable key → (metadata, body) store. */
export interface ObjectStore {
  /**
   * Stores a body held in memory. Durable when the promise resolves; replaces atomically. A
   * put that is not pinned never replaces a pinned object (this and {@link putStream} reject).
   */
  put(key: string, meta: string, body: Uint8Array, pinned?: boolean): Promise<StoreEntry>;
  /**
   * Stores a streamed body without holding it in memory. If the stream errors or ends short
   * of `expectedSize` (when given), nothing is stored and the promise rejects.
   */
  putStream(
    key: string,
    meta: string,
    body: ReadableStream<Uint8Array>,
    opts?: PutStreamOptions,
  ): Promise<StoreEntry>;
  /** The entry for a key, or null. */
  head(key: string): StoreEntry | null;
  /** The body, verified against its size (and its hash the first time after open); null if absent or corrupt (a corrupt one is removed). */
  read(key: string): Promise<Uint8Array | null>;
  /**
   * Opens the body without loading a file body into memory (see {@linkcode OpenBody}). A file
   * body's hash is checked the first time after open by streaming the file through SHA-256;
   * null if absent or corrupt (a corrupt one is removed).
   */
  open(key: string): Promise<OpenBody | null>;
  /**
   * Path of the body file when the body lives in a file (for streaming large bodies), else null.
   * The file is content-addressed and immutable, but it is unlinked when the last key using it
   * is deleted or replaced: open it right away; an open file stays readable. Bodies streamed
   * from the path are checked for size only (not hash), so check the length you read.
   */
  filePath(key: string): string | null;
  /** Updates the metadata only (e.g. after a 304 revalidation); an absent key is ignored. */
  updateMeta(key: string, meta: string): void;
  /** Removes a key; true if it was there. */
  delete(key: string): boolean;
  /** Every entry, for rebuilding the index at start-up. */
  entries(): Iterable<StoreEntry>;
  close(): void;
}
