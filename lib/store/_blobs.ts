/**
 * The file side of the store: bodies of `fileThreshold` bytes or more live in
 * `objects/ab/abcdef…`, named by their SHA-256. A body is written to `objects/tmp/`, fsynced,
 * renamed into its shard (same file system, so the rename is atomic), and the shard directory
 * is fsynced; only then does the caller commit the row.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Lowercase hex SHA-256: the name of a body file. */
export const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Bytes per `write` call when a body held in memory goes to a file. */
export const WRITE_CHUNK = 1024 * 1024;
/** Largest single synchronous write: bounds how long one write holds the event loop. */
const SYNC_WRITE_PIECE = 256 * 1024;
/** Bytes read per call when a body file is hashed (streamed, never held whole). */
const HASH_READ_PIECE = 1024 * 1024;
const OBJECTS = "objects";
const TMP = "tmp";

/**
 * The body files of one store directory, and what this process knows about them: which shard
 * directories exist, which hashes a put is recording right now (their files must not be
 * unlinked), and which files were hashed since open.
 */
export class BlobFiles {
  /** `DIR/objects`: one shard directory per first two hex digits. */
  readonly objects: string;
  /** `DIR/objects/tmp`: bodies being written. */
  readonly tmp: string;
  #closed = false;
  /** Shard directories known to exist. */
  #shards = new Set<string>();
  /** Hashes of file bodies being recorded right now: their files must not be unlinked. */
  #pending = new Map<string, number>();
  /** File bodies (by hash) whose hash was checked since open. */
  #verified = new Set<string>();
  /** Hash checks of body files in progress, by hash: concurrent first reads share one. */
  #verifying = new Map<string, Promise<boolean>>();

  /** Creates `dir/objects/tmp` if needed. */
  constructor(dir: string) {
    this.objects = `${dir}/${OBJECTS}`;
    this.tmp = `${this.objects}/${TMP}`;
    Deno.mkdirSync(this.tmp, { recursive: true });
  }

  /** Path of the body file of `sha`. */
  pathOf(sha: string): string {
    return `${this.objects}/${sha.slice(0, 2)}/${sha}`;
  }

  /** Records that the shard directory `shard` exists (found at open). */
  knowShard(shard: string): void {
    this.#shards.add(shard);
  }

  /** A fresh path in the temporary directory. */
  newTempPath(): string {
    return `${this.tmp}/${crypto.randomUUID()}.tmp`;
  }

  /** Moves a fsynced temporary file to its content address and fsyncs the shard directory. */
  async publish(tmpPath: string, sha: string): Promise<void> {
    const dir = await this.#ensureShard(sha);
    await Deno.rename(tmpPath, this.pathOf(sha));
    await syncDir(dir);
  }

  async #ensureShard(sha: string): Promise<string> {
    const shard = sha.slice(0, 2);
    const dir = `${this.objects}/${shard}`;
    if (!this.#shards.has(shard)) {
      await Deno.mkdir(dir, { recursive: true });
      await syncDir(this.objects);
      this.#shards.add(shard);
    }
    return dir;
  }

  /** Marks the file of `sha` as being recorded: it must not be unlinked meanwhile. */
  hold(sha: string): void {
    this.#pending.set(sha, (this.#pending.get(sha) ?? 0) + 1);
  }

  /** Undoes one {@linkcode hold}. */
  unhold(sha: string): void {
    const n = (this.#pending.get(sha) ?? 1) - 1;
    if (n === 0) this.#pending.delete(sha);
    else this.#pending.set(sha, n);
  }

  /** Whether a put is recording the file of `sha` right now. */
  isHeld(sha: string): boolean {
    return this.#pending.has(sha);
  }

  /** Whether the file of `sha` was hashed since open. */
  isVerified(sha: string): boolean {
    return this.#verified.has(sha);
  }

  /** Records that the file of `sha` hashes to `sha` (this process hashed it). */
  markVerified(sha: string): void {
    this.#verified.add(sha);
  }

  /** Unlinks the file of `sha` (absent is fine); the caller checked nothing references it. */
  remove(sha: string): void {
    this.#verified.delete(sha);
    try {
      Deno.removeSync(this.pathOf(sha));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  /** Whether the file at `path` hashes to `sha`, read in pieces; shared by concurrent callers. */
  verify(sha: string, path: string): Promise<boolean> {
    let p = this.#verifying.get(sha);
    if (p === undefined) {
      p = hashFile(path).then((got) => {
        if (got === sha && !this.#closed) this.#verified.add(sha);
        return got === sha;
      }, () => false).finally(() => this.#verifying.delete(sha));
      this.#verifying.set(sha, p);
    }
    return p;
  }

  /** Stops recording verifications (the store is closed). */
  close(): void {
    this.#closed = true;
  }
}

/** Hex SHA-256 of bytes held in memory. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return new Uint8Array(digest).toHex();
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
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += file.writeSync(bytes.subarray(off, Math.min(off + SYNC_WRITE_PIECE, bytes.length)));
  }
}

/** fsyncs a directory so a rename or a new entry in it survives a power loss. */
async function syncDir(path: string): Promise<void> {
  using dir = await Deno.open(path, { read: true });
  await dir.sync();
}

/** Removes a file; an absent one is fine. */
export async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
