/**
 * A node's certificate from an ACME server (RFC 8555; Let's Encrypt, or Pebble in the tests)
 * with npm `acme-client`: one order for the node's advertised address (an IP identifier,
 * RFC 8738, or a DNS name), the HTTP-01 challenge answered by a small plain-HTTP listener on
 * `--acme-http-port` that lives only while an order is open, then the certificate. The account
 * key, the certificate and its key are kept under `--data DIR/acme/`, so a restart reuses them.
 *
 * @module
 */
import https from "node:https";
import type { Client as AcmeClient } from "acme-client";
import { isIpAddress } from "./certs.ts";
import { describeFetchError } from "./client.ts";
import { type CertInfo, checkKeyPair } from "./files.ts";
import type { TlsKeyPair } from "./listen.ts";

/**
 * `acme-client`, loaded on first use: with its dependencies (axios, `@peculiar/x509`, Node
 * compatibility modules) it adds about 30 MiB to a process's resident memory, which a node
 * without `--acme-directory` should not carry.
 */
const loadAcme = async () => (await import("acme-client")).default;

/** What {@link obtainCertificate} needs. */
export interface AcmeRequest {
  /** The directory URL. */
  directory: string;
  email: string | null;
  /** PEM of the directory's own CA when it is not a public one, else null. */
  directoryCa: string | null;
  /** The name the certificate is for: the node's advertised IP address or DNS name. */
  identifier: string;
  /** Address and port the HTTP-01 challenge is answered on. */
  httpHost: string;
  httpPort: number;
  /** Directory for the account key and the last certificate, or null to keep nothing. */
  stateDir: string | null;
  log: (line: string) => void;
}

async function readOr(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600 });
  await Deno.rename(tmp, path);
}

async function accountKey(stateDir: string | null): Promise<{ pem: string; kept: boolean }> {
  const path = stateDir === null ? null : `${stateDir}/account-key.pem`;
  const kept = path === null ? null : await readOr(path);
  if (kept !== null) return { pem: kept, kept: true };
  const acme = await loadAcme();
  const key = (await acme.crypto.createPrivateEcdsaKey()).toString();
  if (path !== null) await writePrivate(path, key);
  return { pem: key, kept: false };
}

/** One ACME client per request, its account found or made once (renewals reuse it). */
const clients = new WeakMap<AcmeRequest, AcmeClient>();

async function accountClient(r: AcmeRequest): Promise<AcmeClient> {
  const known = clients.get(r);
  if (known !== undefined) return known;
  const key = await accountKey(r.stateDir);
  const acme = await loadAcme();
  const client = new acme.Client({ directoryUrl: r.directory, accountKey: key.pem });
  let found = false;
  if (key.kept) {
    try {
      await client.createAccount({ onlyReturnExisting: true });
      found = true;
    } catch { /* not at this directory yet: made below */ }
  }
  if (!found) {
    await client.createAccount({
      termsOfServiceAgreed: true,
      ...(r.email === null ? {} : { contact: [`mailto:${r.email}`] }),
    });
  }
  clients.set(r, client);
  return client;
}

/**
 * The certificate kept in `stateDir` from an earlier run, when it still holds for `identifier`
 * and is valid now; else null.
 */
export async function keptCertificate(
  stateDir: string | null,
  identifier: string,
): Promise<{ pair: TlsKeyPair; info: CertInfo } | null> {
  if (stateDir === null) return null;
  const cert = await readOr(`${stateDir}/cert.pem`);
  const key = await readOr(`${stateDir}/key.pem`);
  if (cert === null || key === null) return null;
  try {
    const info = checkKeyPair({ cert, key }, { cert: "kept cert", key: "kept key" });
    const name = isIpAddress(identifier) ? `IP Address:${identifier}` : `DNS:${identifier}`;
    if (!info.names.split(", ").includes(name)) return null;
    return { pair: { cert, key }, info };
  } catch {
    return null;
  }
}

/** Answers HTTP-01 challenges from `tokens` on host:port until closed. */
function challengeServer(
  host: string,
  port: number,
  tokens: Map<string, string>,
): Deno.HttpServer {
  return Deno.serve({ hostname: host, port, onListen: () => {} }, (req) => {
    const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(new URL(req.url).pathname);
    const answer = m === null ? undefined : tokens.get(m[1]);
    if (answer === undefined) return new Response("404: no such challenge\n", { status: 404 });
    return new Response(answer, { headers: { "content-type": "text/plain" } });
  });
}

/**
 * Fetches the directory once with Deno's own client, so an unreachable or untrusted directory is
 * one clear line (acme-client's own retries end in an unhelpful TypeError there).
 */
async function checkDirectory(r: AcmeRequest): Promise<void> {
  const client = Deno.createHttpClient({ caCerts: r.directoryCa === null ? [] : [r.directoryCa] });
  try {
    const res = await fetch(r.directory, { client, signal: AbortSignal.timeout(10_000) });
    await res.body?.cancel();
    if (res.status !== 200) throw new Error(`answered ${res.status}`);
  } catch (e) {
    throw new Error(`--acme-directory ${r.directory}: cannot get it: ${describeFetchError(e)}`);
  } finally {
    client.close();
  }
}

/** Obtains a new certificate (and key) for `r.identifier`; keeps it in `r.stateDir`. */
export async function obtainCertificate(
  r: AcmeRequest,
): Promise<{ pair: TlsKeyPair; info: CertInfo }> {
  await checkDirectory(r);
  const acme = await loadAcme();
  if (r.directoryCa !== null) {
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: r.directoryCa });
  }
  if (r.stateDir !== null) await Deno.mkdir(r.stateDir, { recursive: true });
  const client = await accountClient(r);
  const type = isIpAddress(r.identifier) ? "ip" : "dns";
  const order = await client.createOrder({ identifiers: [{ type, value: r.identifier }] });
  const tokens = new Map<string, string>();
  let server: Deno.HttpServer;
  try {
    server = challengeServer(r.httpHost, r.httpPort, tokens);
  } catch (e) {
    throw new Error(
      `--acme-http-port ${r.httpPort}: cannot listen on ${r.httpHost} for the HTTP-01 challenge: ` +
        (e as Error).message,
    );
  }
  try {
    for (const authz of await client.getAuthorizations(order)) {
      if (authz.status === "valid") continue;
      const challenge = authz.challenges.find((c) => c.type === "http-01");
      if (challenge === undefined) {
        throw new Error(`the ACME server offers no http-01 challenge for ${r.identifier}`);
      }
      tokens.set(challenge.token, await client.getChallengeKeyAuthorization(challenge));
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    }
  } finally {
    await server.shutdown();
  }
  const [key, csr] = await acme.crypto.createCsr(
    { altNames: [r.identifier] },
    await acme.crypto.createPrivateEcdsaKey(),
  );
  const finalized = await client.finalizeOrder(order, csr);
  const cert = await client.getCertificate(finalized);
  const pair = { cert, key: key.toString() };
  const info = checkKeyPair(pair, { cert: "the ACME certificate", key: "its key" });
  if (r.stateDir !== null) {
    await writePrivate(`${r.stateDir}/key.pem`, pair.key);
    await writePrivate(`${r.stateDir}/cert.pem`, pair.cert);
  }
  r.log(
    `tls: ACME certificate for ${r.identifier} from ${r.directory}: serial ${info.serial}, ` +
      `valid until ${info.notAfter.toISOString()}`,
  );
  return { pair, info };
}

/** When a certificate is due for renewal: `renewBeforeMs` before expiry, else at 2/3 of its life. */
export function renewalTime(info: CertInfo, renewBeforeMs: number | null): number {
  const end = info.notAfter.getTime();
  const life = end - info.notBefore.getTime();
  return end - (renewBeforeMs ?? life / 3);
}

/** Longest single timer (setTimeout's limit is about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Pause after a failed renewal before the next try, at most. */
const RETRY_MS = 10 * 60_000;

/**
 * Renews the certificate before it expires, without a restart: at {@link renewalTime} it
 * obtains a new one and hands it to `install` (the listener swaps it in). A failure is logged
 * and retried after a tenth of the time left (at most 10 minutes). Returns a stop function.
 */
export function scheduleRenewal(
  first: CertInfo,
  renewBeforeMs: number | null,
  obtain: () => Promise<{ pair: TlsKeyPair; info: CertInfo }>,
  install: (pair: TlsKeyPair, info: CertInfo) => void,
  log: (line: string) => void,
): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const arm = (at: number) => {
    if (stopped) return;
    timer = setTimeout(tick, Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())));
    Deno.unrefTimer(timer!);
  };
  let current = first;
  const tick = async () => {
    const due = renewalTime(current, renewBeforeMs);
    if (Date.now() < due) return arm(due);
    try {
      const next = await obtain();
      if (stopped) return;
      install(next.pair, next.info);
      current = next.info;
      arm(renewalTime(current, renewBeforeMs));
    } catch (e) {
      const left = current.notAfter.getTime() - Date.now();
      log(
        `tls: ACME renewal failed (certificate expires in ${Math.round(left / 1000)} s): ${
          (e as Error).message
        }`,
      );
      arm(Date.now() + Math.max(1000, Math.min(RETRY_MS, left / 10)));
    }
  };
  arm(renewalTime(first, renewBeforeMs));
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
