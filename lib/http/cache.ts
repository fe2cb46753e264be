/**
 * The replica's response cache: entries keyed by URL plus the `Vary`-selected request headers,
 * placed by a byte-budgeted {@link CacheIndex} (bodies live here, in an array indexed by the
 * slot the index returns), written through to an optional {@link ObjectStore} and rebuilt
 * from it at start-up.
 *
 * @module
 */

import type { CacheIndex } from "../cache/types.ts";
import type { ObjectStore, StoreEntry } from "../store/types.ts";
import { EMPTY_CACHE_CONTROL } from "./cache_control.ts";
import {
  correctedInitialAge,
  currentAge,
  freshnessLifetime,
  type ResponseFacts,
  unstorableReason,
} from "./freshness.ts";
import { appendVia, freshenHeaders, headerValue } from "./headers.ts";
import { peerOnly } from "./cache_tags.ts";
import { accountedSize } from "./cache_account.ts";
import {
  type Bytes,
  type CacheEntry,
  type CacheEvents,
  cacheKey,
  FILE_SERVE_THRESHOLD,
  joined,
  type KeyHasher,
  META_VERSION,
  PINNED_LIFETIME,
  PINNED_TIME,
  readWhole,
  responseFacts,
  type ResponseParts,
  type StoredMeta,
  varyNames,
} from "./cache_entry.ts";

export {
  type Bytes,
  type CacheEntry,
  type CacheEvents,
  cacheKey,
  FILE_SERVE_THRESHOLD,
  type KeyHasher,
  META_VERSION,
  PINNED_LIFETIME,
  PINNED_TIME,
  pinnedMeta,
  responseFacts,
  type ResponseParts,
  varyNames,
} from "./cache_entry.ts";

/**
 * The status whose rules set a stored response's freshness: a stored 206 is a slice of a 200
 * (fill_slice.ts), fresh as long as the representation is (206 is heuristically cacheable,
 * RFC 9110 §15.1).
 */
const freshnessStatus = (status: number) => status === 206 ? 200 : status;

/** Options of {@link HttpCache}. */
export interface HttpCacheOptions {
  index: CacheIndex;
  hashKey: KeyHasher;
  store?: ObjectStore | null;
  /** Largest body stored; larger responses are streamed, not cached. */
  maxObjectBytes: number;
  /** Our `Via` element, e.g. `1.1 nearcast-a`. */
  via: string;
  /** Called with a message when a store write fails (the entry stays in memory). */
  onStoreError?: (message: string) => void;
  /** Told of entries stored by a fill or an upload (not at load) and of entries dropped. */
  events?: CacheEvents;
}

/** The response cache. */
export class HttpCache {
  readonly maxObjectBytes: number;
  #index: CacheIndex;
  #hash: KeyHasher;
  #store: ObjectStore | null;
  #via: string;
  #onStoreError: (message: string) => void;
  #events: CacheEvents | null;
  #h = new Uint32Array(2);
  /** Entries by slot. */
  #slots: (CacheEntry | undefined)[] = [];
  /** Vary names of the latest stored response per URL. */
  #varyByUrl = new Map<string, string[]>();
  /** Keys of the variants stored per URL. */
  #keysByUrl = new Map<string, Set<string>>();
  /**
   * URLs held by an upload (a pinned store row), whether or not the index has room for it:
   * origin responses are never cached for them.
   */
  #pinnedUrls = new Set<string>();
  /** Store writes in flight, by key. */
  #pendingPuts = new Map<string, Promise<unknown>>();
  /** Evictions since start. */
  evictions = 0;

  constructor(opts: HttpCacheOptions) {
    if (!(opts.maxObjectBytes >= 0)) {
      throw new RangeError(
        `Cannot create cache: maxObjectBytes must be non-negative: received ${opts.maxObjectBytes}`,
      );
    }
    this.#index = opts.index;
    this.#hash = opts.hashKey;
    this.#store = opts.store ?? null;
    this.#via = opts.via;
    this.maxObjectBytes = Math.min(opts.maxObjectBytes, opts.index.budget);
    this.#onStoreError = opts.onStoreError ?? (() => {});
    this.#events = opts.events ?? null;
  }

  /** Entries held. */
  get count(): number {
    return this.#index.count;
  }
  /** Bytes accounted in the index. */
  get usedBytes(): number {
    return this.#index.usedBytes;
  }
  /** The index budget. */
  get budget(): number {
    return this.#index.budget;
  }

  /** Lower-case names of the latest `Vary` stored for `url` (empty when none). */
  varyOf(url: string): readonly string[] {
    return this.#varyByUrl.get(url) ?? [];
  }

  /** The key a request for `url` maps to now (using the latest Vary seen for the URL). */
  keyFor(url: string, req: Headers): string {
    const names = this.#varyByUrl.get(url);
    return names === undefined ? url : cacheKey(url, names, req);
  }

  /**
   * The distinct URLs (path and query) of the entries held now, at most `limit` of them: what
   * this replica reports as held for the DNS server's `/locate`.
   */
  urls(limit: number): string[] {
    const seen = new Set<string>();
    for (const e of this.#slots) {
      if (seen.size >= limit) break;
      if (e !== undefined) seen.add(e.url);
    }
    return [...seen];
  }

  /** The entry for `key`, counting a use; null on a miss. */
  get(key: string): CacheEntry | null {
    this.#hash(key, this.#h);
    const slot = this.#index.get(this.#h[0], this.#h[1]);
    if (slot < 0) return null;
    const e = this.#slots[slot];
    if (e === undefined || e.key !== key) return null;
    e.hits++;
    return e;
  }

  /** Every entry held, in no order, without counting a use (`/_cdn/cache`). */
  *entries(): IterableIterator<CacheEntry> {
    for (const e of this.#slots) if (e !== undefined) yield e;
  }

  /** The entry for `key` without counting a use. */
  peek(key: string): CacheEntry | null {
    this.#hash(key, this.#h);
    const slot = this.#index.peek(this.#h[0], this.#h[1]);
    if (slot < 0) return null;
    const e = this.#slots[slot];
    return e !== undefined && e.key === key ? e : null;
  }

  /**
   * The body of an entry to serve: in memory, or opened from the store (a file body as an
   * open file the caller closes, never read whole). Null if lost or corrupt (the entry is
   * removed). A body under {@link FILE_SERVE_THRESHOLD} read from the store stays in memory.
   */
  async open(entry: CacheEntry): Promise<Bytes | Deno.FsFile | null> {
    if (entry.body !== null) return entry.body;
    if (this.#store === null) return null;
    const got = await this.#store.open(entry.key);
    if (got === null || got.entry.size !== entry.size) {
      got?.file?.close();
      this.remove(entry);
      return null;
    }
    entry.verified = true;
    if (got.file !== null && entry.size >= FILE_SERVE_THRESHOLD) return got.file;
    // Under the threshold the body is kept in memory (as it was before a restart), so later
    // hits take the in-memory path instead of opening its file each time.
    const body = got.file === null ? got.bytes as Bytes : await readWhole(got.file, entry.size);
    if (body === null) {
      this.remove(entry);
      return null;
    }
    if (entry.size < FILE_SERVE_THRESHOLD && this.#slots[entry.slot] === entry) entry.body = body;
    return body;
  }

  /**
   * Stores a complete response for a request for `url` whose origin request carried the
   * client headers `req` (`fillForwarded` of forwarding.ts: the key uses what the origin saw), and
   * writes it through to the store. Returns the entry, or null when it is not held (too large,
   * refused by the admission policy, an upload holds `url`, or dropped before its write ended).
   * `keySuffix` is appended to the key (a slice of the object, see fill_slice.ts).
   */
  async put(
    url: string,
    req: Headers,
    parts: ResponseParts,
    keySuffix = "",
  ): Promise<CacheEntry | null> {
    // An upload holds this URL: origin responses are never cached for it, even when the
    // upload is served from the store because the index had no room for it.
    if (this.#pinnedUrls.has(url) || this.peek(url)?.pinned) return null;
    const names = varyNames(joined(parts.headers, "vary"));
    const key = cacheKey(url, names, req) + keySuffix;
    const entry = this.#makeEntry(key, url, parts, names, false);
    if (!this.#admit(entry)) return null;
    this.#varyByUrl.set(url, names);
    await this.#persist(entry, parts.body);
    // Dropped meanwhile (evicted, or refused by the store for an upload): the caller serves
    // the bytes it has.
    if (this.#slots[entry.slot] !== entry) return null;
    this.#events?.stored(entry);
    return entry;
  }

  /**
   * Where a response for `url` whose body is streamed into the store goes: its store key and
   * metadata, or null when there is no store or an upload holds the URL. Pass the result and
   * the store write to {@link HttpCache.putStored}.
   */
  streamTarget(
    url: string,
    req: Headers,
    parts: Omit<ResponseParts, "body">,
  ): { key: string; meta: string } | null {
    if (this.#store === null || this.#pinnedUrls.has(url) || this.peek(url)?.pinned) return null;
    const names = varyNames(joined(parts.headers, "vary"));
    const key = cacheKey(url, names, req);
    const entry = this.#makeEntry(key, url, { ...parts, body: new Uint8Array(0) }, names, false);
    return { key, meta: JSON.stringify(this.#meta(entry)) };
  }

  /**
   * Admits a response whose body `write` is streaming into the store under the key from
   * {@link HttpCache.streamTarget}, once the write completes. Returns the entry (its body
   * stays in the store), or null when the write failed or the index refused it (the stored
   * copy is then deleted).
   */
  async putStored(
    url: string,
    req: Headers,
    parts: Omit<ResponseParts, "body">,
    write: Promise<StoreEntry>,
  ): Promise<CacheEntry | null> {
    const names = varyNames(joined(parts.headers, "vary"));
    const key = cacheKey(url, names, req);
    this.#pendingPuts.set(key, write);
    let stored: StoreEntry;
    try {
      stored = await write;
    } catch {
      return null; // the body failed; the caller reports it
    } finally {
      if (this.#pendingPuts.get(key) === write) this.#pendingPuts.delete(key);
    }
    // An upload landed meanwhile (and replaced the row): it wins.
    if (this.#pinnedUrls.has(url)) return null;
    const entry = this.#makeEntry(key, url, { ...parts, body: new Uint8Array(0) }, names, false);
    entry.body = null;
    entry.size = stored.size;
    if (!this.#admit(entry)) {
      const row = this.#store?.head(key);
      if (this.peek(key) === null && row?.sha256 === stored.sha256 && !row.pinned) {
        this.#store!.delete(key);
      }
      return null;
    }
    this.#varyByUrl.set(url, names);
    this.#events?.stored(entry);
    return entry;
  }

  /**
   * Applies a 304's headers to an entry (RFC 9111 §3.2, §4.3.4) and resets its timing. Returns
   * false when the updated response may no longer be reused from the cache (`Vary: *`, other
   * `Vary` names than the ones it is keyed by, `no-store`, `private`): the caller answers the
   * request with it and removes it.
   */
  freshen(
    entry: CacheEntry,
    update: [string, string][],
    requestTime: number,
    responseTime: number,
  ): boolean {
    const headers = freshenHeaders(entry.headers, update);
    const facts = responseFacts(freshnessStatus(entry.status), headers);
    const names = varyNames(facts.vary);
    const reusable = unstorableReason("GET", EMPTY_CACHE_CONTROL, false, facts) === null &&
      names.length === entry.varyNames.length && names.every((n, i) => n === entry.varyNames[i]);
    entry.headers = headers;
    entry.requestTime = requestTime;
    entry.responseTime = responseTime;
    // The 304's own Date (or, without one, its arrival time), never the old stored Date.
    entry.initialAge = correctedInitialAge(
      headerValue(update, "age"),
      headerValue(update, "date"),
      requestTime,
      responseTime,
    );
    entry.lifetime = freshnessLifetime(facts, responseTime);
    this.#derive(entry, facts);
    if (!reusable) return false;
    this.#writeMeta(entry);
    return true;
  }

  /**
   * Soft purge: `entry`'s lifetime ends at its age at `now` (ms), so the next request
   * revalidates (or serves stale where allowed); stored. False if pinned or no longer held.
   */
  expire(entry: CacheEntry, now: number): boolean {
    if (entry.pinned || this.#slots[entry.slot] !== entry) return false;
    const age = currentAge(entry.initialAge, entry.responseTime, now);
    entry.lifetime = Math.min(entry.lifetime, age);
    this.#writeMeta(entry);
    return true;
  }

  /** The entries held for `url` (every variant), without counting a use. */
  variants(url: string): CacheEntry[] {
    const out: CacheEntry[] = [];
    for (const key of this.#keysByUrl.get(url) ?? []) {
      const e = this.peek(key);
      if (e !== null) out.push(e);
    }
    return out;
  }

  /** Rewrites a held entry's store metadata (after a 304 or a soft purge). */
  #writeMeta(entry: CacheEntry): void {
    if (this.#store === null || this.#slots[entry.slot] !== entry) return;
    try {
      this.#store.updateMeta(entry.key, JSON.stringify(this.#meta(entry)));
    } catch (e) {
      this.#onStoreError(`update of ${entry.key} failed: ${(e as Error).message}`);
    }
  }

  /** Removes an entry (and its stored copy unless pinned). */
  remove(entry: CacheEntry): void {
    this.#hash(entry.key, this.#h);
    if (this.#slots[entry.slot] !== entry) return;
    this.#index.delete(this.#h[0], this.#h[1]);
    this.#drop(entry);
  }

  /**
   * Removes every variant of `url`; returns how many entries went. Pinned (uploaded) entries
   * stay: they change only through uploads and deletes.
   */
  invalidate(url: string): number {
    const keys = this.#keysByUrl.get(url);
    let pinned = false;
    if (keys === undefined) {
      this.#varyByUrl.delete(url);
      return 0;
    }
    let n = 0;
    for (const key of [...keys]) {
      const e = this.peek(key);
      if (e !== null && e.pinned) {
        pinned = true;
      } else if (e !== null) {
        this.remove(e);
        n++;
      }
    }
    if (!pinned) {
      this.#varyByUrl.delete(url);
      this.#keysByUrl.delete(url);
    }
    return n;
  }

  /** The store write in flight for `key`, if any (an upload waits for it before its own). */
  pendingPut(key: string): Promise<unknown> | undefined {
    return this.#pendingPuts.get(key);
  }

  /**
   * Installs an uploaded body, already written to the store under the key `url` with
   * {@link pinnedMeta}, as a pinned entry replacing every variant of `url`. Returns the entry,
   * or null when the index has no room for it (pinned entries are refused only for space);
   * either way, origin responses are no longer cached for `url` until {@link removePinned}.
   */
  installPinned(url: string, headers: [string, string][], size: number): CacheEntry | null {
    this.#unlinkUrl(url);
    this.#pinnedUrls.add(url);
    this.#varyByUrl.delete(url);
    const entry = this.#makeEntry(
      url,
      url,
      {
        status: 200,
        headers,
        body: new Uint8Array(0),
        requestTime: PINNED_TIME,
        responseTime: PINNED_TIME,
      },
      [],
      true,
    );
    entry.initialAge = 0;
    entry.lifetime = PINNED_LIFETIME;
    entry.body = null;
    entry.size = size;
    if (!this.#admit(entry)) return null;
    this.#varyByUrl.set(url, []);
    this.#events?.stored(entry);
    return entry;
  }

  /** Forgets every entry of `url`, pinned ones included, without touching the store row `url`. */
  removePinned(url: string): void {
    this.#unlinkUrl(url);
    this.#varyByUrl.delete(url);
    this.#pinnedUrls.delete(url);
  }

  /** Whether an upload holds `url` (see {@link installPinned}). */
  isPinned(url: string): boolean {
    return this.#pinnedUrls.has(url);
  }

  #unlinkUrl(url: string): void {
    const keys = this.#keysByUrl.get(url);
    if (keys === undefined) return;
    for (const key of [...keys]) {
      const e = this.peek(key);
      if (e === null) continue;
      this.#hash(e.key, this.#h);
      this.#index.delete(this.#h[0], this.#h[1]);
      this.#drop(e, e.key === url);
    }
  }

  /** Removes every entry whose URL starts with `prefix`; returns how many went. */
  purgePrefix(prefix: string): number {
    let n = 0;
    for (const url of [...this.#keysByUrl.keys()]) {
      if (url.startsWith(prefix)) n += this.invalidate(url);
    }
    return n;
  }

  /**
   * Rebuilds the index from the store (oldest first, so the newest are the most recent),
   * within the budget; entries the index does not take are deleted from the store unless
   * pinned. Returns the number of entries loaded.
   */
  load(): number {
    if (this.#store === null) return 0;
    const all = [...this.#store.entries()].sort((a, b) => a.storedAt - b.storedAt);
    const loaded = new Set<CacheEntry>();
    for (const se of all) {
      let meta: StoredMeta;
      try {
        meta = JSON.parse(se.meta);
      } catch {
        this.#store.delete(se.key);
        continue;
      }
      if (meta.v !== META_VERSION || !Array.isArray(meta.headers)) {
        this.#store.delete(se.key);
        continue;
      }
      const names = varyNames(joined(meta.headers, "vary"));
      if (names.includes("*") && !se.pinned) {
        // Never reusable (stored by an older version from a 304 carrying `Vary: *`).
        this.#store.delete(se.key);
        continue;
      }
      if (se.pinned) this.#pinnedUrls.add(meta.url);
      const entry = this.#makeEntry(
        se.key,
        meta.url,
        {
          status: meta.status,
          headers: meta.headers,
          body: new Uint8Array(0),
          requestTime: meta.requestTime,
          responseTime: meta.responseTime,
        },
        names,
        se.pinned,
      );
      entry.initialAge = meta.initialAge;
      entry.lifetime = meta.lifetime;
      entry.body = null;
      entry.size = se.size;
      entry.verified = false;
      if (this.#admit(entry)) {
        this.#varyByUrl.set(meta.url, names);
        loaded.add(entry);
      } else if (!se.pinned) this.#store.delete(se.key);
    }
    let n = 0;
    for (const e of loaded) if (this.#slots[e.slot] === e) n++;
    return n;
  }

  #makeEntry(
    key: string,
    url: string,
    parts: ResponseParts,
    names: string[],
    pinned: boolean,
  ): CacheEntry {
    const facts = responseFacts(freshnessStatus(parts.status), parts.headers);
    const entry: CacheEntry = {
      key,
      url,
      slot: -1,
      status: parts.status,
      headers: parts.headers,
      body: parts.body,
      size: parts.body.byteLength,
      requestTime: parts.requestTime,
      responseTime: parts.responseTime,
      initialAge: correctedInitialAge(
        headerValue(parts.headers, "age"),
        facts.date,
        parts.requestTime,
        parts.responseTime,
      ),
      lifetime: freshnessLifetime(facts, parts.responseTime),
      cc: facts.cc,
      etag: null,
      lastModified: null,
      date: null,
      contentType: null,
      varyNames: names,
      pinned,
      verified: true,
      outHeaders: [],
      consumed: [],
      hitAge: -1,
      hits: 0,
      hitTemplate: null,
    };
    this.#derive(entry, facts);
    return entry;
  }

  /** Recomputes the fields derived from the headers. */
  #derive(entry: CacheEntry, facts: ResponseFacts): void {
    entry.cc = facts.cc;
    entry.etag = headerValue(entry.headers, "etag");
    entry.lastModified = facts.lastModified;
    entry.date = facts.date;
    entry.contentType = headerValue(entry.headers, "content-type");
    const out: [string, string][] = [];
    let via: string | null = null;
    entry.consumed = entry.headers.filter(([n]) => peerOnly(n));
    for (const [n, v] of entry.headers) {
      if (n === "via") via = via === null ? v : `${via}, ${v}`;
      else if (n !== "content-length" && n !== "age" && !peerOnly(n)) out.push([n, v]);
    }
    out.push(["via", appendVia(via, this.#via)]);
    entry.outHeaders = out;
    entry.hitAge = -1;
    entry.hitTemplate = null;
  }

  /** The bytes `entry` takes of the budget (its body, headers and bookkeeping). */
  accountedBytes(entry: CacheEntry): number {
    return accountedSize(entry);
  }

  /** Inserts into the index, handling evictions and key bookkeeping; false if refused. */
  #admit(entry: CacheEntry): boolean {
    if (entry.size > this.maxObjectBytes && !entry.pinned) return false;
    this.#hash(entry.key, this.#h);
    const hi = this.#h[0], lo = this.#h[1];
    const slot = this.#index.set(hi, lo, accountedSize(entry), entry.pinned);
    const evicted = this.#index.evictedCount();
    for (let i = 0; i < evicted; i++) {
      const s = this.#index.evictedSlot(i);
      const old = this.#slots[s];
      if (old !== undefined) {
        this.evictions++;
        this.#drop(old);
      }
    }
    if (slot < 0) return false;
    const previous = this.#slots[slot];
    // Same key replaced, or a hash collision taking over the slot: forget the old one.
    if (previous !== undefined) this.#drop(previous, previous.key === entry.key);
    entry.slot = slot;
    this.#slots[slot] = entry;
    let keys = this.#keysByUrl.get(entry.url);
    if (keys === undefined) this.#keysByUrl.set(entry.url, keys = new Set());
    keys.add(entry.key);
    return true;
  }

  /** Forgets an entry that the index no longer holds; deletes its stored copy unless pinned. */
  #drop(entry: CacheEntry, keepStored = false): void {
    if (this.#slots[entry.slot] === entry) this.#slots[entry.slot] = undefined;
    const keys = this.#keysByUrl.get(entry.url);
    if (keys !== undefined) {
      keys.delete(entry.key);
      if (keys.size === 0) {
        this.#keysByUrl.delete(entry.url);
        // The last variant went: an empty Vary list says nothing `varyOf` does not say
        // without it, and kept it would hold an entry for every URL ever cached.
        if (this.#varyByUrl.get(entry.url)?.length === 0 && !this.#pinnedUrls.has(entry.url)) {
          this.#varyByUrl.delete(entry.url);
        }
      }
    }
    entry.body = null;
    entry.hitTemplate = null;
    this.#events?.dropped(entry);
    if (keepStored || entry.pinned || this.#store === null) return;
    const store = this.#store;
    const del = () => {
      // Only when no newer entry for the key has been stored meanwhile, and never an upload
      // that replaced this entry's row.
      if (this.peek(entry.key) === null && store.head(entry.key)?.pinned !== true) {
        try {
          store.delete(entry.key);
        } catch (e) {
          this.#onStoreError(`delete of ${entry.key} failed: ${(e as Error).message}`);
        }
      }
    };
    const pending = this.#pendingPuts.get(entry.key);
    if (pending !== undefined) pending.then(del, del);
    else del();
  }

  #meta(entry: CacheEntry): StoredMeta {
    return {
      v: META_VERSION,
      url: entry.url,
      status: entry.status,
      headers: entry.headers,
      requestTime: entry.requestTime,
      responseTime: entry.responseTime,
      initialAge: entry.initialAge,
      lifetime: entry.lifetime,
    };
  }

  /** Writes an admitted entry through to the store. */
  async #persist(entry: CacheEntry, body: Bytes): Promise<void> {
    if (this.#store === null) return;
    const store = this.#store;
    const put = store.put(entry.key, JSON.stringify(this.#meta(entry)), body, entry.pinned);
    this.#pendingPuts.set(entry.key, put);
    try {
      await put;
      if (this.#slots[entry.slot] !== entry) return; // dropped meanwhile; #drop deletes it
      if (entry.size >= FILE_SERVE_THRESHOLD && store.filePath(entry.key) !== null) {
        entry.body = null;
        entry.hitTemplate = null;
      }
    } catch (e) {
      this.#onStoreError(`write of ${entry.key} failed: ${(e as Error).message}`);
      if (store.head(entry.key)?.pinned === true && this.#slots[entry.slot] === entry) {
        // An upload landed under this key while the fill was being written: it wins.
        this.#hash(entry.key, this.#h);
        this.#index.delete(this.#h[0], this.#h[1]);
        this.#drop(entry, true);
      }
    } finally {
      if (this.#pendingPuts.get(entry.key) === put) this.#pendingPuts.delete(entry.key);
    }
  }
}
