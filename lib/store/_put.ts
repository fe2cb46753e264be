/**
 * The two ways a body enters the store: held in memory ({@linkcode putBytes}) or streamed
 * ({@linkcode putStream}). Bodies below the threshold go to the database; larger ones are
 * written to a temporary file, fsynced and published under their SHA-256 before the row is
 * committed. The caller has checked the key and the metadata.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { concatBytes } from "../common/bytes.ts";
import {
  type BlobFiles,
  removeQuietly,
  SHA256_HEX,
  sha256Hex,
  WRITE_CHUNK,
  writeAll,
} from "./_blobs.ts";
import type { PutStreamOptions, StoreEntry } from "./types.ts";

/** What a put needs of the store it writes to. */
export interface PutTarget {
  /** Bodies of at least this many bytes are stored as files. */
  readonly threshold: number;
  readonly blobs: BlobFiles;
  /** Whether the store was closed. */
  closed(): boolean;
  /** Throws when the store was closed. */
  checkOpen(key: string): void;
  /** Commits a row (body null: the body is the file of `sha`). */
  record(
    key: string,
    meta: string,
    size: number,
    sha: string,
    pinned: boolean,
    body: Uint8Array | null,
  ): StoreEntry;
  /** Unlinks the file of `sha` when no row references it and no put is recording it. */
  release(sha: string): void;
}

/** Stores a body held in memory (see `ObjectStore.put`). */
export async function putBytes(
  to: PutTarget,
  key: string,
  meta: string,
  body: Uint8Array,
  pinned: boolean,
): Promise<StoreEntry> {
  if (!(body instanceof Uint8Array)) {
    throw new TypeError(`Cannot store "${key}": body must be a Uint8Array`);
  }
  if (body.length < to.threshold) {
    const sha = createHash("sha256").update(body).digest("hex");
    return to.record(key, meta, body.length, sha, pinned, body.slice());
  }
  const sha = await sha256Hex(body);
  const tmpPath = to.blobs.newTempPath();
  to.blobs.hold(sha);
  try {
    try {
      using file = await Deno.open(tmpPath, { write: true, createNew: true });
      for (let off = 0; off < body.length; off += WRITE_CHUNK) {
        await writeAll(file, body.subarray(off, Math.min(off + WRITE_CHUNK, body.length)));
      }
      await file.sync();
      await to.blobs.publish(tmpPath, sha);
    } catch (err) {
      await removeQuietly(tmpPath);
      throw new Error(`Cannot store "${key}": writing "${tmpPath}" failed: ${err}`, {
        cause: err,
      });
    }
    to.checkOpen(key);
    return to.record(key, meta, body.length, sha, pinned, null);
  } finally {
    to.blobs.unhold(sha);
    if (!to.closed()) to.release(sha);
  }
}

/** Stores a streamed body without holding it in memory (see `ObjectStore.putStream`). */
export async function putStream(
  to: PutTarget,
  key: string,
  meta: string,
  body: ReadableStream<Uint8Array>,
  opts: PutStreamOptions,
): Promise<StoreEntry> {
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
  const tmpPath = to.blobs.newTempPath();
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
        if (file === null && size < to.threshold && !inFile) {
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
      to.checkOpen(key);
      if (file === null) {
        return to.record(key, meta, size, sha, pinned, concatBytes(small, size));
      }
      await file.sync();
      file.close();
      file = null;
      to.blobs.hold(sha);
      held = true;
      await to.blobs.publish(tmpPath, sha);
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
    to.checkOpen(key);
    return to.record(key, meta, size, sha, pinned, null);
  } finally {
    reader.releaseLock();
    if (held) {
      to.blobs.unhold(sha);
      if (!to.closed()) to.release(sha);
    }
  }
}
