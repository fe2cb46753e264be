/**
 * The index client's exit codes (`deno task get`), and the failure that carries one.
 *
 * @module
 */
import { StartError } from "../common/cli.ts";

/** Exit codes of `deno task get`, documented in `--help` and the README. */
export const EXIT = {
  /** Saved (and verified when the replica gives a SHA-256). */
  OK: 0,
  /** The output could not be written (permissions, disk full). */
  LOCAL: 1,
  /** Bad command line. */
  USAGE: 2,
  /** No replica holds PATH (the index knows none, or every holder answered 404). */
  NOT_FOUND: 3,
  /** Replicas hold PATH but none of them is live (dead, pending or drained). */
  NO_LIVE_HOLDER: 4,
  /** The bytes do not match the SHA-256 the replica gave: nothing is kept. */
  VERIFY: 5,
  /** The index could not be reached, or no live holder could be downloaded from. */
  NETWORK: 6,
} as const;

/** A failure of the download with its exit code; `runMain` prints it and exits. */
export class GetFailure extends StartError {
  constructor(message: string, exitCode: number) {
    super(message, exitCode);
    this.name = "GetFailure";
  }
}
