/**
 * What `--node-auth cert` costs per node-to-node request, in CPU time: signing the request
 * text with the certificate's key (the caller), checking a certificate credential whose chain
 * was verified before (the receiver: the cached chain, the dates, the name and one signature
 * verification), and a first check of a chain never seen (not cached), against the node key's
 * Ed25519 signature and verification (`--node-auth key`). Certificates of each key type are
 * made by openssl (a CA and a leaf named `a`), like `deno task certs` (P-256).
 *
 * Usage: deno run -A bench/listener/cert_auth.ts [--n 500]
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { CertSigner, CertVerifier } from "../../lib/tls/cert_identity.ts";
import { newKey, requestText, Signer, verifySignature } from "../../lib/replication/trust.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { n: { type: "string", default: "500" } },
});
const n = Number(values.n);

/** Key types as `openssl req -newkey` takes them. */
const KEYS: Record<string, string[]> = {
  "ECDSA P-256 (deno task certs)": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
  "RSA 2048": ["-newkey", "rsa:2048"],
  "Ed25519": ["-newkey", "ed25519"],
};

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** A CA and a leaf named `a` with keys of `type`, in `dir`. */
async function certs(dir: string, type: string[]): Promise<void> {
  await openssl(
    ["req", "-x509", ...type, "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "30"]
      .concat(["-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE"]),
    dir,
  );
  await openssl(
    ["req", ...type, "-nodes", "-keyout", "a-key.pem", "-out", "a.csr", "-subj", "/CN=a"],
    dir,
  );
  await Deno.writeTextFile(`${dir}/a.ext`, "basicConstraints=critical,CA:FALSE\n");
  await openssl([
    ..."x509 -req -in a.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30".split(" "),
    ...["-extfile", "a.ext", "-out", "a.pem"],
  ], dir);
}

/** CPU µs (user + system) per call of `fn`, over `n` calls. */
function cpuMicros(fn: (i: number) => unknown): number {
  for (let i = 0; i < 20; i++) fn(i); // warm-up
  const t = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(i);
  const d = process.cpuUsage(t);
  return (d.user + d.system) / n;
}

const text = (i: number) =>
  requestText(
    "POST",
    "/_cdn/heartbeat",
    1767323045000 + i,
    "0".repeat(32),
    `sha256=${"a".repeat(64)}`,
  );
const rows: string[][] = [];
const dir = await Deno.makeTempDir({ prefix: "bench_cert_auth_" });
try {
  for (const [label, type] of Object.entries(KEYS)) {
    const d = `${dir}/${rows.length}`;
    await Deno.mkdir(d);
    await certs(d, type);
    const pair = {
      cert: await Deno.readTextFile(`${d}/a.pem`),
      key: await Deno.readTextFile(`${d}/a-key.pem`),
    };
    const caPem = await Deno.readTextFile(`${d}/ca.pem`);
    const signer = new CertSigner(pair);
    const sigs = Array.from({ length: n + 20 }, (_, i) => signer.sign(text(i)));
    const verifier = new CertVerifier(caPem);
    const sign = cpuMicros((i) => signer.sign(text(i)));
    const check = cpuMicros((i) => {
      if (verifier.check(signer.header, "a", text(i), sigs[i]) !== null) throw new Error("refused");
    });
    // A new verifier each time: the chain is parsed and verified against the CA.
    const first = cpuMicros((i) => {
      if (new CertVerifier(caPem).check(signer.header, "a", text(i), sigs[i]) !== null) {
        throw new Error("refused");
      }
    });
    rows.push([label, sign.toFixed(0), check.toFixed(0), first.toFixed(0)]);
  }
  const key = newKey(), ed = new Signer("a", key);
  const edSigs = Array.from({ length: n + 20 }, (_, i) => ed.sign(text(i)));
  rows.push([
    "node key, Ed25519 (--node-auth key)",
    cpuMicros((i) => ed.sign(text(i))).toFixed(0),
    cpuMicros((i) => verifySignature(key.publicKey, text(i), edSigs[i])).toFixed(0),
    "-",
  ]);
} finally {
  await Deno.remove(dir, { recursive: true });
}
const load = Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
console.log(`CPU µs per operation, ${n} each (Deno ${Deno.version.deno}, load average ${load})`);
console.log("| credential | sign | check (chain cached) | first check (chain verified) |");
console.log("| --- | ---: | ---: | ---: |");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
