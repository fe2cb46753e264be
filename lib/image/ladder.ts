/**
 * The fixed ladder of image variants and the explicit URL parameters that pick a rung.
 *
 * A replica serves an image in a small fixed set of widths (320, 640, 1280 px and the original)
 * and two JPEG quality levels, so a client spraying widths cannot make it compute or cache more
 * than `widths.length + 1` × `qualities.length` × formats variants of an image. `?w=`, `?q=` and
 * `?fmt=` (jpeg, png, webp) must name a rung: `?w=640` works, `?w=641` is a 400 with the allowed values.
 *
 * @example
 * ```ts
 * import { DEFAULT_LADDER, parseImageParams } from "./ladder.ts";
 *
 * const ok = parseImageParams(new URL("http://cdn.test/a.jpg?w=640&q=50"), DEFAULT_LADDER);
 * if (!ok.ok || ok.params.width !== 640 || ok.params.quality !== 50) throw new Error("640, q50");
 * const bad = parseImageParams(new URL("http://cdn.test/a.jpg?w=641"), DEFAULT_LADDER);
 * if (bad.ok) throw new Error("641 is not on the ladder");
 * ```
 *
 * @module
 */
import type { OutputFormat } from "./probe.ts";

/** The ladder: widths in px (ascending; the original is always a rung too) and qualities. */
export interface Ladder {
  /** Downscaled widths, ascending. Default 320, 640, 1280. */
  readonly widths: readonly number[];
  /** JPEG quality of the normal and the reduced level. Default 80 and 50. */
  readonly qualities: readonly [normal: number, reduced: number];
}

/** The default ladder. */
export const DEFAULT_LADDER: Ladder = { widths: [320, 640, 1280], qualities: [80, 50] };

/** Output formats a client may ask for with `?fmt=`. */
export const FORMATS: readonly OutputFormat[] = ["jpeg", "png", "webp"];

/** Checks a ladder from configuration; throws `RangeError` naming what is wrong. */
export function checkLadder(l: Ladder): Ladder {
  const w = l.widths;
  if (w.length === 0 || w.length > 8) {
    throw new RangeError(`Cannot use image ladder: 1 to 8 widths: received ${w.length}`);
  }
  for (let i = 0; i < w.length; i++) {
    if (!Number.isInteger(w[i]) || w[i] < 16 || w[i] > 8192 || (i > 0 && w[i] <= w[i - 1])) {
      throw new RangeError(
        `Cannot use image ladder: widths must be ascending integers from 16 to 8192: received ${
          w.join(",")
        }`,
      );
    }
  }
  for (const q of l.qualities) {
    if (!Number.isInteger(q) || q < 1 || q > 100) {
      throw new RangeError(`Cannot use image ladder: qualities must be 1 to 100: received ${q}`);
    }
  }
  return l;
}

/** What the URL asked for; absent fields are left to the server's choice. */
export interface ImageParams {
  /** A ladder width, or `"original"` (`?w=orig`). */
  width?: number | "original";
  quality?: number;
  format?: OutputFormat;
}

/** The parsed parameters, or a 400 message. */
export type ParamsResult = { ok: true; params: ImageParams } | { ok: false; message: string };

/** Reads `?w=`, `?q=` and `?fmt=` (each at most once) against the ladder. */
export function parseImageParams(url: URL, ladder: Ladder): ParamsResult {
  const params: ImageParams = {};
  const q = url.searchParams;
  for (const name of ["w", "q", "fmt"]) {
    if (q.getAll(name).length > 1) return { ok: false, message: `?${name}= given more than once` };
  }
  const w = q.get("w");
  if (w !== null) {
    if (w === "orig") params.width = "original";
    else if (/^[1-9][0-9]{0,4}$/.test(w) && ladder.widths.includes(Number(w))) {
      params.width = Number(w);
    } else {
      return {
        ok: false,
        message: `?w= must be one of ${ladder.widths.join(", ")} or orig: received ${clip(w)}`,
      };
    }
  }
  const quality = q.get("q");
  if (quality !== null) {
    if (/^[1-9][0-9]{0,2}$/.test(quality) && ladder.qualities.includes(Number(quality))) {
      params.quality = Number(quality);
    } else {
      return {
        ok: false,
        message: `?q= must be one of ${ladder.qualities.join(", ")}: received ${clip(quality)}`,
      };
    }
  }
  const fmt = q.get("fmt");
  if (fmt !== null) {
    const f = fmt === "jpg" ? "jpeg" : fmt;
    if (!(FORMATS as readonly string[]).includes(f)) {
      return { ok: false, message: `?fmt= must be one of jpeg, png, webp: received ${clip(fmt)}` };
    }
    params.format = f as OutputFormat;
  }
  return { ok: true, params };
}

/** A client value quoted in an error, cut short. */
function clip(v: string): string {
  return JSON.stringify(v.length > 32 ? `${v.slice(0, 32)}…` : v);
}

/** The smallest ladder width ≥ `needed` px, or `"original"` when none is (or it is ≥ source). */
export function rungFor(needed: number, sourceWidth: number, ladder: Ladder): number | "original" {
  for (const w of ladder.widths) {
    if (w >= sourceWidth) return "original";
    if (w >= needed) return w;
  }
  return "original";
}
