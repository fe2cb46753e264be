/**
 * Anti-entropy: compares another node's manifest with what is held and pulls every entry that
 * is newer there (bounded concurrency). One sync per node runs at a time; asking for a sync
 * that is running joins it. The result says whether the node answered and what is still
 * missing, which is what start-up readiness waits on.
 *
 * @module
 */

import { decodeObjectStreamAs } from "../wire/object_stream.ts";
import { bodyEncoding, type WireEncoding } from "../wire/encoding.ts";
import { checkHeader, nameError } from "../upload/validate.ts";
import type { HeldState, VersionedHeader } from "./state.ts";
import type { PeerAuth } from "./peer_auth.ts";
import { futureVersionError, objectDigest } from "./trust.ts";
import type { Version } from "./version.ts";

/** Objects pulled at once while catching up: enough to hide latency, few enough to bound memory. */
export const PULL_CONCURRENCY = 4;
/** Longest a push or pull of one object may take (a 1 GiB body on a slow link). */
export const TRANSFER_TIMEOUT_MS = 30 * 60_000;

/** How one sync with a node ended. */
export interface SyncResult {
  /** The node answered with a signed manifest. */
  reachable: boolean;
  /** Names it lists newer than held here that are still not held after the pulls. */
  missing: string[];
  /** Why it was unreachable, or the last pull failure. */
  error: string | null;
}

/** Options of {@link AntiEntropy}. */
export interface AntiEntropyOptions {
  state: HeldState;
  auth: PeerAuth;
  requestTimeoutMs: number;
  maxUploadBytes: number;
  signal: AbortSignal;
  now: () => number;
  log: (line: string) => void;
  onPulled: () => void;
  /** Encoding asked for (manifests, pulls); either is accepted. */
  wire: WireEncoding;
}

/** See the module doc. */
export class AntiEntropy {
  #o: AntiEntropyOptions;
  #running = new Map<string, Promise<SyncResult>>();
  #pulling = new Map<string, Promise<string | null>>();

  constructor(o: AntiEntropyOptions) {
    this.#o = o;
  }

  /** Syncs with the node at `url` (`expect`: its id when known); joins a sync running. */
  sync(url: string, expect?: string): Promise<SyncResult> {
    let p = this.#running.get(url);
    if (p === undefined) {
      p = this.#sync(url, expect).finally(() => this.#running.delete(url));
      this.#running.set(url, p);
    }
    return p;
  }

  /** Resolves when every sync running now has ended. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#running.values(), ...this.#pulling.values()]);
  }

  async #sync(url: string, expect?: string): Promise<SyncResult> {
    const { state, auth, signal } = this.#o;
    let entries: unknown[];
    try {
      const m = await auth.json(url, "/_cdn/manifest", {
        method: "GET",
        signal: AbortSignal.any([AbortSignal.timeout(this.#o.requestTimeoutMs), signal]),
        expect,
        wire: this.#o.wire,
        kind: "manifest",
      });
      if (m.status !== 200) {
        return { reachable: false, missing: [], error: `manifest answered ${m.status}` };
      }
      entries = Array.isArray(m.value.entries) ? m.value.entries : [];
    } catch (e) {
      if (signal.aborted) return { reachable: false, missing: [], error: "closing" };
      this.#o.log(`sync: ${url}: ${(e as Error).message}`);
      return { reachable: false, missing: [], error: (e as Error).message };
    }
    const now = this.#o.now();
    const wanted: { name: string; version: Version }[] = [];
    for (const raw of entries) {
      const e = raw as { name?: unknown; version?: Version; size?: unknown; deleted?: unknown };
      if (
        nameError(e?.name) !== null || !Number.isSafeInteger(e.version?.ts) ||
        typeof e.version?.node !== "string"
      ) {
        this.#o.log(`sync: ${url}: skipped a malformed manifest entry: ${JSON.stringify(raw)}`);
        continue;
      }
      const future = futureVersionError(e.version!, now);
      if (future !== null) {
        this.#o.log(`sync: ${url}: skipped ${e.name}: ${future}`);
        continue;
      }
      if (!e.deleted && typeof e.size === "number" && e.size > this.#o.maxUploadBytes) {
        this.#o.log(`sync: ${url}: skipped ${e.name}: ${e.size} bytes is over this node's limit`);
        continue;
      }
      if (!state.hasAtLeast(e.name as string, e.version!)) {
        wanted.push({ name: e.name as string, version: e.version! });
      }
    }
    let error: string | null = null;
    let next = 0;
    const worker = async () => {
      while (next < wanted.length && !signal.aborted) {
        const w = wanted[next++];
        // A name being received right now (a push) is not pulled a second time.
        await state.settled(w.name);
        if (state.hasAtLeast(w.name, w.version)) continue;
        const err = await this.pull(url, w.name, expect);
        if (err !== null) error = err;
      }
    };
    await Promise.all(Array.from({ length: PULL_CONCURRENCY }, worker));
    const missing = wanted.filter((w) => !state.hasAtLeast(w.name, w.version)).map((w) => w.name);
    return { reachable: true, missing, error };
  }

  /** Pulls `name` from `url`; resolves with null when done or stale, else why it failed. */
  pull(url: string, name: string, expect?: string): Promise<string | null> {
    let p = this.#pulling.get(name);
    if (p === undefined) {
      p = this.#pull(url, name, expect).finally(() => this.#pulling.delete(name));
      this.#pulling.set(name, p);
    }
    return p;
  }

  async #pull(url: string, name: string, expect?: string): Promise<string | null> {
    const { auth, state, signal } = this.#o;
    try {
      const a = await auth.call(url, `/_cdn/export?name=${encodeURIComponent(name)}`, {
        method: "GET",
        signal: AbortSignal.any([AbortSignal.timeout(TRANSFER_TIMEOUT_MS), signal]),
        expect,
        wire: this.#o.wire,
      });
      if (a.status !== 200 || a.body === null) {
        await a.body?.cancel();
        return `export of ${name} answered ${a.status}`;
      }
      const d = await decodeObjectStreamAs(bodyEncoding(a.headers), a.body, {
        reuseBuffers: true,
      });
      const h = checkHeader(d.header, true);
      if (typeof h === "string" || objectDigest(h) !== a.digest) {
        await d.body.cancel();
        throw new Error(
          typeof h === "string"
            ? `bad export header: ${h}`
            : "export header differs from its signed digest",
        );
      }
      const future = futureVersionError(h.version!, this.#o.now());
      if (future !== null) {
        await d.body.cancel();
        throw new Error(future);
      }
      const r = await state.apply(h as VersionedHeader, d.body, "cancel");
      if (r === "applied") {
        this.#o.onPulled();
        this.#o.log(`sync: pulled ${h.deleted ? "tombstone of " : ""}${name} from ${url}`);
      }
      return null;
    } catch (e) {
      if (signal.aborted) return "closing";
      const msg = `pull of ${name} from ${url} failed: ${(e as Error).message}`;
      this.#o.log(`sync: ${msg}`);
      return msg;
    }
  }
}
