/**
 * A node's TLS at start-up: the certificate from `--cert`/`--key` (checked against `--ca`) or
 * from ACME (kept, or obtained before listening), the process's trust for calls to other nodes
 * ({@link trustCa}), and the ACME renewal that swaps the listener's certificate while running.
 *
 * @module
 */
import { StartError } from "../common/cli.ts";
import { keptCertificate, obtainCertificate, renewalTime, scheduleRenewal } from "./acme.ts";
import { trustCa } from "./client.ts";
import { type CertInfo, loadCa, loadKeyPair } from "./files.ts";
import type { TlsConfig } from "./flags.ts";
import type { TlsKeyPair } from "./listen.ts";
import { CertSigner, CertVerifier } from "./cert_identity.ts";
import type { CertCredential } from "../replication/peer_auth.ts";

/** A node's TLS once its certificate is in hand. */
export interface NodeTls {
  pair: TlsKeyPair;
  info: CertInfo;
  /** The `--ca` file's certificates (PEM), or null when not given. */
  caPem: string | null;
  /** Starts ACME renewal (no-op for `--cert`); `install` swaps the listener's certificate. */
  renew(install: (pair: TlsKeyPair) => void): () => void;
  /**
   * `--cert`/`--key`: reads and checks the files again (as at start) and returns the new pair;
   * null with ACME (renewed by itself). Throws naming the file when it is not usable.
   */
  reload(): Promise<{ pair: TlsKeyPair; info: CertInfo } | null>;
}

/** Where the node is: its ACME identifier (advertised address) and data directory. */
export interface NodeTlsContext {
  identifier: string | null;
  host: string;
  dataDir: string | null;
  log: (line: string) => void;
}

/** One line naming a certificate: subject, names, serial, expiry. */
export function describe(info: CertInfo): string {
  return `${info.subject} (${info.names}), serial ${info.serial}, valid until ` +
    info.notAfter.toISOString();
}

/** Prepares `--tls`; a bad file or a failed ACME order is a {@link StartError} naming it. */
export async function prepareNodeTls(c: TlsConfig, ctx: NodeTlsContext): Promise<NodeTls> {
  try {
    if (c.acme === null) {
      const { pair, info, caPem } = await loadKeyPair(c.certFile!, c.keyFile!, c.caFile);
      trustCa(caPem!);
      ctx.log(`tls: certificate ${describe(info)}; peers verified against --ca ${c.caFile}`);
      const reload = async () => {
        const next = await loadKeyPair(c.certFile!, c.keyFile!, c.caFile);
        return { pair: next.pair, info: next.info };
      };
      return { pair, info, caPem, renew: () => () => {}, reload };
    }
    const acmeCfg = c.acme;
    const caPem = c.caFile === null ? null : await loadCa(c.caFile);
    if (caPem !== null) trustCa(caPem);
    const directoryCa = acmeCfg.caFile === null ? null : await loadCa(acmeCfg.caFile, "--acme-ca");
    if (ctx.identifier === null) {
      throw new Error("--acme-directory needs the node's address: give --advertise or --host ADDR");
    }
    const request = {
      directory: acmeCfg.directory,
      email: acmeCfg.email,
      directoryCa,
      identifier: ctx.identifier,
      httpHost: ctx.host,
      httpPort: acmeCfg.httpPort,
      stateDir: ctx.dataDir === null ? null : `${ctx.dataDir}/acme`,
      log: ctx.log,
    };
    const kept = await keptCertificate(request.stateDir, ctx.identifier);
    const first = kept !== null && Date.now() < renewalTime(kept.info, acmeCfg.renewBeforeMs)
      ? kept
      : await obtainCertificate(request);
    if (first === kept) ctx.log(`tls: kept ACME certificate ${describe(first.info)}`);
    return {
      ...first,
      caPem,
      reload: () => Promise.resolve(null),
      renew: (install) =>
        scheduleRenewal(
          first.info,
          acmeCfg.renewBeforeMs,
          () => obtainCertificate(request),
          (pair, info) => {
            install(pair);
            ctx.log(`tls: renewed without restart: now serving ${describe(info)}`);
          },
          ctx.log,
        ),
    };
  } catch (e) {
    if (e instanceof StartError) throw e;
    throw new StartError(`--tls: ${(e as Error).message}`);
  }
}

/**
 * `--node-auth cert|both`: the certificate of `--cert` as node-to-node credential, checked
 * against `--ca`. A certificate without a common name is a {@link StartError}.
 */
export function certCredential(
  tls: NodeTls,
  mode: "cert" | "both",
  certFile: string,
): CertCredential {
  try {
    return { mode, signer: new CertSigner(tls.pair), verifier: new CertVerifier(tls.caPem!) };
  } catch (e) {
    throw new StartError(`--node-auth ${mode}: --cert ${certFile}: ${(e as Error).message}`);
  }
}

/** The signer of a reloaded certificate; throws when it does not name this node (`id`). */
export function nodeCertSigner(pair: TlsKeyPair, id: string): CertSigner {
  const signer = new CertSigner(pair);
  if (signer.name !== id) {
    throw new Error(`the new --cert names ${signer.name} (CN), not this node (${id})`);
  }
  return signer;
}
