/**
 * The replica's cooperative-caching flags (`--coop` and its budgets), parsed into the
 * settings lib/coop/coop.ts takes.
 *
 * @module
 */

import { type Flags, UsageError } from "../common/cli.ts";

/** Default hot objects listed per summary. */
export const DEFAULT_COOP_TOP = 256;
/** Default prefetch bandwidth budget, bytes per second. */
export const DEFAULT_PREFETCH_RATE = 1024 * 1024;

/** The flags, spread into the replica's flag table. */
export const COOP_FLAGS = {
  coop: {
    type: "boolean",
    help: "Cooperative caching with the other members (needs --data): exchange summaries " +
      "of what each holds and what is hot, ask the members that hold an object on a miss, " +
      "prefetch the group's hottest objects. Default off.",
  },
  "coop-top": {
    type: "string",
    arg: "N",
    help: `With --coop: hot objects listed in this node's summary. Default ${DEFAULT_COOP_TOP}.`,
  },
  "coop-prefetch-rate": {
    type: "string",
    arg: "SIZE",
    help: "With --coop: bandwidth budget of prefetches, bytes per second (0: no prefetch). " +
      "Default 1MiB.",
  },
  "coop-prefetch-bytes": {
    type: "string",
    arg: "SIZE",
    help: "With --coop: most bytes of prefetched objects not hit yet held at once. " +
      "Default a sixteenth of --cache-bytes.",
  },
  "coop-copy-bytes": {
    type: "string",
    arg: "SIZE",
    help: "With --coop: most bytes of copies of objects whose home is another member (kept " +
      "when hot here, or prefetched). Default a tenth of --cache-bytes.",
  },
} as const;

/** What `--coop` sets. */
export interface CoopConfig {
  top: number;
  prefetchRate: number;
  prefetchBytes: number;
  copyBytes: number;
}

/** The settings, or null without `--coop` (its other flags then refused). */
export function parseCoopFlags(f: Flags, cacheBytes: number): CoopConfig | null {
  if (!f.bool("coop")) {
    const given = Object.keys(COOP_FLAGS).find((k) => k !== "coop" && f.values[k] !== undefined);
    if (given !== undefined) throw new UsageError(`--${given} needs --coop`);
    return null;
  }
  return {
    top: f.int("coop-top", DEFAULT_COOP_TOP, 0),
    prefetchRate: f.size("coop-prefetch-rate", DEFAULT_PREFETCH_RATE, 0),
    prefetchBytes: f.size("coop-prefetch-bytes", Math.floor(cacheBytes / 16), 0),
    copyBytes: f.size("coop-copy-bytes", Math.floor(cacheBytes / 10), 0),
  };
}
