/**
 * A process's root page: a small HTML page for a person with a browser (what the process is,
 * its state, links to its JSON and metrics), JSON for everyone else. HTML only when the
 * request's `Accept` names `text/html` (browsers do; curl and `fetch` do not by default).
 *
 * @module
 */

/** What the page shows. */
export interface StatusPage {
  /** e.g. `Nearcast replica a`. */
  title: string;
  /** One sentence: what this process is. */
  what: string;
  /** Name and value rows. */
  state: readonly (readonly [string, string | number | boolean | null])[];
  /** Links: path and what it gives. */
  links: readonly (readonly [string, string])[];
}

/** True when the request's `Accept` names `text/html`. */
export function wantsHtml(req: Request): boolean {
  return /(^|,)\s*text\/html\s*(;|,|$)/i.test(req.headers.get("accept") ?? "");
}

/** `s` with the five HTML specials escaped. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The page as a complete HTML document (no script, no external resource). */
export function statusHtml(p: StatusPage): string {
  const rows = p.state.map(([k, v]) =>
    `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v === null ? "-" : String(v))}</td></tr>`
  ).join("\n");
  const links = p.links.map(([href, label]) =>
    `<li><a href="${escapeHtml(href)}">${escapeHtml(href)}</a> ${escapeHtml(label)}</li>`
  ).join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(p.title)}</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:1.5em;max-width:50em}
th{text-align:left;padding-right:1em;font-weight:600}td,th{vertical-align:top}</style>
</head><body>
<h1>${escapeHtml(p.title)}</h1>
<p>${escapeHtml(p.what)}</p>
<table>
${rows}
</table>
<h2>Links</h2>
<ul>
${links}
</ul>
</body></html>
`;
}

/** HTML for a browser, else `json` (the same facts) as JSON; never cached. */
export function statusResponse(req: Request, p: StatusPage, json: unknown): Response {
  if (wantsHtml(req)) {
    return new Response(req.method === "HEAD" ? null : statusHtml(p), {
      headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
    });
  }
  return Response.json(json, { headers: { "cache-control": "no-store" } });
}
