/**
 * A private certificate authority for `--tls`, made with Debian's `openssl`: one CA, then one
 * certificate per node (or DNS server) naming its addresses (IP or DNS subjectAltNames). Used by
 * `deno task certs` (`scripts/certs.ts`) and the tests. Keys are P-256 (nodes' optionally
 * Ed25519), written mode 0600.
 *
 * @module
 */

/** One certificate to make: a node's name and the addresses it must hold. */
export interface CertSubject {
  /** File name stem and common name, e.g. `a` for `DIR/a.pem` and `DIR/a-key.pem`. */
  name: string;
  /** IP addresses and DNS names, each becomes a subjectAltName. */
  addresses: string[];
}

/** Node names: file-name safe. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const DNS_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Whether `a` is an IPv4 or IPv6 literal (not a DNS name). */
export function isIpAddress(a: string): boolean {
  const m = IPV4.exec(a);
  if (m !== null) return m.slice(1).every((x) => Number(x) <= 255);
  return a.includes(":") && URL.canParse(`http://[${a}]/`);
}

/**
 * Parses `a=127.0.0.71,b=127.0.0.72+b.cdn.test` into subjects; throws naming the bad part.
 */
export function parseNodeList(text: string): CertSubject[] {
  const out: CertSubject[] = [];
  for (const part of text.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const eq = part.indexOf("=");
    if (eq <= 0) {
      throw new Error(`--nodes: expected NAME=ADDR[+ADDR...]: received ${part}`);
    }
    const name = part.slice(0, eq);
    if (!NAME.test(name)) {
      throw new Error(`--nodes: a name is 1-63 of A-Z a-z 0-9 - _: received ${name}`);
    }
    if (name === "ca" || out.some((s) => s.name === name)) {
      throw new Error(`--nodes: name ${name} is reserved or given twice`);
    }
    const addresses = part.slice(eq + 1).split("+").map((s) => s.trim());
    for (const a of addresses) {
      if (!isIpAddress(a) && !DNS_NAME.test(a)) {
        throw new Error(`--nodes: ${name}: not an IP address or DNS name: received "${a}"`);
      }
    }
    out.push({ name, addresses });
  }
  if (out.length === 0) throw new Error("--nodes: no node given (e.g. a=127.0.0.71,b=127.0.0.72)");
  return out;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  let out;
  try {
    out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    throw new Error(
      `cannot run openssl (apt-get install openssl): ${(e as Error).message}`,
    );
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`openssl ${args[0]} ${args[1] ?? ""} failed: ${err}`);
  }
}

/** Key types of the certificates made (`--key-type`). */
export const KEY_TYPES = ["p256", "ed25519"] as const;
/** A key type of {@link KEY_TYPES}. */
export type KeyType = (typeof KEY_TYPES)[number];

/** `openssl req` arguments for a new unencrypted key of `type` written to `file`. */
function newKey(file: string, type: KeyType = "p256"): string[] {
  const key = type === "ed25519"
    ? ["-newkey", "ed25519"]
    : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
  return [...key, "-nodes", "-keyout", file];
}

/** Options of {@link makeCa} and {@link makeCert}. */
export interface CertOptions {
  /** Validity in days; negative makes a certificate that has already expired (tests). */
  days?: number;
  /** The node's key (the CA's is P-256): P-256 by default; Ed25519 signs ~30x cheaper. */
  keyType?: KeyType;
}

/** Makes `DIR/ca.pem` and `DIR/ca-key.pem` (mode 0600) unless they exist. Returns whether made. */
export async function makeCa(
  dir: string,
  opts: CertOptions & { cn?: string } = {},
): Promise<boolean> {
  await Deno.mkdir(dir, { recursive: true });
  try {
    await Deno.stat(`${dir}/ca.pem`);
    await Deno.stat(`${dir}/ca-key.pem`);
    return false;
  } catch { /* make it */ }
  await openssl([
    "req",
    "-x509",
    ...newKey("ca-key.pem"),
    "-out",
    "ca.pem",
    "-days",
    String(opts.days ?? 3650),
    "-subj",
    `/CN=${opts.cn ?? `Nearcast private CA ${crypto.randomUUID().slice(0, 8)}`}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  await Deno.chmod(`${dir}/ca-key.pem`, 0o600);
  return true;
}

/** The `subjectAltName` value for `addresses`. */
export function subjectAltName(addresses: string[]): string {
  return addresses.map((a) => isIpAddress(a) ? `IP:${a}` : `DNS:${a}`).join(",");
}

/**
 * Makes `DIR/NAME.pem` (the certificate followed by nothing else) and `DIR/NAME-key.pem`
 * (0600), signed by the CA in `DIR` ({@link makeCa} first).
 */
export async function makeCert(
  dir: string,
  subject: CertSubject,
  opts: CertOptions = {},
): Promise<void> {
  const { name } = subject;
  const ext = `${dir}/${name}.ext`;
  await Deno.writeTextFile(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth,clientAuth",
      `subjectAltName=${subjectAltName(subject.addresses)}`,
      "",
    ].join("\n"),
  );
  try {
    await openssl([
      "req",
      ...newKey(`${name}-key.pem`, opts.keyType),
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    ], dir);
    await Deno.chmod(`${dir}/${name}-key.pem`, 0o600);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
      "-CAcreateserial",
      "-days",
      String(opts.days ?? 825),
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    ], dir);
  } finally {
    await Deno.remove(ext).catch(() => {});
    await Deno.remove(`${dir}/${name}.csr`).catch(() => {});
  }
}
