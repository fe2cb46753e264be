/**
 * Error bodies consistent across processes: every process's own error answer is either text
 * (`404: no such route: /x`) or JSON (`{"error": "no such route: /x"}`), and the client picks
 * by `Accept` (`application/json` or `text/plain`, by q-value); without a preference each
 * process keeps its usual form (text on replicas and the proxy, JSON on the control API and
 * the pricing service). Answers relayed from elsewhere (an origin's, a server's) are never
 * rewritten: only responses marked with {@link ownError} are.
 *
 * @module
 */

const messages = new WeakMap<Response, string>();

/** Marks `res` as this process's error answer carrying `message`; returns it. */
export function ownError(res: Response, message: string): Response {
  messages.set(res, message);
  return res;
}

/** The q-value `accept` gives `type` (exact, `type/*` or `* /*`), or -1 when not named. */
function qOf(accept: string, type: string): number {
  let best = -1, bestSpecificity = -1;
  for (const part of accept.split(",")) {
    const [range, ...params] = part.trim().toLowerCase().split(";");
    const specificity = range === type
      ? 2
      : range === `${type.split("/")[0]}/*`
      ? 1
      : range === "*/*"
      ? 0
      : -1;
    if (specificity <= bestSpecificity) continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    bestSpecificity = specificity;
    best = q === undefined ? 1 : Number(q.slice(2)) || 0;
  }
  return best;
}

/** `json` or `text` when `accept` prefers one of them, else null. */
export function preferredErrorForm(accept: string | null): "json" | "text" | null {
  if (accept === null || accept.trim() === "") return null;
  const json = qOf(accept, "application/json"), text = qOf(accept, "text/plain");
  return json > text ? "json" : text > json ? "text" : null;
}

/** `res` in the form the request's `Accept` prefers, when it is an {@link ownError}. */
export function negotiateError(req: Request, res: Response): Response {
  if (res.status < 400) return res;
  const message = messages.get(res);
  if (message === undefined) return res;
  const want = preferredErrorForm(req.headers.get("accept"));
  const isJson = (res.headers.get("content-type") ?? "").startsWith("application/json");
  if (want === null || (want === "json") === isJson) return res;
  const headers = new Headers(res.headers);
  headers.delete("content-length");
  headers.set("content-type", want === "json" ? "application/json" : "text/plain; charset=utf-8");
  const body = want === "json"
    ? JSON.stringify({ error: message }) + "\n"
    : `${res.status}: ${message}\n`;
  res.body?.cancel().catch(() => {});
  return new Response(req.method === "HEAD" ? null : body, {
    status: res.status,
    statusText: res.statusText,
    headers,
  });
}
