/**
 * Defaults, limits and validation of the LFRU options, shared by the TypeScript reference and
 * the WASM adapter so that both run exactly the same policy.
 *
 * @module
 */
import type { LfruOptions } from "./types.ts";

/** Largest entry size: records store sizes as u32. */
export const MAX_ENTRY_BYTES = 0xffff_ffff;
/** Largest budget: byte counts are kept in f64, exact up to 2^53. */
export const MAX_BUDGET_BYTES = Number.MAX_SAFE_INTEGER;
/** Smallest and largest entry capacity: slots are i32 and the WASM memory is 4 GiB at most. */
export const MIN_CAPACITY = 16;
export const MAX_CAPACITY = 1 << 24;
/** Requests per `requests` batch: the WASM module's static input and result regions. */
export const BATCH_MAX = 1024;
/** Result flag of a batched miss that was stored. */
export const BATCH_STORED = 0x4000_0000;

/** Below this many entries the aging period does not shrink further (warm-up). */
export const MIN_SAMPLE_ENTRIES = 16;

/**
 * Hill climbing of the window share (Caffeine's constants): one sample per 10 × entries
 * `get`s; the first step is 6.25 % of the budget (toward a smaller window), each later one
 * 0.98 × the last, back to 6.25 % when the hit ratio moves by 5 points between samples.
 */
export const CLIMB_SAMPLE_FACTOR = 10;
export const CLIMB_STEP = 0.0625;
export const CLIMB_STEP_DECAY = 0.98;
export const CLIMB_RESTART = 0.05;
/**
 * The adaptive window's share never goes below 1 % of the budget: on stationary skewed traffic
 * the ghost rule otherwise drives it to ~0.1 % at 10 % of the footprint, where a window
 * would still win.
 */
export const MIN_WINDOW = 0.01;
/** Probation entries a larger candidate's duel sums at most (it is refused beyond). */
export const DUEL_SCAN = 64;
/**
 * Graded second sight: a new key larger than the mean entry waits for one more request per
 * factor SIGHT_STEP of its size above the mean (chosen with `deno task sim` among 2, 4 and 8
 * and size^(1/4), size^(1/3), size^(1/2): docs/notes/lfru.md).
 */
export const SIGHT_STEP = 4;

/** Every option resolved to a number. */
export interface ResolvedLfruOptions {
  windowFraction: number;
  adaptive: boolean;
  protectedFraction: number;
  sampleFactor: number;
  maxFrequency: number;
  victimScan: number;
  initialCapacity: number;
}

/** Defaults, chosen with `deno task sim` on the six reference traces (docs/notes/lfru.md). */
export const DEFAULT_LFRU_OPTIONS: Readonly<ResolvedLfruOptions> = Object.freeze({
  windowFraction: 0.01,
  adaptive: true,
  protectedFraction: 0.95,
  sampleFactor: 20,
  maxFrequency: 15,
  victimScan: 16,
  initialCapacity: 256,
});

function check(
  what: string,
  value: number,
  min: number,
  max: number,
  integer: boolean,
): number {
  if (typeof value !== "number") {
    throw new TypeError(`Cannot create cache index: ${what} must be a number: received ${value}`);
  }
  if (!(value >= min && value <= max) || (integer && !Number.isInteger(value))) {
    const kind = integer ? "an integer" : "a number";
    throw new RangeError(
      `Cannot create cache index: ${what} must be ${kind} in [${min}, ${max}]: received ${value}`,
    );
  }
  return value;
}

/** Validates the budget; throws RangeError unless it is a positive safe integer. */
export function checkBudget(budgetBytes: number): number {
  if (!Number.isSafeInteger(budgetBytes) || budgetBytes <= 0) {
    throw new RangeError(
      `Cannot create cache index: budget must be a positive integer: received ${budgetBytes}`,
    );
  }
  return budgetBytes;
}

/** Resolves the options over the defaults; throws on a value out of range. */
export function resolveOptions(options: LfruOptions = {}): ResolvedLfruOptions {
  const o = { ...DEFAULT_LFRU_OPTIONS };
  if (options.windowFraction !== undefined) {
    o.windowFraction = check("windowFraction", options.windowFraction, 0, 1, false);
  }
  if (options.adaptive !== undefined) {
    if (typeof options.adaptive !== "boolean") {
      throw new TypeError(
        `Cannot create cache index: adaptive must be a boolean: received ${options.adaptive}`,
      );
    }
    o.adaptive = options.adaptive;
  }
  if (options.protectedFraction !== undefined) {
    o.protectedFraction = check("protectedFraction", options.protectedFraction, 0, 1, false);
  }
  if (options.sampleFactor !== undefined) {
    o.sampleFactor = check("sampleFactor", options.sampleFactor, 1, 1e6, false);
  }
  if (options.maxFrequency !== undefined) {
    o.maxFrequency = check("maxFrequency", options.maxFrequency, 1, 255, true);
  }
  if (options.victimScan !== undefined) {
    o.victimScan = check("victimScan", options.victimScan, 1, 64, true);
  }
  if (options.initialCapacity !== undefined) {
    o.initialCapacity = check(
      "initialCapacity",
      options.initialCapacity,
      MIN_CAPACITY,
      MAX_CAPACITY,
      true,
    );
  }
  return o;
}

/** Validates an entry size; throws RangeError unless it is an integer in [0, MAX_ENTRY_BYTES]. */
export function checkSize(size: number): void {
  if (!(Number.isInteger(size) && size >= 0 && size <= MAX_ENTRY_BYTES)) {
    throw new RangeError(
      `Cannot set cache entry: size must be an integer in [0, ${MAX_ENTRY_BYTES}]: received ${size}`,
    );
  }
}

/** Smallest power of two ≥ n. */
export function pow2AtLeast(n: number): number {
  let c = 1;
  while (c < n) c *= 2;
  return c;
}

/** Validates a batch length; throws RangeError unless it is an integer in [0, BATCH_MAX]. */
export function checkBatch(n: number): void {
  if (!(Number.isInteger(n) && n >= 0 && n <= BATCH_MAX)) {
    throw new RangeError(
      `Cannot run cache requests: batch length must be an integer in [0, ${BATCH_MAX}]: received ${n}`,
    );
  }
}
