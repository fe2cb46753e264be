/**
 * Reads and checks the files of `--cert`, `--key` and `--ca` before a process listens or
 * connects, so a wrong file is one clear line naming the flag and the file: missing or
 * unreadable, not PEM, a key that does not belong to the certificate, a certificate that has
 * expired or is not yet valid, or one the CA did not sign.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { TlsKeyPair } from "./listen.ts";

/** A certificate's facts the node logs and schedules renewals by. */
export interface CertInfo {
  subject: string;
  /** subjectAltNames as openssl prints them, e.g. `IP Address:127.0.0.71, DNS:a.test`. */
  names: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** Reads a text file a flag names; the error names the flag and the file. */
export async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (e as Error).message;
    throw new Error(`${flag} ${path}: cannot read it: ${why}`);
  }
}

/** Parses the first certificate of a PEM text; the error names `what`. */
export function parseCert(what: string, pem: string): X509Certificate {
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`${what}: not a PEM certificate (no BEGIN CERTIFICATE line)`);
  }
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new Error(`${what}: not a valid certificate: ${(e as Error).message}`);
  }
}

/**
 * A serial number as `openssl x509 -serial` prints it: upper-case hex in whole bytes. The
 * runtime drops a leading zero nibble (`D152…` where openssl prints `0D152…`), so a serial in
 * our logs could not be found in openssl's output.
 */
export function opensslSerial(hex: string): string {
  const h = hex.toUpperCase();
  return h.length % 2 === 1 ? "0" + h : h;
}

/** The facts of a parsed certificate. */
export function certInfo(c: X509Certificate): CertInfo {
  return {
    subject: c.subject,
    names: c.subjectAltName ?? "",
    serial: opensslSerial(c.serialNumber),
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
  };
}

/**
 * Checks that `pair` is usable now: both PEM, the key the certificate's, the certificate valid
 * at `now` and, when `caPem` is given, signed by that CA. `names` say which flags or files the
 * texts came from, for the error.
 */
export function checkKeyPair(
  pair: TlsKeyPair,
  names: { cert: string; key: string; ca?: string },
  caPem?: string,
  now = new Date(),
): CertInfo {
  const cert = parseCert(names.cert, pair.cert);
  let key;
  try {
    key = createPrivateKey(pair.key);
  } catch (e) {
    throw new Error(`${names.key}: not a PEM private key: ${(e as Error).message}`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new Error(`${names.key} does not belong to ${names.cert} (the keys do not match)`);
  }
  const info = certInfo(cert);
  if (info.notAfter.getTime() < now.getTime()) {
    throw new Error(`${names.cert} expired on ${info.notAfter.toISOString()}`);
  }
  if (info.notBefore.getTime() > now.getTime()) {
    throw new Error(`${names.cert} is not valid before ${info.notBefore.toISOString()}`);
  }
  if (caPem !== undefined) {
    const ca = parseCert(names.ca ?? "--ca", caPem);
    if (!cert.verify(ca.publicKey)) {
      throw new Error(
        `${names.cert} is not signed by ${names.ca ?? "--ca"} (${ca.subject}); ` +
          "peers verifying against that CA would refuse this node",
      );
    }
  }
  return info;
}

/** Reads `--cert`, `--key` and optionally `--ca`, and checks them ({@link checkKeyPair}). */
export async function loadKeyPair(
  certFile: string,
  keyFile: string,
  caFile: string | null,
): Promise<{ pair: TlsKeyPair; info: CertInfo; caPem: string | null }> {
  const pair = {
    cert: await readFlagFile("--cert", certFile),
    key: await readFlagFile("--key", keyFile),
  };
  const caPem = caFile === null ? null : await loadCa(caFile);
  const info = checkKeyPair(
    pair,
    { cert: `--cert ${certFile}`, key: `--key ${keyFile}`, ca: `--ca ${caFile}` },
    caPem ?? undefined,
  );
  return { pair, info, caPem };
}

/** Reads and checks a `--ca` file (PEM, one or more certificates). */
export async function loadCa(caFile: string, flag = "--ca"): Promise<string> {
  const pem = await readFlagFile(flag, caFile);
  parseCert(`${flag} ${caFile}`, pem);
  return pem;
}
