/**
 * Starts `main_price.ts` as users do (a subprocess) and waits for its "serving on" line; runs
 * it to completion for start-up errors. Used by the `price_*_test.ts` files.
 *
 * @module
 */

const MAIN = new URL("../main_price.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;
/** Longest wait for the service to start. */
const START_TIMEOUT_MS = 30_000;

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
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "-p", String(port), "--host", "127.0.0.1", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let text = "";
  let wake = () => {};
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      wake();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.finally(() => {
    exited = true;
    wake();
  });
  const stop = async (sig: Deno.Signal) => {
    if (!exited) {
      try {
        child.kill(sig);
      } catch { /* gone */ }
    }
    await status;
    await pumps;
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  let m: RegExpExecArray | null;
  while ((m = /serving on http:\/\/127\.0\.0\.1:(\d+)\//.exec(text)) === null) {
    if (exited || Date.now() > deadline) {
      await stop("SIGKILL");
      throw new Error(`price service did not start:\n${text}`);
    }
    await new Promise<void>((r) => {
      const t = setTimeout(r, 200);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  }
  const p = Number(m[1]);
  return {
    url: `http://127.0.0.1:${p}`,
    port: p,
    output: () => text,
    close: () => stop("SIGTERM"),
    kill9: () => stop("SIGKILL"),
  };
}

/** Runs main_price.ts with `args` to completion; answers exit code and stderr. */
export async function runPriceCli(args: string[]): Promise<{ code: number; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  return { code: r.code, err: new TextDecoder().decode(r.stderr) };
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
