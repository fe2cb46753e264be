/**
 * Start-up catch-up: a node is ready once every entry that the peers which answered at start
 * listed is held here (verified by the store), or those peers stopped answering. Syncs are
 * repeated, with backoff, until one of the two holds; `/_cdn/health` shows how it stands.
 *
 * @module
 */

import type { AntiEntropy, SyncResult } from "./sync.ts";
import { sleep } from "./push.ts";

/** First delay before repeating a catch-up round with files still missing; doubled per round. */
export const CATCH_UP_BACKOFF_MS = 100;
/** Longest delay between catch-up rounds. */
export const CATCH_UP_BACKOFF_MAX_MS = 5_000;

/** What `/_cdn/health` shows of the catch-up. */
export interface CatchUpView {
  /** `syncing` until ready, then `done`. */
  state: "syncing" | "done";
  /** Peers that answered at start. */
  peers: number;
  /** Entries those peers list that are not held here yet. */
  missing: number;
  /**
   * Known servers that did not answer at start, or answered then but not during the catch-up:
   * files only they hold may be missing.
   */
  unreachable: string[];
  /** Rounds run. */
  rounds: number;
  /** The last failure, if any. */
  lastError: string | null;
}

/** See the module doc. */
export class CatchUp {
  done = false;
  #view: CatchUpView = {
    state: "syncing",
    peers: 0,
    missing: 0,
    unreachable: [],
    rounds: 0,
    lastError: null,
  };
  #running: Promise<void> | null = null;

  constructor(
    private readonly sync: AntiEntropy,
    private readonly signal: AbortSignal,
    private readonly log: (line: string) => void,
  ) {}

  /** How it stands. */
  view(): CatchUpView {
    return { ...this.#view, unreachable: [...this.#view.unreachable] };
  }

  /**
   * Runs the catch-up with the peers that answered (`url`, `id`); `silent` are the known
   * servers that did not answer (shown as unreachable). Resolves when ready.
   */
  run(answered: { url: string; id: string }[], silent: string[] = []): Promise<void> {
    this.#view.unreachable = [...silent];
    this.#running = this.#run(answered);
    return this.#running;
  }

  /** Resolves when a running catch-up has ended. */
  async idle(): Promise<void> {
    await this.#running;
  }

  async #run(answered: { url: string; id: string }[]): Promise<void> {
    const peers = new Map(answered.map((a) => [a.url, a.id]));
    const v = this.#view;
    v.peers = peers.size;
    let pending = [...peers];
    let delay = CATCH_UP_BACKOFF_MS;
    while (pending.length > 0 && !this.signal.aborted) {
      v.rounds++;
      const results: [string, string, SyncResult][] = await Promise.all(
        pending.map(async ([url, id]) =>
          [url, id, await this.sync.sync(url, id)] as [string, string, SyncResult]
        ),
      );
      v.missing = 0;
      pending = [];
      for (const [url, id, r] of results) {
        if (r.error !== null) v.lastError = r.error;
        if (!r.reachable) {
          if (!v.unreachable.includes(url)) v.unreachable.push(url);
          continue;
        }
        v.unreachable = v.unreachable.filter((u) => u !== url);
        if (r.missing.length > 0) {
          v.missing += r.missing.length;
          pending.push([url, id]);
        }
      }
      if (pending.length === 0) break;
      this.log(
        `replication: catching up: ${v.missing} entries still missing after round ${v.rounds}` +
          ` (${v.lastError ?? "no error"}); again in ${delay} ms`,
      );
      await sleep(delay, this.signal);
      delay = Math.min(delay * 2, CATCH_UP_BACKOFF_MAX_MS);
    }
    if (this.signal.aborted) return;
    v.state = "done";
    this.done = true;
    if (v.unreachable.length > 0) {
      this.log(`replication: ready without ${v.unreachable.join(", ")} (unreachable)`);
    }
  }
}
