/**
 * What `/explain` returns ({@link Explanation}): the steering engine's decision for a client,
 * with every replica's score and why the answer and its TTL are what they are.
 *
 * @module
 */
import type { PolicyName, Weights } from "./policy.ts";
import type { Selection } from "./steering.ts";
import type { PriceBasis } from "./price_term.ts";
import type { TtlExplanation } from "./ttl.ts";

/** What an answer's first replica was ranked on (`/explain`'s `basis`, metrics' label). */
export const BASES = ["measured", "geo", "load", "none"] as const;
export type Basis = (typeof BASES)[number];

/** One replica's line in an explanation. */
export interface ReplicaScore {
  id: string;
  live: boolean;
  eligible: boolean;
  rank: number | null;
  score: number | null;
  basis: Basis;
  rttMs: number | null;
  rttSamples: number;
  rttAgeMs: number | null;
  distanceKm: number | null;
  rps: number | null;
  overloaded: boolean;
  /** Load at or above {@link NEAR_LIMIT_FRACTION} of the overload threshold (not over it). */
  nearLimit: boolean;
  /** Why its state is changing (late heartbeat, failed check, pending check), or null. */
  stateChange: string | null;
  /** Ms until the monitor's next possible state change of it, or null when none is under way. */
  nextChangeMs: number | null;
  /** The RTT the mode used: measured, estimated from distance, or the unknown default. */
  latencyMs: number | null;
  provider: string;
  /** Why the replica has or lacks a price. */
  price: PriceBasis;
  costPerGiB: number | null;
  currency: string;
  /** `balanced`: the price's part of the score (price weight × cost / 0.10); else null. */
  priceTerm: number | null;
  /** `balanced` with a bound: whether its RTT is within it; else null. */
  withinBound: boolean | null;
}

/** What `SteeringEngine.explain` (`policy.ts`) returns. */
export interface Explanation {
  client: string;
  subnet: string;
  policy: PolicyName;
  location: { lat: number; lon: number } | null;
  /** Ids `select` answers with, best first. */
  answer: string[];
  how: Selection["how"];
  /** The shortened TTL of the answer, or null for the configured one. */
  ttl: number | null;
  /** Why the TTL is what it is (`ttl.ts`). */
  ttlWhy: TtlExplanation;
  /** The spill address appended because the first replica is near its limit, or null. */
  spill: string | null;
  /** ECS SCOPE PREFIX-LENGTH of the answer. */
  scope: number;
  reason: string;
  /** The weights (`balanced`) and latency bound in use. */
  weights: Weights;
  maxExtraMs: number | null;
  /** The pricing service's state: configured, reachable, the version of its prices. */
  prices: { source: boolean; healthy: boolean | null; version: number | string | null };
  replicas: ReplicaScore[];
}
