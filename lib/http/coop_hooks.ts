/**
 * Where cooperative caching (`--coop`, lib/coop/) plugs into the request path: which members
 * a miss asks (and whether it asks one to fill the object for it), whether a copy filled from
 * a member is kept, and which member requests a replica fills instead of answering 504.
 *
 * @module
 */

/** Header of a member request asking the member to fill the object if it does not hold it. */
export const COOP_FILL_HEADER = "x-nearcast-coop-fill";

/** The members a miss asks. */
export interface CoopRoute {
  /** Member base URLs, in order of preference. */
  peers: string[];
  /** Ask them with {@link COOP_FILL_HEADER}: they fill from the origin when they miss. */
  fill: boolean;
}

/** The hooks (see the module doc); every one is asked on the miss path only. */
export interface CoopHooks {
  /** The members to ask for `url`, or null for the default choice (peer_select.ts). */
  route(url: string, req: Request): CoopRoute | null;
  /**
   * Whether a copy of `url` filled from a member for `req` is stored here; `streamed` (a body
   * of 1 MiB or more, written to the store as it arrives) is stored whatever the answer.
   */
  keepCopy(url: string, req: Request, streamed: boolean): boolean;
  /**
   * The fill from a member for which {@link keepCopy} was asked has ended (its entry stored,
   * or not): until then the copy is counted as being stored.
   */
  copyDone(url: string): void;
  /** Whether `req` may be filled from members only, never the origin (a prefetch). */
  peersOnly(req: Request): boolean;
  /** Whether this replica fills `req`, a member's request with {@link COOP_FILL_HEADER}. */
  fillsFor(req: Request): boolean;
}
