/**
 * Test helpers for `--tls`: certificates made by the `certs` task itself, TLS nodes started as
 * users start them (`main_http.ts` subprocesses on their own loopback address), and a fetch
 * that trusts the test CA.
 *
 * @module
 */
import { runUpload, startNode, type TestNode, TOKEN } from "./_upload_cluster.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Runs `deno task certs`' script with `args`; throws with its output when it fails. */
export async function makeCerts(args: string[]): Promise<string> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/certs.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  if (!r.success) throw new Error(`certs ${args.join(" ")} failed:\n${out}`);
  return out;
}

/** A fetch that trusts `caFile` (bounded by 10 s). */
export function caFetch(caFile: string): (url: string, init?: RequestInit) => Promise<Response> {
  const client = Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(caFile)] });
  return (url, init = {}) =>
    fetch(url, { signal: AbortSignal.timeout(10_000), ...init, client } as RequestInit);
}

/** A TLS node (its `url` is https). */
export type TlsNode = TestNode;

/**
 * Starts node `id` on `host` with `--tls` and the files `certDir/NAME.pem`, `NAME-key.pem` and
 * `ca.pem` (`cert` defaults to `id`); waits until its health answers over HTTPS.
 */
export function startTlsNode(
  id: string,
  host: string,
  dataDir: string,
  certDir: string,
  extra: string[] = [],
  cert = id,
): Promise<TlsNode> {
  return startNode(
    id,
    dataDir,
    ["--host", host, ...tlsArgs(certDir, cert), ...extra],
    caFetch(`${certDir}/ca.pem`),
  );
}

/** `--tls --cert DIR/NAME.pem --key DIR/NAME-key.pem --ca DIR/ca.pem`. */
export function tlsArgs(certDir: string, name: string): string[] {
  return [
    "--tls",
    ...["--cert", `${certDir}/${name}.pem`, "--key", `${certDir}/${name}-key.pem`],
    ...["--ca", `${certDir}/ca.pem`],
  ];
}

/** Uploads `file` to the https node `to` with the admin token, trusting `caFile`; exit code 0. */
export async function uploadTls(
  file: string,
  to: string,
  caFile: string,
  extra: string[] = [],
): Promise<void> {
  const r = await runUpload([file, "--to", to, "--token", TOKEN, "--ca", caFile, "-q", ...extra]);
  if (r.code !== 0) throw new Error(`upload ${file} to ${to} failed (${r.code}): ${r.err}`);
}
