/**
 * The replication side of a node: accepts uploads and deletes, stores them durably in the
 * object store (pinned in the cache), pushes them to every known node with acknowledgements
 * and retries, keeps the server list in sync through heartbeats, and repairs divergence by
 * comparing manifests (at start-up, before it reports healthy, and on every heartbeat).
 *
 * Routes (all under `/_cdn/`; mutations need `Authorization: Bearer ADMIN_TOKEN`):
 *
 * | route | what |
 * | --- | --- |
 * | `POST /_cdn/upload` | an upload in the wire format (`lib/upload/wire.ts`) |
 * | `GET /_cdn/files`, `GET /_cdn/files/NAME` | what is held (metadata, JSON) |
 * | `DELETE /_cdn/files/NAME` | delete everywhere, leaving a tombstone |
 * | `POST /_cdn/replicate` | node to node: one versioned object or tombstone |
 * | `GET /_cdn/manifest` | every name with its version, hash, size, deleted flag, and a digest |
 * | `GET /_cdn/export?name=NAME` | one object or tombstone in the wire format (for pulls) |
 * | `GET/POST /_cdn/servers`, `DELETE /_cdn/servers/ID` | the server list |
 * | `POST /_cdn/heartbeat` | node to node: server list and manifest digest |
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { ObjectStore } from "../store/types.ts";
import { type HttpCache, pinnedMeta } from "../http/cache.ts";
import { representationOf, serveFromStore } from "../http/serve_body.ts";
import {
  type BodySource,
  decodeObjectStream,
  encodeObjectStream,
  type ObjectHeader,
  WIRE_CONTENT_TYPE,
  WireError,
  writeObjectStream,
} from "../upload/wire.ts";
import { checkHeader, nameError, nameToPath } from "../upload/validate.ts";
import { postStream } from "../upload/post_stream.ts";
import { compareVersions, HybridClock, type Version } from "./version.ts";
import type { ReplicationDb, ServerEntry } from "./db.ts";

/** Push attempts per (peer, name) before giving up; anti-entropy repairs what is left. */
export const MAX_PUSH_ATTEMPTS = 8;
/** First retry delay of a push, doubled per attempt up to {@link PUSH_BACKOFF_MAX_MS}. */
export const PUSH_BACKOFF_MS = 100;
/** Longest retry delay of a push. */
export const PUSH_BACKOFF_MAX_MS = 5_000;
/** Longest a push or pull of one object may take (a 1 GiB body on a slow link). */
export const TRANSFER_TIMEOUT_MS = 30 * 60_000;
/** Objects pulled at once while catching up: enough to hide latency, few enough to bound memory. */
export const PULL_CONCURRENCY = 4;
/** Largest JSON body of the server and heartbeat APIs: a server list of thousands of nodes. */
export const MAX_API_BODY = 1024 * 1024;
/** Heartbeats missed before a server is shown as not alive. */
export const MISSED_HEARTBEATS_DEAD = 3;
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

/** Options of {@link ReplicationNode}. */
export interface ReplicationOptions {
  /** Node id, stable across restarts (versions and the server list use it). */
  id: string;
  store: ObjectStore;
  db: ReplicationDb;
  cache: HttpCache;
  /** Token for uploads, deletes, server-list changes and node-to-node calls; null disables them. */
  adminToken: string | null;
  /** Largest upload accepted (413 beyond). */
  maxUploadBytes: number;
  /** Heartbeat period, ms. */
  heartbeatMs: number;
  /** Time allowed for a heartbeat, manifest or server probe, ms. */
  requestTimeoutMs: number;
  /** Chunk size of pushes and exports. */
  chunkBytes: number;
  /** Server URLs to contact at start (`--servers`, `--join`). */
  seeds: string[];
  now?: () => number;
  log?: (line: string) => void;
}

interface Peer {
  entry: ServerEntry;
  lastSeen: number | null;
}

interface PushQueue {
  names: Set<string>;
  running: boolean;
}

/** Counters shown in `/_cdn/health`. */
export interface ReplicationStats {
  uploads: number;
  pushes: number;
  pushFailures: number;
  pulls: number;
  rejected: number;
}

/** Why an upload or replication was refused: an HTTP status and a message. */
class Refusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The replication side of one node. */
export class ReplicationNode {
  readonly id: string;
  readonly stats: ReplicationStats = {
    uploads: 0,
    pushes: 0,
    pushFailures: 0,
    pulls: 0,
    rejected: 0,
  };
  #o: Required<ReplicationOptions>;
  #clock: HybridClock;
  #held = new Map<string, HeldEntry>();
  #byPath = new Map<string, string>();
  #locks = new Map<string, Promise<unknown>>();
  #servers = new Map<string, Peer>();
  #seeds = new Set<string>();
  #queues = new Map<string, PushQueue>();
  #pulling = new Set<string>();
  #syncing = new Set<string>();
  #digest: string | null = null;
  #selfUrl = "";
  #ready = false;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ac = new AbortController();
  #tasks = new Set<Promise<unknown>>();

  constructor(opts: ReplicationOptions) {
    this.#o = { now: Date.now, log: (l: string) => console.error(l), ...opts };
    this.id = opts.id;
    this.#clock = new HybridClock(opts.id, this.#o.now);
    for (const s of opts.seeds) this.#seeds.add(new URL(s).origin);
    this.#load();
  }

  /** True once the start-up catch-up is done. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Live (not deleted) entries. */
  files(): HeldEntry[] {
    return [...this.#held.values()].filter((e) => !e.deleted);
  }

  // ---- state -----------------------------------------------------------------------------

  #load(): void {
    const { store, db, cache } = this.#o;
    for (const se of store.entries()) {
      if (!se.pinned) continue;
      let upload: HeldEntry | undefined;
      try {
        upload = (JSON.parse(se.meta) as { upload?: HeldEntry }).upload;
      } catch {
        continue;
      }
      if (upload === undefined || nameError(upload.name) !== null) continue;
      if (upload.sha256 !== se.sha256 || upload.size !== se.size) continue;
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
    for (const s of db.servers()) {
      this.#servers.set(s.id, { entry: s, lastSeen: null });
      this.#clock.observe(s.version.ts);
    }
  }

  #set(e: HeldEntry): void {
    this.#held.set(e.name, e);
    this.#byPath.set(nameToPath(e.name), e.name);
    this.#clock.observe(e.version.ts);
    this.#digest = null;
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

  /** Every name held with its version, hash and size, tombstones included. */
  manifest(): { node: string; digest: string; entries: HeldEntry[] } {
    const entries = [...this.#held.values()].sort((a, b) => a.name < b.name ? -1 : 1);
    return { node: this.id, digest: this.digest(), entries };
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
    h: ObjectHeader & { version: Version },
    body: ReadableStream<Uint8Array> | null,
    onStale: "drain" | "cancel" = "drain",
  ) {
    return this.#withLock(h.name, async (): Promise<"applied" | "stale"> => {
      const cur = this.#held.get(h.name);
      if (cur !== undefined && compareVersions(h.version, cur.version) <= 0) {
        // A pusher waits for its answer, so its body is read to the end; a pull is cancelled.
        if (onStale === "drain") await drain(body);
        else await body?.cancel().catch(() => {});
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
      await cache.pendingPut(path)?.catch(() => {});
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

  // ---- HTTP ------------------------------------------------------------------------------

  /** Answers a `/_cdn/` route of this module, or returns null. */
  handle(req: Request, path: string): Promise<Response> | null {
    const m = req.method;
    if (path === "/_cdn/upload") return this.#guard(req, ["POST"], true, () => this.#upload(req));
    if (path === "/_cdn/replicate") {
      return this.#guard(req, ["POST"], true, () => this.#replicate(req));
    }
    if (path === "/_cdn/manifest") {
      return this.#guard(req, ["GET", "HEAD"], false, () => Promise.resolve(json(this.manifest())));
    }
    if (path === "/_cdn/export") return this.#guard(req, ["GET"], false, () => this.#export(req));
    if (path === "/_cdn/heartbeat") {
      return this.#guard(req, ["POST"], true, () => this.#heartbeatIn(req));
    }
    if (path === "/_cdn/servers") {
      return this.#guard(req, ["GET", "HEAD", "POST"], m === "POST", () => {
        return m === "POST" ? this.#addServer(req) : Promise.resolve(json(this.servers(req)));
      });
    }
    if (path.startsWith("/_cdn/servers/")) {
      const id = decodeURIComponent(path.slice("/_cdn/servers/".length));
      return this.#guard(req, ["DELETE"], true, () => Promise.resolve(this.#removeServer(id)));
    }
    if (path === "/_cdn/files") {
      return this.#guard(req, ["GET", "HEAD"], false, () => Promise.resolve(json(this.files())));
    }
    if (path.startsWith("/_cdn/files/")) {
      let name: string;
      try {
        name = decodeURIComponent(path.slice("/_cdn/files/".length));
      } catch {
        return Promise.resolve(text(400, "file name is not valid percent-encoding"));
      }
      return this.#guard(req, ["GET", "HEAD", "DELETE"], m === "DELETE", () => {
        return m === "DELETE" ? this.#delete(name) : Promise.resolve(this.#fileInfo(name));
      });
    }
    return null;
  }

  async #guard(
    req: Request,
    methods: string[],
    auth: boolean,
    fn: () => Promise<Response>,
  ): Promise<Response> {
    if (!methods.includes(req.method)) {
      await req.body?.cancel();
      return text(405, `use ${methods.join(" or ")}`, [["allow", methods.join(", ")]]);
    }
    if (auth) {
      const refused = this.#authorize(req);
      if (refused !== null) {
        await req.body?.cancel().catch(() => {});
        this.stats.rejected++;
        return refused;
      }
    }
    try {
      return await fn();
    } catch (e) {
      if (e instanceof Refusal) {
        this.stats.rejected++;
        return text(e.status, e.message);
      }
      this.#o.log(`replication: ${req.method} ${new URL(req.url).pathname}: ${(e as Error).stack}`);
      return text(500, `internal error: ${(e as Error).message}`);
    }
  }

  #authorize(req: Request): Response | null {
    const token = this.#o.adminToken;
    if (token === null) {
      return text(403, "uploads and changes are disabled: start the node with --admin-token");
    }
    const auth = req.headers.get("authorization");
    if (auth === null || !/^Bearer\s+/i.test(auth)) {
      return text(401, "this needs Authorization: Bearer TOKEN (the node's admin token)", [[
        "www-authenticate",
        'Bearer realm="nearcast"',
      ]]);
    }
    if (!sameSecret(auth.replace(/^Bearer\s+/i, "").trim(), token)) {
      return text(403, "wrong token");
    }
    return null;
  }

  /** Decodes and validates a wire stream's header; refuses with 400/413. */
  async #decode(req: Request, replicated: boolean) {
    if (req.body === null) throw new Refusal(400, "empty body: expected the upload stream");
    let decoded;
    try {
      // The body goes to the store's putStream, done with a chunk before it reads the next.
      decoded = await decodeObjectStream(req.body, { reuseBuffers: true });
    } catch (e) {
      if (e instanceof WireError) throw new Refusal(400, e.message);
      throw new Refusal(400, `cannot read the body: ${(e as Error).message}`);
    }
    const h = checkHeader(decoded.header, replicated);
    if (typeof h === "string") {
      await decoded.body.cancel().catch(() => {});
      throw new Refusal(400, h);
    }
    if (!h.deleted && h.size > this.#o.maxUploadBytes) {
      await decoded.body.cancel().catch(() => {});
      throw new Refusal(
        413,
        `${h.name} is ${h.size} bytes, larger than this node's limit of ${this.#o.maxUploadBytes} bytes`,
      );
    }
    return { header: h, body: decoded.body };
  }

  async #upload(req: Request): Promise<Response> {
    const { header, body } = await this.#decode(req, false);
    if (header.deleted) {
      await body.cancel().catch(() => {});
      throw new Refusal(400, "a delete is DELETE /_cdn/files/NAME, not an upload");
    }
    const cur = this.#held.get(header.name);
    const path = nameToPath(header.name);
    if (cur !== undefined && !cur.deleted && sameContent(cur, header)) {
      try {
        await drain(body);
      } catch (e) {
        throw bodyRefusal(e);
      }
      return json({ status: "unchanged", name: header.name, path, version: cur.version }, 200);
    }
    const version = this.#clock.next();
    await this.apply({ ...header, version }, body);
    this.stats.uploads++;
    this.#o.log(`upload: stored ${header.name} (${header.size} bytes, ${header.sha256})`);
    this.#pushAll(header.name);
    return json({
      status: "stored",
      name: header.name,
      path,
      size: header.size,
      sha256: header.sha256,
      version,
      pushingTo: this.#peers().length,
    }, 201);
  }

  async #delete(name: string): Promise<Response> {
    const err = nameError(name);
    if (err !== null) throw new Refusal(400, err);
    const cur = this.#held.get(name);
    if (cur === undefined || cur.deleted) throw new Refusal(404, `no such file: ${name}`);
    const version = this.#clock.next();
    await this.apply({ ...tombstone(name, version), deleted: true }, null);
    this.#o.log(`upload: deleted ${name}`);
    this.#pushAll(name);
    return json({ status: "deleted", name, version });
  }

  #fileInfo(name: string): Response {
    const e = this.#held.get(name);
    if (e === undefined) return text(404, `no such file: ${name}`);
    if (e.deleted) return json({ ...e, path: nameToPath(name) }, 410);
    return json({ ...e, path: nameToPath(name) });
  }

  async #replicate(req: Request): Promise<Response> {
    const { header, body } = await this.#decode(req, true);
    const result = await this.apply(header as ObjectHeader & { version: Version }, body);
    return json({ result, node: this.id, digest: this.digest() });
  }

  async #export(req: Request): Promise<Response> {
    const name = new URL(req.url).searchParams.get("name");
    if (name === null || nameError(name) !== null) {
      throw new Refusal(400, `export needs ?name=NAME: ${nameError(name)}`);
    }
    const stream = await this.#exportStream(name);
    if (stream === null) return text(404, `no such file: ${name}`);
    return new Response(stream, {
      headers: { "content-type": WIRE_CONTENT_TYPE, "cache-control": "no-store" },
    });
  }

  /** The held object or tombstone of `name` in the wire format; null when absent. */
  async #exportStream(name: string): Promise<ReadableStream<Uint8Array> | null> {
    const src = await this.#exportSource(name);
    if (src === null) return null;
    const stream = encodeObjectStream(src.header, src.body, this.#o.chunkBytes);
    return ReadableStream.from((async function* () {
      try {
        yield* stream;
      } finally {
        src.close();
      }
    })());
  }

  /**
   * The header and body source of `name` (its stored file, read into reused buffers when
   * encoded); `close` releases the file. Null when absent or replaced meanwhile.
   */
  async #exportSource(
    name: string,
  ): Promise<{ header: ObjectHeader; body: BodySource; close: () => void } | null> {
    const e = this.#held.get(name);
    if (e === undefined) return null;
    const header: ObjectHeader = {
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
      } catch {
        return null; // replaced meanwhile: the newer version is exported next time
      }
      return {
        header,
        body: f,
        close: () => {
          try {
            f.close();
          } catch { /* closed */ }
        },
      };
    }
    const bytes = await store.read(path);
    if (bytes === null) return null;
    return { header, body: [bytes], close: none };
  }

  /** Serves an uploaded file the cache index had no room for (a miss), else null. */
  serveMiss(req: Request, url: string): Promise<Response> | null {
    const q = url.indexOf("?");
    const name = this.#byPath.get(q < 0 ? url : url.slice(0, q));
    if (name === undefined) return null;
    const e = this.#held.get(name)!;
    if (e.deleted) return null;
    const headers = responseHeaders(e);
    headers.push(["x-cache", "PINNED"]);
    const rep = representationOf(200, headers, e.size);
    return serveFromStore(req, this.#o.store, nameToPath(name), rep, headers).then((res) =>
      res ?? text(503, `${name} is being replaced; try again`)
    );
  }

  // ---- servers and heartbeats ------------------------------------------------------------

  /** The server list as the API shows it. */
  servers(req?: Request): unknown[] {
    const all = req !== undefined && new URL(req.url).searchParams.get("all") === "1";
    const deadAfter = this.#o.heartbeatMs * MISSED_HEARTBEATS_DEAD;
    const now = this.#o.now();
    return [...this.#servers.values()]
      .filter((p) => all || !p.entry.removed)
      .map((p) => ({
        id: p.entry.id,
        url: p.entry.url,
        self: p.entry.id === this.id,
        alive: p.entry.id === this.id ||
          (p.lastSeen !== null && now - p.lastSeen <= deadAfter),
        lastSeenMs: p.lastSeen === null ? null : now - p.lastSeen,
        removed: p.entry.removed,
        version: p.entry.version,
      }));
  }

  #mergeServer(e: ServerEntry): boolean {
    const cur = this.#servers.get(e.id);
    if (cur !== undefined && compareVersions(e.version, cur.entry.version) <= 0) return false;
    this.#clock.observe(e.version.ts);
    this.#o.db.putServer(e);
    this.#servers.set(e.id, { entry: e, lastSeen: cur?.lastSeen ?? null });
    this.#seeds.delete(e.url);
    return true;
  }

  async #readJson(req: Request): Promise<Record<string, unknown>> {
    const body = await req.text();
    if (body.length > MAX_API_BODY) {
      throw new Refusal(413, `body larger than ${MAX_API_BODY} bytes`);
    }
    try {
      const v = JSON.parse(body);
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error();
      return v;
    } catch {
      throw new Refusal(400, "body must be a JSON object");
    }
  }

  async #addServer(req: Request): Promise<Response> {
    const body = await this.#readJson(req);
    const url = serverUrl(body.url);
    if (url === null) {
      throw new Refusal(
        400,
        `url must be an http(s) base URL: received ${JSON.stringify(body.url)}`,
      );
    }
    let id = body.id;
    if (id !== undefined && (typeof id !== "string" || id === "" || id.length > 256)) {
      throw new Refusal(400, "id must be a non-empty string of at most 256 characters");
    }
    if (id === undefined) {
      try {
        const res = await fetch(`${url}/_cdn/health`, {
          signal: AbortSignal.timeout(this.#o.requestTimeoutMs),
        });
        id = ((await res.json()) as { nodeId?: unknown }).nodeId;
      } catch (e) {
        throw new Refusal(
          502,
          `cannot reach ${url} to learn its id (${
            (e as Error).message
          }); pass {"url", "id"} to add a server that is down`,
        );
      }
      if (typeof id !== "string" || id === "") {
        throw new Refusal(502, `${url} did not report a node id: is it a Nearcast node?`);
      }
    }
    const entry: ServerEntry = { id, url, version: this.#clock.next(), removed: false };
    this.#mergeServer(entry);
    this.#o.log(`servers: added ${id} ${url}`);
    this.#track(this.#heartbeatRound());
    return json({ status: "added", id, url }, 201);
  }

  #removeServer(id: string): Response {
    const cur = this.#servers.get(id);
    if (cur === undefined || cur.entry.removed) throw new Refusal(404, `no such server: ${id}`);
    this.#mergeServer({ ...cur.entry, version: this.#clock.next(), removed: true });
    this.#queues.delete(id);
    this.#o.log(`servers: removed ${id}`);
    return json({ status: "removed", id });
  }

  /** Live peers to push to: known, not removed, not this node. */
  #peers(): ServerEntry[] {
    return [...this.#servers.values()].map((p) => p.entry).filter((e) =>
      !e.removed && e.id !== this.id
    );
  }

  #heartbeatBody(): string {
    return JSON.stringify({
      from: { id: this.id, url: this.#selfUrl },
      servers: [...this.#servers.values()].map((p) => p.entry),
      digest: this.digest(),
    });
  }

  #mergeList(list: unknown): void {
    if (!Array.isArray(list)) return;
    for (const raw of list.slice(0, 10_000)) {
      const s = raw as ServerEntry;
      if (
        typeof s?.id === "string" && s.id !== "" && serverUrl(s.url) !== null &&
        Number.isSafeInteger(s.version?.ts) && typeof s.version?.node === "string"
      ) {
        this.#mergeServer({
          id: s.id,
          url: serverUrl(s.url)!,
          version: s.version,
          removed: !!s.removed,
        });
      }
    }
  }

  async #heartbeatIn(req: Request): Promise<Response> {
    const body = await this.#readJson(req);
    this.#mergeList(body.servers);
    const from = body.from as { id?: unknown } | undefined;
    if (typeof from?.id === "string") {
      const p = this.#servers.get(from.id);
      if (p !== undefined) p.lastSeen = this.#o.now();
    }
    return new Response(this.#heartbeatBody(), {
      headers: { "content-type": "application/json", "cache-control": "no-store" },
    });
  }

  /** One heartbeat to `url`; returns the peer's id and digest, or null when it did not answer. */
  async #heartbeatTo(url: string): Promise<{ id: string; digest: string } | null> {
    try {
      const res = await fetch(`${url}/_cdn/heartbeat`, {
        method: "POST",
        headers: this.#authHeaders("application/json"),
        body: this.#heartbeatBody(),
        signal: AbortSignal.any([AbortSignal.timeout(this.#o.requestTimeoutMs), this.#ac.signal]),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return null;
      }
      const body = await res.json() as {
        from?: { id?: string };
        servers?: unknown;
        digest?: string;
      };
      this.#mergeList(body.servers);
      const id = body.from?.id;
      if (typeof id !== "string") return null;
      const p = this.#servers.get(id);
      if (p !== undefined) p.lastSeen = this.#o.now();
      this.#seeds.delete(url);
      return { id, digest: String(body.digest) };
    } catch {
      return null;
    }
  }

  /** Heartbeats every peer and seed; anti-entropy with each whose digest differs. */
  async #heartbeatRound(syncNow = false): Promise<string[]> {
    const targets = new Map<string, string>(); // url -> id or ""
    for (const e of this.#peers()) targets.set(e.url, e.id);
    for (const s of this.#seeds) if (!targets.has(s) && s !== this.#selfUrl) targets.set(s, "");
    const answered: string[] = [];
    await Promise.all([...targets.keys()].map(async (url) => {
      const r = await this.#heartbeatTo(url);
      if (r === null || r.id === this.id) return;
      answered.push(url);
      if (r.digest !== this.digest()) {
        const p = this.#sync(url);
        if (syncNow) await p;
      }
    }));
    return answered;
  }

  /** Pulls from `url` every entry newer than ours (bounded concurrency). */
  async #sync(url: string): Promise<void> {
    if (this.#syncing.has(url) || this.#closed) return;
    this.#syncing.add(url);
    try {
      const res = await fetch(`${url}/_cdn/manifest`, {
        signal: AbortSignal.any([AbortSignal.timeout(this.#o.requestTimeoutMs), this.#ac.signal]),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return;
      }
      const m = await res.json() as { entries?: HeldEntry[] };
      const wanted = (m.entries ?? []).filter((e) => {
        if (typeof e?.name !== "string" || nameError(e.name) !== null) return false;
        // A name being received right now (a push) is not pulled a second time.
        if (this.#locks.has(e.name)) return false;
        const mine = this.#held.get(e.name);
        return mine === undefined || compareVersions(e.version, mine.version) > 0;
      });
      let next = 0;
      const worker = async () => {
        while (next < wanted.length && !this.#closed) await this.#pull(url, wanted[next++].name);
      };
      await Promise.all(Array.from({ length: PULL_CONCURRENCY }, worker));
    } catch (e) {
      if (!this.#closed) this.#o.log(`sync: ${url}: ${(e as Error).message}`);
    } finally {
      this.#syncing.delete(url);
    }
  }

  async #pull(url: string, name: string): Promise<void> {
    if (this.#pulling.has(name)) return;
    this.#pulling.add(name);
    try {
      const res = await fetch(`${url}/_cdn/export?name=${encodeURIComponent(name)}`, {
        signal: AbortSignal.any([AbortSignal.timeout(TRANSFER_TIMEOUT_MS), this.#ac.signal]),
      });
      if (!res.ok || res.body === null) {
        await res.body?.cancel();
        return;
      }
      const d = await decodeObjectStream(res.body, { reuseBuffers: true });
      const h = checkHeader(d.header, true);
      if (typeof h === "string") {
        await d.body.cancel();
        throw new Error(`bad export header: ${h}`);
      }
      const r = await this.apply(h as ObjectHeader & { version: Version }, d.body, "cancel");
      if (r === "applied") {
        this.stats.pulls++;
        this.#o.log(`sync: pulled ${h.deleted ? "tombstone of " : ""}${name} from ${url}`);
      }
    } catch (e) {
      if (!this.#closed) {
        this.#o.log(`sync: pull of ${name} from ${url} failed: ${(e as Error).message}`);
      }
    } finally {
      this.#pulling.delete(name);
    }
  }

  #authHeaders(contentType: string): Record<string, string> {
    const h: Record<string, string> = { "content-type": contentType };
    if (this.#o.adminToken !== null) h.authorization = `Bearer ${this.#o.adminToken}`;
    return h;
  }

  // ---- push ------------------------------------------------------------------------------

  #pushAll(name: string): void {
    for (const peer of this.#peers()) {
      let q = this.#queues.get(peer.id);
      if (q === undefined) this.#queues.set(peer.id, q = { names: new Set(), running: false });
      q.names.delete(name);
      q.names.add(name);
      if (!q.running) this.#track(this.#pushWorker(peer.id, q));
    }
  }

  async #pushWorker(peerId: string, q: PushQueue): Promise<void> {
    q.running = true;
    let attempt = 0;
    try {
      while (q.names.size > 0 && !this.#closed) {
        const name = q.names.values().next().value!;
        const peer = this.#servers.get(peerId)?.entry;
        if (peer === undefined || peer.removed) return;
        try {
          await this.#pushOne(peer.url, name);
          q.names.delete(name);
          attempt = 0;
          this.stats.pushes++;
        } catch (e) {
          this.stats.pushFailures++;
          attempt++;
          if (attempt >= MAX_PUSH_ATTEMPTS) {
            this.#o.log(
              `push: ${name} to ${peerId} failed ${attempt} times (${(e as Error).message}); ` +
                "left to anti-entropy",
            );
            q.names.delete(name);
            attempt = 0;
            continue;
          }
          const delay = Math.min(PUSH_BACKOFF_MS * 2 ** (attempt - 1), PUSH_BACKOFF_MAX_MS);
          await this.#sleep(delay);
        }
      }
    } finally {
      q.running = false;
    }
  }

  async #pushOne(url: string, name: string): Promise<void> {
    const src = await this.#exportSource(name);
    if (src === null) return; // replaced or gone: the newer one is queued
    let res;
    try {
      // Read from the stored file into reused buffers: a push holds two lines and a chunk.
      res = await postStream(
        `${url}/_cdn/replicate`,
        this.#authHeaders(WIRE_CONTENT_TYPE),
        (write) => writeObjectStream(src.header, src.body, this.#o.chunkBytes, write),
        AbortSignal.any([AbortSignal.timeout(TRANSFER_TIMEOUT_MS), this.#ac.signal]),
      );
    } finally {
      src.close();
    }
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${res.text.trim()}`);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#ac.signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
  }

  #track(p: Promise<unknown>): void {
    this.#tasks.add(p);
    p.finally(() => this.#tasks.delete(p));
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /**
   * Records this node at `selfUrl`, learns the server list from the seeds and known servers,
   * pulls what they hold that it lacks, then reports ready and starts heartbeating.
   */
  async start(selfUrl: string): Promise<void> {
    this.#selfUrl = new URL(selfUrl).origin;
    const me = this.#servers.get(this.id)?.entry;
    if (me === undefined || me.url !== this.#selfUrl || me.removed) {
      this.#mergeServer({
        id: this.id,
        url: this.#selfUrl,
        version: this.#clock.next(),
        removed: false,
      });
    }
    const answered = await this.#heartbeatRound();
    // A second round reaches the servers the first one taught us.
    const more = await this.#heartbeatRound();
    for (const url of new Set([...answered, ...more])) await this.#sync(url);
    this.#ready = true;
    this.#o.log(
      `replication: ready: ${this.files().length} files, ${this.#peers().length} peers, ` +
        `digest ${this.digest().slice(0, 12)}`,
    );
    const tick = () => {
      if (this.#closed) return;
      const p = this.#heartbeatRound().finally(() => {
        if (!this.#closed) this.#timer = setTimeout(tick, this.#o.heartbeatMs);
      });
      this.#track(p);
    };
    this.#timer = setTimeout(tick, this.#o.heartbeatMs);
  }

  /** Stops heartbeats and transfers, waits for them, closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#ac.abort();
    await Promise.allSettled([...this.#tasks]);
    await Promise.allSettled([...this.#locks.values()]);
    this.#o.db.close();
  }
}

function tombstone(name: string, version: Version): HeldEntry {
  return { name, version, deleted: true, sha256: "", size: 0, contentType: "", mtime: 0, meta: {} };
}

function sameContent(a: HeldEntry, h: ObjectHeader): boolean {
  return a.sha256 === h.sha256 && a.size === h.size && a.contentType === h.contentType &&
    JSON.stringify(sortKeys(a.meta)) === JSON.stringify(sortKeys(h.meta));
}

function sortKeys(o: Record<string, string>): [string, string][] {
  return Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1);
}

/** The response headers of an uploaded file. */
function responseHeaders(e: HeldEntry): [string, string][] {
  return [
    ["content-type", e.contentType],
    ["etag", `"${e.sha256}"`],
    ["last-modified", new Date(e.mtime).toUTCString()],
    ["cache-control", `public, max-age=${UPLOAD_MAX_AGE_SECONDS}`],
    ["x-nearcast-version", `${e.version.ts}-${e.version.node}`],
  ];
}

/** Maps a store failure on an incoming body to a refusal: the sender's fault is a 400. */
function bodyRefusal(e: unknown): Error {
  if (e instanceof Refusal) return e;
  let cause: unknown = e;
  while (cause instanceof Error) {
    if (cause instanceof WireError) return new Refusal(400, `${cause.message}; nothing stored`);
    cause = cause.cause;
  }
  const msg = (e as Error).message ?? String(e);
  if (/does not match expected|ended after|longer than expectedSize|body stream failed/.test(msg)) {
    const short = msg.replace(/^Cannot store "[^"]*": /, "").replace(/ \(temporary file .*\)$/, "");
    return new Refusal(400, `${short}; nothing stored`);
  }
  return e as Error;
}

async function drain(body: ReadableStream<Uint8Array> | null): Promise<void> {
  if (body === null) return;
  for await (const _ of body) { /* discard */ }
}

function sameSecret(given: string, token: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(token);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}

function serverUrl(v: unknown): string | null {
  if (typeof v !== "string") return null;
  try {
    const u = new URL(v);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    return u.origin;
  } catch {
    return null;
  }
}

function json(v: unknown, status = 200): Response {
  return Response.json(v, { status, headers: { "cache-control": "no-store" } });
}

function text(status: number, message: string, extra: [string, string][] = []): Response {
  return new Response(`${status}: ${message}\n`, {
    status,
    headers: [
      ["content-type", "text/plain; charset=utf-8"],
      ["cache-control", "no-store"],
      ...extra,
    ],
  });
}
