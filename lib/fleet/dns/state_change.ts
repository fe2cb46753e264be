/**
 * The monitor's next possible state change of a registered replica, from what it has seen
 * (state-aware TTLs, `lib/dns/ttl.ts`): the registry's liveness rules (`registry.ts`) applied to
 * the worst case from now on.
 *
 * | replica | under way | next possible change |
 * | --- | --- | --- |
 * | static, or alive with heartbeats on time and no failed check, or draining | nothing | none |
 * | alive, heartbeat late (over 1.5 intervals) | a health check that kills it if it fails | at the next monitor tick (now when one is running) |
 * | alive, its last health check failed | the next routine check kills it if it fails | that check (5 s after the last) |
 * | pending, or dead with a heartbeat since it died | a health check that makes it alive | the next check (0.5 s after the last; now when one is running) |
 * | dead, no heartbeat since it died | nothing until its heartbeats come back | none |
 *
 * @module
 */
import { MISSED_HEARTBEATS_DEAD } from "../protocol.ts";
import { TICK_MS } from "./monitor.ts";
import {
  type FleetEntry,
  HEALTH_FAILURES_DEAD,
  HEALTH_INTERVAL_MS,
  LATE_FACTOR,
  RECHECK_MS,
} from "./registry.ts";

const STABLE = 0, LATE = 1, FAILING = 2, PENDING = 3, REVIVING = 4;

function kindOf(e: FleetEntry, now: number, intervalMs: number): number {
  if (e.source === "static") return STABLE;
  const age = now - (e.lastHeartbeat ?? e.registeredAt);
  if (e.state === "alive") {
    if (age > LATE_FACTOR * intervalMs) return LATE;
    return e.failures > 0 ? FAILING : STABLE;
  }
  if (e.state === "pending") return PENDING;
  // Drained by the admin: not answered until the admin ends it, whatever its health.
  if (e.state === "draining") return STABLE;
  // Dead: about to change only when a heartbeat came after it died (a check may revive it).
  const back = e.lastHeartbeat !== null && e.lastHeartbeat > e.since;
  return back && age <= MISSED_HEARTBEATS_DEAD * intervalMs ? REVIVING : STABLE;
}

/** Ms until the monitor's next possible state change of `e`; Infinity when none is under way. */
export function nextChangeMs(e: FleetEntry, now: number, intervalMs: number): number {
  const kind = kindOf(e, now, intervalMs);
  if (kind === STABLE) return Infinity;
  if (e.checking) return 0;
  const at = kind === LATE
    ? now + TICK_MS
    : e.lastCheck + (kind === FAILING ? HEALTH_INTERVAL_MS : RECHECK_MS);
  return Math.max(0, at - now);
}

/** Why a state change of `e` is under way ("" when none is). */
export function changeReason(e: FleetEntry, now: number, intervalMs: number): string {
  const age = now - (e.lastHeartbeat ?? e.registeredAt);
  switch (kindOf(e, now, intervalMs)) {
    case LATE:
      return `heartbeat late (${age} ms)`;
    case FAILING:
      return `its last health check failed (${e.failures} of ${HEALTH_FAILURES_DEAD})`;
    case PENDING:
      return "pending: a health check decides whether it is alive";
    case REVIVING:
      return "dead, heartbeating again: a health check may revive it";
    default:
      return "";
  }
}
