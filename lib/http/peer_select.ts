/**
 * Which peers a miss asks: every static `--peers` URL, plus at most
 * {@link MAX_MEMBER_PEERS} live members of the membership, chosen per URL by rendezvous
 * (highest random weight) hashing, so that misses for one URL go to the same few members
 * however large the membership, and a member joining or leaving moves only its share of URLs.
 *
 * @module
 */
import { fmix32 } from "../cache/hash.ts";

/** Most members of the membership one miss asks (static `--peers` are always asked). */
export const MAX_MEMBER_PEERS = 3;

/** FNV-1a, 32 bits, of `s`'s UTF-16 code units. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche, so that near-equal strings spread.
  return fmix32(h);
}

/**
 * The peer base URLs to ask for `url`: `fixed` first, then the `max` members ranked highest
 * for `url`; duplicates are left out (`members` never lists this node). With cooperative
 * caching (lib/coop/), `holders` (the members whose summary claims `url`, nearest first)
 * replace the ranked members; null leaves the choice to the ranking.
 */
export function selectPeers(
  url: string,
  fixed: readonly string[],
  members: readonly string[],
  max = MAX_MEMBER_PEERS,
  holders: readonly string[] | null = null,
): string[] {
  const out = [...new Set(fixed)];
  const seen = new Set(out);
  if (holders !== null) {
    for (const h of holders) {
      if (!seen.has(h)) out.push(h);
      seen.add(h);
    }
    return out;
  }
  const ranked = [...new Set(members)].filter((m) => !seen.has(m))
    .map((m) => ({ m, w: fnv1a(`${m}\n${url}`) }))
    .sort((a, b) => b.w - a.w || (a.m < b.m ? -1 : 1));
  for (const r of ranked.slice(0, max)) out.push(r.m);
  return out;
}
