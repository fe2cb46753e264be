/**
 * Asking the index: `GET /locate/PATH` on a DNS server's control API names the live replicas
 * that hold PATH, best first for the caller (the steering policy's order), with their URLs. An
 * `https://` index (a control API with `--cert`) is verified like the holders: against `--ca`
 * alone when given, else the public roots.
 *
 * @module
 */
import { EXIT, GetFailure } from "./exit_codes.ts";
import { describeFetchError, peerFetch } from "../tls/client.ts";

/** A replica that holds the path. */
export interface Holder {
  id: string;
  url: string;
}

/** Longest wait for the index's answer. */
export const LOCATE_TIMEOUT_MS = 10_000;

/**
 * The live holders of `path`, best first. Throws a {@link GetFailure}: not found (3), no live
 * holder (4: the index names replicas that hold it but are not live), network (6).
 */
export async function locate(index: string, path: string): Promise<Holder[]> {
  const url = `${index}/locate${path}`;
  let res: Response, text: string;
  try {
    // An https index with --ca is verified against that CA alone (the process's trust).
    res = await peerFetch(url, { signal: AbortSignal.timeout(LOCATE_TIMEOUT_MS) });
    text = await res.text();
  } catch (e) {
    throw new GetFailure(
      `cannot reach the index at ${index}: ${describeFetchError(e)}`,
      EXIT.NETWORK,
    );
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    throw new GetFailure(
      `the index at ${index} answered HTTP ${res.status}, not JSON: ${text.slice(0, 120)}`,
      EXIT.NETWORK,
    );
  }
  if (res.status === 404) {
    const notLive = Array.isArray(body.notLive) ? body.notLive.map(String) : [];
    if (notLive.length > 0) {
      throw new GetFailure(
        `no live replica holds ${path}: held by ${notLive.join(", ")}, not live now`,
        EXIT.NO_LIVE_HOLDER,
      );
    }
    throw new GetFailure(`not found: no replica holds ${path}`, EXIT.NOT_FOUND);
  }
  if (res.status !== 200) {
    throw new GetFailure(
      `the index at ${index} answered HTTP ${res.status}: ${
        String(body.error ?? text).slice(0, 200)
      }`,
      res.status === 400 ? EXIT.USAGE : EXIT.NETWORK,
    );
  }
  const ids = Array.isArray(body.holders) ? body.holders.map(String) : [];
  // Older servers name only the best holder's URL.
  const urls = Array.isArray(body.urls) ? body.urls.map(String) : [String(body.url)];
  return urls.map((url, i) => ({ id: ids[i] ?? url, url }));
}
