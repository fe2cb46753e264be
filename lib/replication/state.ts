/**
 * What a node holds: every uploaded name with its version, live or tombstoned, loaded from the
 * object store and the tombstone table at start, and changed only by {@link HeldState.apply}
 * (one change per name at a time, newest version wins).
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { ObjectStore } from "../store/types.ts";
import { type HttpCache, pinnedMeta } from "../http/cache.ts";
import type { BodySource, ObjectHeader } from "../upload/wire.ts";
import { nameError, nameToPath } from "../upload/validate.ts";
import { compareVersions, type HybridClock, type Version } from "./version.ts";
import type { ReplicationDb } from "./db.ts";
import { bodyRefusal, drain, Refusal } from "./_http.ts";

/** `Cache-Control` max-age sent with uploaded files: how long a client may keep a replaced one. */
export const UPLOAD_MAX_AGE_SECONDS = 60;

/** What a node holds for one name: a live object or a tombstone. */
export interface HeldEntry {
  name: string;
  version: Version;
  deleted: boolean;
  sha256: string;
  size: number;
  contentType: string;
  mtime: number;
  meta: Record<string, string>;
}

/** A versioned object or tombstone header, as applied. */
export type VersionedHeader = ObjectHeader & { version: Version };

/** Options of {@link HeldState}. */
export interface HeldStateOptions {
  store: ObjectStore;
  db: ReplicationDb;
  cache: HttpCache;
  clock: HybridClock;
  log: (line: string) => void;
}

/** See the module doc. */
export class HeldState {
  #o: HeldStateOptions;
  #held = new Map<string, HeldEntry>();
  #byPath = new Map<string, string>();
  #locks = new Map<string, Promise<unknown>>();
  #digest: string | null = null;

  constructor(o: HeldStateOptions) {
    this.#o = o;
    this.#load();
  }

  #load(): void {
    const { store, db, cache, log } = this.#o;
    for (const se of store.entries()) {
      if (!se.pinned) continue;
      let upload: HeldEntry | undefined;
      try {
        upload = (JSON.parse(se.meta) as { upload?: HeldEntry }).upload;
      } catch (e) {
        log(`replication: skipped stored entry ${se.key}: metadata is not JSON (${e})`);
        continue;
      }
      if (upload === undefined) continue; // pinned but not an upload
      if (nameError(upload.name) !== null) {
        log(`replication: skipped stored entry ${se.key}: bad name ${JSON.stringify(upload.name)}`);
        continue;
      }
      if (upload.sha256 !== se.sha256 || upload.size !== se.size) {
        log(`replication: skipped stored entry ${se.key}: size or hash differs from its record`);
        continue;
      }
      this.#set({ ...upload, deleted: false });
    }
    for (const t of db.tombstones()) {
      const cur = this.#held.get(t.name);
      if (cur !== undefined && compareVersions(cur.version, t.version) > 0) {
        db.deleteTombstone(t.name); // a crash between storing a newer version and this
        continue;
      }
      if (cur !== undefined) {
        // A crash between recording the tombstone and removing the object.
        const path = nameToPath(t.name);
        store.delete(path);
        cache.removePinned(path);
      }
      this.#set(tombstone(t.name, t.version));
    }
  }

  #set(e: HeldEntry): void {
    this.#held.set(e.name, e);
    this.#byPath.set(nameToPath(e.name), e.name);
    this.#o.clock.observe(e.version.ts);
    this.#digest = null;
  }

  /** The entry of `name` (live or tombstone), if any. */
  get(name: string): HeldEntry | undefined {
    return this.#held.get(name);
  }

  /** The name uploaded at request path `path` (no query), if any. */
  nameAt(path: string): string | undefined {
    return this.#byPath.get(path);
  }

  /** Live (not deleted) entries. */
  files(): HeldEntry[] {
    return [...this.#held.values()].filter((e) => !e.deleted);
  }

  /** True when `name` is being changed right now. */
  busy(name: string): boolean {
    return this.#locks.has(name);
  }

  /** Resolves when the change of `name` running now (if any) has ended. */
  async settled(name: string): Promise<void> {
    await this.#locks.get(name);
  }

  /** Resolves when every change running now has ended. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#locks.values()]);
  }

  /** True when `name` is held at `v` or newer. */
  hasAtLeast(name: string, v: Version): boolean {
    const mine = this.#held.get(name);
    return mine !== undefined && compareVersions(mine.version, v) >= 0;
  }

  /** A digest of the manifest: equal digests mean equal names, versions and hashes. */
  digest(): string {
    if (this.#digest !== null) return this.#digest;
    const h = createHash("sha256");
    for (const name of [...this.#held.keys()].sort()) {
      const e = this.#held.get(name)!;
      h.update(`${name}\t${e.version.ts}\t${e.version.node}\t${e.deleted ? "-" : e.sha256}\n`);
    }
    return this.#digest = h.digest("hex");
  }

  /**
   * Forgets live entries whose object the store does not hold (pinned, same SHA-256), so the
   * manifest and its digest state what the store really holds and anti-entropy fetches them
   * again. One indexed store lookup per live entry; a name being changed is skipped.
   */
  checkStore(): void {
    for (const e of this.#held.values()) {
      if (e.deleted || this.#locks.has(e.name)) continue;
      const path = nameToPath(e.name);
      const se = this.#o.store.head(path);
      if (se !== null && se.pinned && se.sha256 === e.sha256) continue;
      this.#o.log(`replication: ${e.name} is not in the store; it will be fetched again`);
      this.#held.delete(e.name);
      this.#byPath.delete(path);
      this.#o.cache.removePinned(path);
      this.#digest = null;
    }
  }

  /** Every name held with its version, hash and size, tombstones included. */
  manifest(node: string): { node: string; digest: string; entries: HeldEntry[] } {
    this.checkStore();
    const entries = [...this.#held.values()].sort((a, b) => a.name < b.name ? -1 : 1);
    return { node, digest: this.digest(), entries };
  }

  async #withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.#locks.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(name) === tail) this.#locks.delete(name);
    }
  }

  /**
   * Applies a versioned object or tombstone if it is newer than what is held. The body is
   * stored under a temporary name and verified against the header's size and SHA-256 before
   * it replaces the old version atomically; any failure stores nothing.
   */
  apply(
    h: VersionedHeader,
    body: ReadableStream<Uint8Array> | null,
    onStale: "drain" | "cancel" = "drain",
  ): Promise<"applied" | "stale"> {
    return this.#withLock(h.name, async () => {
      const cur = this.#held.get(h.name);
      if (cur !== undefined && compareVersions(h.version, cur.version) <= 0) {
        // A pusher waits for its answer, so its body is read to the end; a pull is cancelled.
        if (onStale === "drain") await drain(body);
        else await body?.cancel();
        return "stale";
      }
      const { store, db, cache } = this.#o;
      const path = nameToPath(h.name);
      if (h.deleted) {
        await drain(body);
        db.putTombstone(h.name, h.version);
        if (cur !== undefined && !cur.deleted) {
          store.delete(path);
          cache.removePinned(path);
        }
        this.#set(tombstone(h.name, h.version));
        return "applied";
      }
      if (body === null) throw new Refusal(400, "an object needs a body");
      await cache.pendingPut(path)?.catch(() => {}); // its outcome is the cache's concern
      const entry: HeldEntry = {
        name: h.name,
        version: h.version,
        deleted: false,
        sha256: h.sha256,
        size: h.size,
        contentType: h.contentType,
        mtime: h.mtime,
        meta: h.meta,
      };
      const headers = responseHeaders(entry);
      try {
        await store.putStream(path, pinnedMeta(path, headers, { upload: entry }), body, {
          pinned: true,
          expectedSize: h.size,
          expectedSha256: h.sha256,
        });
      } catch (e) {
        throw bodyRefusal(e);
      }
      if (cur?.deleted) db.deleteTombstone(h.name);
      if (cache.installPinned(path, headers, h.size) === null) {
        this.#o.log(
          `upload: ${h.name} (${h.size} bytes) does not fit the cache; served from the store`,
        );
      }
      this.#set(entry);
      return "applied";
    });
  }

  /**
   * The header and body source of `name` (its stored file, read into reused buffers when
   * encoded); `close` releases the file. Null when absent or replaced meanwhile.
   */
  async exportSource(
    name: string,
  ): Promise<{ header: VersionedHeader; body: BodySource; close: () => void } | null> {
    const e = this.#held.get(name);
    if (e === undefined) return null;
    const header: VersionedHeader = {
      name: e.name,
      contentType: e.contentType,
      size: e.size,
      sha256: e.sha256,
      mtime: e.mtime,
      meta: e.meta,
      version: e.version,
    };
    const none = () => {};
    if (e.deleted) return { header: { ...header, deleted: true }, body: [], close: none };
    const path = nameToPath(name);
    const { store } = this.#o;
    if (store.head(path)?.sha256 !== e.sha256) return null;
    const file = store.filePath(path);
    if (file !== null) {
      let f: Deno.FsFile;
      try {
        f = await Deno.open(file, { read: true });
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return null; // replaced meanwhile
        throw err;
      }
      return {
        header,
        body: f,
        close: () => {
          try {
            f.close();
          } catch (err) {
            if (!(err instanceof Deno.errors.BadResource)) throw err; // closed already
          }
        },
      };
    }
    const bytes = await store.read(path);
    if (bytes === null) return null;
    return { header, body: [bytes], close: none };
  }
}

/** A tombstone of `name` at `version`. */
export function tombstone(name: string, version: Version): HeldEntry {
  return { name, version, deleted: true, sha256: "", size: 0, contentType: "", mtime: 0, meta: {} };
}

/** True when `a` holds the same bytes, type and metadata as `h` describes. */
export function sameContent(a: HeldEntry, h: ObjectHeader): boolean {
  return a.sha256 === h.sha256 && a.size === h.size && a.contentType === h.contentType &&
    JSON.stringify(sortKeys(a.meta)) === JSON.stringify(sortKeys(h.meta));
}

function sortKeys(o: Record<string, string>): [string, string][] {
  return Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1);
}

/** The response headers of an uploaded file. */
export function responseHeaders(e: HeldEntry): [string, string][] {
  return [
    ["content-type", e.contentType],
    ["etag", `"${e.sha256}"`],
    ["last-modified", new Date(e.mtime).toUTCString()],
    ["cache-control", `public, max-age=${UPLOAD_MAX_AGE_SECONDS}`],
    ["x-nearcast-version", `${e.version.ts}-${e.version.node}`],
  ];
}
