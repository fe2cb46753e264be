/**
 * Client Hints an image response can use (RFC 8942 and the Client Hints drafts): display hints
 * (`Sec-CH-DPR`, `Sec-CH-Width`, `Sec-CH-Viewport-Width`, and the legacy `DPR`, `Width`,
 * `Viewport-Width`) and network hints (`Save-Data`, `ECT`, `Downlink`, `RTT`). Malformed or
 * out-of-range values are ignored, as if not sent.
 *
 * @example
 * ```ts
 * import { parseClientHints } from "./client_hints.ts";
 *
 * const h = parseClientHints(new Headers({ "sec-ch-dpr": "2", "downlink": "0.4", "save-data": "on" }));
 * if (h.dpr !== 2 || h.downlinkMbps !== 0.4 || !h.saveData) throw new Error("three hints");
 * ```
 *
 * @module
 */

/** Value of `Accept-CH` on image responses (and `Critical-CH` is not sent: no retries). */
export const ACCEPT_CH =
  "Sec-CH-DPR, Sec-CH-Width, Sec-CH-Viewport-Width, Save-Data, ECT, Downlink, RTT";

/** Effective connection types (Network Information API), slowest first. */
export const ECT_VALUES = ["slow-2g", "2g", "3g", "4g"] as const;
export type Ect = typeof ECT_VALUES[number];

/** The hints a request carried; a field is absent when its header was absent or malformed. */
export interface ClientHints {
  /** Device pixel ratio, 0.1 to 10. */
  dpr?: number;
  /** Intended display width of the image in physical px (`Sec-CH-Width` / `Width`). */
  width?: number;
  /** Layout viewport width in CSS px. */
  viewportWidth?: number;
  saveData?: boolean;
  ect?: Ect;
  /** Estimated downlink in Mbit/s (the browser rounds to 25 kbit/s). */
  downlinkMbps?: number;
  /** Estimated round-trip time in ms (the browser rounds to 25 ms). */
  rttMs?: number;
  /** Header names (lower case) that were present and valid. */
  used: string[];
}

function num(v: string | null, min: number, max: number): number | undefined {
  if (v === null || !/^\s*[0-9]+(\.[0-9]+)?\s*$/.test(v)) return undefined;
  const n = Number(v);
  return n >= min && n <= max ? n : undefined;
}

/** Reads the hints from request headers. */
export function parseClientHints(h: Headers): ClientHints {
  const out: ClientHints = { used: [] };
  const pick = (names: string[], min: number, max: number): number | undefined => {
    for (const name of names) {
      const v = num(h.get(name), min, max);
      if (v !== undefined) {
        out.used.push(name);
        return v;
      }
    }
    return undefined;
  };
  out.dpr = pick(["sec-ch-dpr", "dpr"], 0.1, 10);
  const w = pick(["sec-ch-width", "width"], 1, 100_000);
  out.width = w === undefined ? undefined : Math.round(w);
  const vw = pick(["sec-ch-viewport-width", "viewport-width"], 1, 100_000);
  out.viewportWidth = vw === undefined ? undefined : Math.round(vw);
  out.downlinkMbps = pick(["downlink"], 0, 100_000);
  out.rttMs = pick(["rtt"], 0, 600_000);
  const sd = h.get("save-data");
  if (sd !== null && sd.trim().toLowerCase() === "on") {
    out.saveData = true;
    out.used.push("save-data");
  }
  const ect = h.get("ect")?.trim().toLowerCase();
  if (ect && (ECT_VALUES as readonly string[]).includes(ect)) {
    out.ect = ect as Ect;
    out.used.push("ect");
  }
  for (const k of Object.keys(out) as (keyof ClientHints)[]) {
    if (out[k] === undefined) delete out[k];
  }
  return out;
}
