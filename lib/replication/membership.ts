/**
 * The server list of a node: every node with its URL, public key and a version (newest wins
 * on every node), learned from `--join`/`--servers` seeds, admissions and heartbeats, and kept
 * in the replication database. A removed entry is a tombstone that also revokes its key: an
 * entry with that key never comes back, whatever its version.
 *
 * @module
 */

import type { ReplicationDb, ServerEntry } from "./db.ts";
import { compareVersions, type HybridClock } from "./version.ts";
import { futureVersionError, validPublicKey } from "./trust.ts";
import { serverUrl } from "./_http.ts";
import { MAX_PROVIDER_LENGTH } from "../fleet/protocol.ts";

/** Heartbeats missed before a server is shown as not alive. */
export const MISSED_HEARTBEATS_DEAD = 3;
/** Most entries taken from one list (heartbeat, admission answer). */
export const MAX_LIST_ENTRIES = 10_000;

/** Options of {@link Membership}. */
export interface MembershipOptions {
  selfId: string;
  db: ReplicationDb;
  clock: HybridClock;
  heartbeatMs: number;
  now: () => number;
  log: (line: string) => void;
}

interface Member {
  entry: ServerEntry;
  lastSeen: number | null;
}

/** See the module doc. */
export class Membership {
  /** URLs to contact whose node id is not known yet. */
  readonly seeds = new Set<string>();
  #o: MembershipOptions;
  #members = new Map<string, Member>();

  constructor(o: MembershipOptions) {
    this.#o = o;
    for (const s of o.db.servers()) {
      this.#members.set(s.id, { entry: s, lastSeen: null });
      o.clock.observe(s.version.ts);
    }
  }

  /** The entry of `id`, if listed (removed ones included). */
  get(id: string): ServerEntry | undefined {
    return this.#members.get(id)?.entry;
  }

  /** Every entry, removed ones included. */
  entries(): ServerEntry[] {
    return [...this.#members.values()].map((m) => m.entry);
  }

  /** Live peers: listed, not removed, not this node. */
  peers(): ServerEntry[] {
    return this.entries().filter((e) => !e.removed && e.id !== this.#o.selfId);
  }

  /**
   * Live peers that answered or called within the last {@link MISSED_HEARTBEATS_DEAD}
   * heartbeats (what cache peering asks).
   */
  alivePeers(): ServerEntry[] {
    const deadAfter = this.#o.heartbeatMs * MISSED_HEARTBEATS_DEAD;
    const now = this.#o.now();
    return [...this.#members.values()]
      .filter((m) =>
        !m.entry.removed && m.entry.id !== this.#o.selfId && m.lastSeen !== null &&
        now - m.lastSeen <= deadAfter
      )
      .map((m) => m.entry);
  }

  /** The public key of a listed, not removed node; null otherwise. */
  keyOf(id: string): string | null {
    const e = this.#members.get(id)?.entry;
    return e === undefined || e.removed || e.key === "" ? null : e.key;
  }

  /** True when `id` is listed and not removed, admitted or not (`--node-auth cert`). */
  listed(id: string): boolean {
    const e = this.#members.get(id)?.entry;
    return e !== undefined && !e.removed;
  }

  /** Records that `id` answered or called just now. */
  seen(id: string): void {
    const m = this.#members.get(id);
    if (m !== undefined) m.lastSeen = this.#o.now();
  }

  /**
   * Merges one entry: kept when newer than the listed one, unless it brings back a key that
   * was removed (revoked). Returns true when it changed the list.
   */
  merge(e: ServerEntry): boolean {
    const cur = this.#members.get(e.id);
    if (cur !== undefined && compareVersions(e.version, cur.entry.version) <= 0) return false;
    // An entry that names no key (listed by URL, not admitted yet) keeps the known key.
    if (e.key === "" && cur !== undefined) e = { ...e, key: cur.entry.key };
    // Likewise the provider: only the node itself (or its admission) states it.
    if (!e.provider && cur?.entry.provider) e = { ...e, provider: cur.entry.provider };
    if (cur?.entry.removed && !e.removed && cur.entry.key !== "" && cur.entry.key === e.key) {
      this.#o.log(`servers: ignored ${e.id}: its key was revoked (it must join with a new key)`);
      return false;
    }
    this.#o.clock.observe(e.version.ts);
    this.#o.db.putServer(e);
    this.#members.set(e.id, { entry: e, lastSeen: cur?.lastSeen ?? null });
    this.seeds.delete(e.url);
    return true;
  }

  /** Merges a list received from `from`; malformed or future entries are logged and skipped. */
  mergeList(list: unknown, from: string): void {
    if (!Array.isArray(list)) return;
    if (list.length > MAX_LIST_ENTRIES) {
      this.#o.log(
        `servers: ${from} sent ${list.length} entries; the first ${MAX_LIST_ENTRIES} kept`,
      );
    }
    const now = this.#o.now();
    for (const raw of list.slice(0, MAX_LIST_ENTRIES)) {
      const s = raw as Partial<ServerEntry>;
      const url = serverUrl(s?.url);
      const key = s?.key ?? "";
      const provider = s?.provider ?? "";
      if (
        typeof s?.id !== "string" || s.id === "" || s.id.length > 256 || url === null ||
        !Number.isSafeInteger(s.version?.ts) || typeof s.version?.node !== "string" ||
        (key !== "" && !validPublicKey(key)) || typeof provider !== "string" ||
        provider.length > MAX_PROVIDER_LENGTH
      ) {
        this.#o.log(`servers: skipped a malformed entry from ${from}: ${JSON.stringify(raw)}`);
        continue;
      }
      const future = futureVersionError(s.version!, now);
      if (future !== null) {
        this.#o.log(`servers: skipped ${s.id} from ${from}: ${future}`);
        continue;
      }
      this.merge({ id: s.id, url, version: s.version!, removed: !!s.removed, key, provider });
    }
  }

  /** The list as the API shows it. */
  view(all: boolean): unknown[] {
    const deadAfter = this.#o.heartbeatMs * MISSED_HEARTBEATS_DEAD;
    const now = this.#o.now();
    const self = this.#o.selfId;
    return [...this.#members.values()]
      .filter((m) => all || !m.entry.removed)
      .map((m) => ({
        id: m.entry.id,
        url: m.entry.url,
        provider: m.entry.provider ?? "",
        self: m.entry.id === self,
        alive: m.entry.id === self || (m.lastSeen !== null && now - m.lastSeen <= deadAfter),
        lastSeenMs: m.lastSeen === null ? null : now - m.lastSeen,
        removed: m.entry.removed,
        admitted: m.entry.key !== "",
        version: m.entry.version,
      }));
  }
}
