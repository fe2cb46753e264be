/**
 * Starts `main_price.ts` as users do (a subprocess) and waits for its "serving on" line; runs
 * it to completion for start-up errors. Used by the `price_*_test.ts` files.
 *
 * @module
 */

import { runDeno, spawnDenoLines, startedLine } from "./_proc.ts";

const MAIN = new URL("../main_price.ts", import.meta.url).pathname;

/** A running pricing service process. */
export interface PriceProc {
  url: string;
  port: number;
  /** stdout and stderr so far. */
  output(): string;
  /** SIGTERM and wait. */
  close(): Promise<void>;
  /** SIGKILL and wait. */
  kill9(): Promise<void>;
}

/** Starts the service with `args` (default `-p 0`, loopback). */
export async function startPrice(args: string[], port = 0): Promise<PriceProc> {
  const p = spawnDenoLines([MAIN, "-p", String(port), "--host", "127.0.0.1", ...args], {
    name: "main_price.ts",
  });
  const m = await startedLine(p, /serving on http:\/\/127\.0\.0\.1:(\d+)\//, "price service");
  const at = Number(m[1]);
  return {
    url: `http://127.0.0.1:${at}`,
    port: at,
    output: p.output,
    close: () => p.stop("SIGTERM"),
    kill9: () => p.stop("SIGKILL"),
  };
}

/** Runs main_price.ts with `args` to completion; answers exit code and stderr. */
export async function runPriceCli(args: string[]): Promise<{ code: number; err: string }> {
  const r = await runDeno([MAIN, ...args]);
  return { code: r.code, err: r.stderr };
}

/** A PUT/PATCH/DELETE with the bearer token `token` (null: none). */
export function send(
  url: string,
  method: string,
  body: unknown,
  token: string | null,
  headers: Record<string, string> = {},
): Promise<Response> {
  const h: Record<string, string> = { "content-type": "application/json", ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  return fetch(url, {
    method,
    headers: h,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
}
