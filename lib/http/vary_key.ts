/**
 * Normalisation of the request header values a `Vary` names, for the cache key (RFC 9111
 * §4.1 lets a cache normalise them): requests that differ only in list whitespace, letter case
 * or list order of the content-negotiation headers share one stored variant.
 *
 * @module
 */

/**
 * Headers whose members are case-insensitive and whose order carries no preference (only
 * their `q` weights do, RFC 9110 §12.4.2): members are lower-cased, weighted `q` normalised
 * and sorted by weight, then alphabetically.
 */
export const NEGOTIATION_HEADERS: ReadonlySet<string> = new Set([
  "accept",
  "accept-charset",
  "accept-encoding",
  "accept-language",
]);

/** Splits a list value on commas outside quoted strings; members trimmed, empty ones dropped. */
export function listMembers(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i <= value.length; i++) {
    const c = value[i];
    if (c === '"') quoted = !quoted;
    else if (c === "\\" && quoted) i++;
    else if (i === value.length || (c === "," && !quoted)) {
      const m = value.slice(start, i).trim().replace(/\s+/g, " ");
      if (m !== "") out.push(m);
      start = i + 1;
    }
  }
  return out;
}

/** One negotiation member lower-cased, parameters without spaces, and its weight. */
function weighted(member: string): { text: string; q: number } {
  const parts = member.toLowerCase().split(";").map((p) => p.trim().replace(/\s*=\s*/, "="));
  let q = 1;
  const kept = [parts[0]];
  for (const p of parts.slice(1)) {
    const m = /^q=([0-9](?:\.[0-9]{0,3})?)$/.exec(p);
    if (m !== null) q = Number(m[1]);
    else if (p !== "") kept.push(p);
  }
  if (q !== 1) kept.push(`q=${q}`);
  return { text: kept.join(";"), q };
}

/**
 * The value of request header `name` (lower case) as it goes into the cache key: list members
 * trimmed, inner whitespace runs collapsed, joined with `,`; for {@link NEGOTIATION_HEADERS}
 * also lower-cased, `q=1` dropped, weights written shortest (`q=0.80` is `q=0.8`), and sorted
 * by weight then alphabetically.
 */
export function normaliseVaryValue(name: string, value: string): string {
  const members = listMembers(value);
  if (!NEGOTIATION_HEADERS.has(name)) return members.join(",");
  return members.map(weighted)
    .sort((a, b) => b.q - a.q || (a.text < b.text ? -1 : a.text > b.text ? 1 : 0))
    .map((m) => m.text)
    .join(",");
}
