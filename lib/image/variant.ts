/**
 * Chooses the image variant to serve: a rung of the ladder (width, quality, format) from the
 * explicit URL parameters, the Client Hints, and what the replica measured to the client. Pure:
 * the replica calls it with what it knows and gets the rung, the header values and the cache key.
 *
 * Rules (each overridden by an explicit `?w=`, `?q=`, `?fmt=`):
 * - width: the smallest ladder width covering the display need (`Sec-CH-Width`, else
 *   `Sec-CH-Viewport-Width` × DPR), the original when no rung covers it or no hint says;
 * - constrained link (Save-Data; ECT 3g or slower; Downlink or measured throughput under
 *   5 Mbit/s; RTT hint or measured RTT ≥ 300 ms, Akamai's threshold): the reduced quality, and never
 *   the original, at most the largest rung;
 * - very constrained (Save-Data; ECT 2g or slower; under 1 Mbit/s): at most the second rung.
 *   The throughput bounds are on what a link delivers: a 600 KB photo takes 2.4 s at 2 Mbit/s
 *   and 1 s at 5, and a shaped 0.5 or 2 Mbit/s link measures a little under or over its
 *   nominal rate, so the bounds sit well above those rates (see docs/experiments/images.md);
 * - format: WebP for a downscaled JPEG when `Accept` has `image/webp` (then `Vary: Accept`), else
 *   the source's; `?fmt=` decides when given.
 *
 * Caching (the choice documented in the README): the cache key is the rung, never a raw hint
 * value, so a replica holds at most (widths + 1) × 2 × formats variants of an image. `Vary` names
 * only the display hints and `Save-Data`/`ECT` that were read; `Downlink` and `RTT` (near-continuous
 * values) are never in `Vary`: a response whose choice depended on the network is marked
 * `network: true`, and the server sends it `private` to shared caches instead.
 *
 * @example
 * ```ts
 * import { chooseVariant } from "./variant.ts";
 * import { DEFAULT_LADDER } from "./ladder.ts";
 *
 * const v = chooseVariant({
 *   ladder: DEFAULT_LADDER,
 *   sourceWidth: 1920,
 *   sourceFormat: "jpeg",
 *   params: {},
 *   hints: { viewportWidth: 400, dpr: 1.5, used: ["sec-ch-viewport-width", "sec-ch-dpr"] },
 * });
 * if (v.width !== 640 || v.quality !== 80 || v.header !== "w=640;q=80;fmt=jpeg") throw new Error();
 * ```
 *
 * @module
 */
import type { ClientHints } from "./client_hints.ts";
import { FORMATS, type ImageParams, type Ladder, rungFor } from "./ladder.ts";
import type { ImageFormat, OutputFormat } from "./probe.ts";

/** Below this throughput (bit/s) a link is constrained. */
export const CONSTRAINED_BPS = 5_000_000;
/** Below this throughput (bit/s) a link is very constrained. */
export const VERY_CONSTRAINED_BPS = 1_000_000;
/** At or above this RTT (ms) a link is constrained. */
export const CONSTRAINED_RTT_MS = 300;

/** What the replica knows about one request. */
export interface VariantRequest {
  ladder: Ladder;
  sourceWidth: number;
  sourceFormat: ImageFormat;
  params: ImageParams;
  hints: ClientHints;
  /** The request's `Accept` says `image/webp`. */
  acceptsWebp?: boolean;
  /** Throughput the replica measured to this client's prefix, bit/s (see `throughput.ts`). */
  measuredBps?: number;
  /** RTT the fleet measured to this client's subnet, ms. */
  measuredRttMs?: number;
}

/** The chosen rung and what to send with it. */
export interface Variant {
  width: number | "original";
  quality: number;
  format: OutputFormat;
  /** The link class that was used: "fast", "constrained" or "very constrained". */
  link: "fast" | "constrained" | "very constrained";
  /** True if network hints or measurements decided something (send `private` to shared caches). */
  network: boolean;
  /** Request headers to list in `Vary`. */
  vary: string[];
  /** Value of `X-Nearcast-Variant`, e.g. `w=640;q=50;fmt=jpeg` or `w=orig;q=80;fmt=png`. */
  header: string;
}

const VARY_DISPLAY = ["sec-ch-width", "width", "sec-ch-viewport-width", "viewport-width"];
const VARY_ALWAYS_OK = ["sec-ch-dpr", "dpr", "save-data", "ect"];

function linkClass(r: VariantRequest): [Variant["link"], boolean] {
  const h = r.hints;
  const bps = h.downlinkMbps !== undefined ? h.downlinkMbps * 1e6 : r.measuredBps;
  const rtt = h.rttMs ?? r.measuredRttMs;
  const ect = h.ect;
  const network = bps !== undefined || rtt !== undefined || ect !== undefined ||
    h.saveData === true;
  if (
    h.saveData || ect === "slow-2g" || ect === "2g" ||
    (bps !== undefined && bps < VERY_CONSTRAINED_BPS)
  ) {
    return ["very constrained", network];
  }
  if (
    ect === "3g" || (bps !== undefined && bps < CONSTRAINED_BPS) ||
    (rtt !== undefined && rtt >= CONSTRAINED_RTT_MS)
  ) {
    return ["constrained", network];
  }
  return ["fast", network];
}

/** Chooses the variant for one request. */
export function chooseVariant(r: VariantRequest): Variant {
  const { ladder, hints: h, params: p } = r;
  const [link, network] = linkClass(r);
  const needed = h.width ??
    (h.viewportWidth !== undefined ? Math.ceil(h.viewportWidth * (h.dpr ?? 1)) : undefined);
  let width: number | "original" = needed === undefined
    ? "original"
    : rungFor(needed, r.sourceWidth, ladder);
  const ws = ladder.widths;
  const cap = link === "very constrained"
    ? ws[Math.min(1, ws.length - 1)]
    : link === "constrained"
    ? ws[ws.length - 1]
    : undefined;
  if (cap !== undefined && cap < r.sourceWidth && (width === "original" || width > cap)) {
    width = cap;
  }
  if (p.width !== undefined) {
    width = p.width === "original" || p.width >= r.sourceWidth ? "original" : p.width;
  }
  const quality = p.quality ?? (link === "fast" ? ladder.qualities[0] : ladder.qualities[1]);
  // A downscaled photo goes out as WebP when the client accepts it (1.5–19 % smaller than JPEG
  // at the same quality setting on the bench photo); the original keeps its format, PNG stays PNG.
  const byAccept = p.format === undefined && r.sourceFormat === "jpeg" && width !== "original";
  const format = p.format ?? (byAccept && r.acceptsWebp ? "webp" : r.sourceFormat);
  const vary = h.used.filter((n) => VARY_DISPLAY.includes(n) || VARY_ALWAYS_OK.includes(n));
  if (byAccept) vary.push("accept");
  const header = rungHeader(width, quality, format);
  return {
    width,
    quality,
    format,
    link,
    network: network && p.quality === undefined,
    vary,
    header,
  };
}

/** The `X-Nearcast-Variant` value of a rung, e.g. `w=640;q=50;fmt=jpeg`. */
export function rungHeader(width: number | "original", quality: number, format: string): string {
  return `w=${width === "original" ? "orig" : width};q=${quality};fmt=${format}`;
}

/** A rung: width, quality and format. */
export interface Rung {
  width: number | "original";
  quality: number;
  format: OutputFormat;
}

/**
 * The rungs {@link chooseVariant} can pick for a `sourceWidth` px `sourceFormat` image without
 * explicit parameters (what the background precomputes): every ladder width below the source's
 * and the original, at each quality, in the source's format, and in WebP too for the downscaled
 * widths of a JPEG (picked when `Accept` has `image/webp`). Some are the original's own bytes
 * (the caller skips those).
 */
export function chosenRungs(
  ladder: Ladder,
  sourceWidth: number,
  sourceFormat: ImageFormat,
): Rung[] {
  const out: Rung[] = [];
  for (const width of [...ladder.widths.filter((w) => w < sourceWidth), "original" as const]) {
    const formats: OutputFormat[] = sourceFormat === "jpeg" && width !== "original"
      ? ["jpeg", "webp"]
      : [sourceFormat];
    for (const format of formats) {
      for (const quality of ladder.qualities) out.push({ width, quality, format });
    }
  }
  return out;
}

/** Every rung of `ladder` (every width and the original, every quality, every format). */
export function allRungs(ladder: Ladder): string[] {
  const out: string[] = [];
  for (const w of [...ladder.widths, "original" as const]) {
    for (const q of ladder.qualities) {
      for (const f of FORMATS) out.push(rungHeader(w, q, f));
    }
  }
  return out;
}

/** The cache key of a variant of the object cached under `key`. */
export function variantKey(key: string, v: Variant): string {
  return `${key}\u0000img:${v.header}`;
}
