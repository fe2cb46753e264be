/**
 * State-aware TTLs (gdnsd's idea): an answer is cached for as long as it is likely to stay
 * right. The steering engine (`policy.ts`) picks the TTL of each answer by these rules, the
 * shortest winning:
 *
 * | basis | when | TTL |
 * | --- | --- | --- |
 * | `full` | a stable choice | the configured `ttl` |
 * | `measuring` | the best replica's RTT to the client is not measured yet (one is asked for) | `--short-ttl` |
 * | `load` | a replica of the answer is near its limit (≥ {@link NEAR_LIMIT_FRACTION} of `--overload-rps`) or over it, or an overloaded replica would be in the answer but for its load | `--short-ttl` |
 * | `changing` | the monitor has seen a replica of the answer, or one that would rank in it, start to change state (a late heartbeat, a failed health check, a pending check) | the shorter of `--short-ttl` and the seconds until the monitor's next possible state change of that replica (rounded up, at least 1) |
 *
 * So a TTL never outlives the monitor's next possible state change by more than the rounding
 * to whole seconds. A replica with nothing against it (heartbeats on time, its last health check
 * passed) has no state change under way: its answers carry the full TTL, and if it crashes,
 * clients that cached it keep it for up to that TTL (the monitor notices within three heartbeat
 * intervals; the next answers leave it out).
 *
 * @module
 */

import type { ReplicaScore } from "./explanation.ts";

/** Load at which a replica is "near its limit": its answers get the short TTL and a spill. */
export const NEAR_LIMIT_FRACTION = 0.8;

/** What the monitor knows of a replica's state (the live registry; a static config has none). */
export interface StateSource {
  /**
   * Milliseconds until the monitor's next possible state change of replica `id`, given what it
   * has seen (a late heartbeat, a failed check, a pending check); Infinity when nothing is under
   * way (or the id is unknown). Allocates nothing.
   */
  nextChangeMs(id: string): number;
  /** Why a state change is under way, for `/explain` (e.g. "heartbeat late (2100 ms)"); "" if none. */
  changeReason(id: string): string;
}

/** Why an answer's TTL is what it is. */
export const TTL_BASES = ["full", "measuring", "load", "changing"] as const;
export type TtlBasis = (typeof TTL_BASES)[number];
export const FULL = 0, MEASURING = 1, LOAD = 2, CHANGING = 3;

/** The TTL of an answer while a state change is under way `nextMs` from now. */
export function changingTtl(nextMs: number, shortTtl: number): number {
  return Math.min(shortTtl, Math.max(1, Math.ceil(nextMs / 1000)));
}

/** What `/explain` says about the TTL. */
export interface TtlExplanation {
  /** The TTL the answer carries (the configured one when `full` and it is known), or null. */
  ttl: number | null;
  basis: TtlBasis;
  /** The replica whose load or state shortened it, or null. */
  replica: string | null;
  /** `changing`: ms until the monitor's next possible state change of that replica. */
  nextChangeMs: number | null;
  reason: string;
}

/**
 * `/explain`'s account of a TTL: `basis`, the replica that set it (its explanation line),
 * `t.ttl` the engine's (-1: the configured one, `t.full` when known), `t.next` its next change.
 */
export function explainTtl(
  basis: TtlBasis,
  l: ReplicaScore | null,
  t: { ttl: number; full: number | null; short: number; next: number },
): TtlExplanation {
  const detail = l === null
    ? ""
    : basis === "load"
    ? `${l.overloaded ? "overloaded" : "near its limit"} (${l.rps ?? 0} requests/s)`
    : l.stateChange ?? "";
  return {
    ttl: t.ttl === -1 ? t.full : t.full === null ? t.ttl : Math.min(t.ttl, t.full),
    basis,
    replica: l?.id ?? null,
    nextChangeMs: basis === "changing" && t.next !== Infinity ? Math.round(t.next) : null,
    reason: ttlReason(basis, l?.id ?? null, detail, t.short),
  };
}

/** The sentence `/explain` gives for a TTL. */
function ttlReason(
  basis: TtlBasis,
  replica: string | null,
  detail: string,
  shortTtl: number,
): string {
  switch (basis) {
    case "full":
      return "a stable choice: the configured TTL";
    case "measuring":
      return `the client's RTT is being measured: the short TTL (${shortTtl} s)`;
    case "load":
      return `${replica} is ${detail}: the short TTL (${shortTtl} s)`;
    case "changing":
      return `${replica} is changing state (${detail}): the TTL ends with the monitor's next ` +
        `possible state change (at most the short TTL, ${shortTtl} s)`;
  }
}
