/**
 * Small helpers of the wire experiment: repeated timing with min/median/max, formatting.
 *
 * @module
 */

/** min, median and max of some samples. */
export interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

/** The spread of `xs` (non-empty). */
export function spread(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { min: s[0], median, max: s[s.length - 1], n: s.length };
}

/** `median (min–max)` with `digits` decimals. */
export function fmt(s: Spread, digits = 2): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** Bytes as a short human figure (B, KiB, MiB). */
export function bytes(n: number): string {
  if (n < 10 * 1024) return `${n} B`;
  if (n < 10 * 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/** Peak resident set of a process so far, bytes (Linux `VmHWM`), or null once it is gone. */
export function peakRss(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}
