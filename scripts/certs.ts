/**
 * `deno task certs --out DIR --nodes a=127.0.0.71,b=127.0.0.72+b.cdn.test [--days N]
 * [--key-type p256|ed25519]`: a
 * private CA (`DIR/ca.pem`, kept and reused when it exists) and one certificate per node or DNS
 * server (`DIR/NAME.pem`, `DIR/NAME-key.pem`, keys mode 0600) for `--tls`. See README "TLS".
 *
 * @module
 */
import { parseFlags, runMain, usage, UsageError } from "../lib/common/cli.ts";
import { KEY_TYPES, makeCa, makeCert, parseNodeList } from "../lib/tls/certs.ts";

const FLAGS = {
  out: {
    type: "string",
    arg: "DIR",
    help: "Directory for ca.pem, NAME.pem, NAME-key.pem. Required.",
  },
  nodes: {
    type: "string",
    arg: "LIST",
    help: "NAME=ADDR[+ADDR...],... : each node or DNS server and the IP addresses or DNS " +
      "names its certificate must hold. Required.",
  },
  days: {
    type: "string",
    arg: "N",
    help: "Validity of the node certificates in days (negative, as --days=-1: already expired, " +
      "for tests). " +
      "Default 825.",
  },
  "key-type": {
    type: "string",
    arg: "p256|ed25519",
    help: "Key of the node certificates (the CA's is P-256). Ed25519 signs and verifies " +
      "node-to-node requests (--node-auth cert) far faster. Default p256.",
  },
  help: { type: "boolean", short: "h", help: "Show this help." },
} as const;

async function main(): Promise<void> {
  const f = parseFlags(Deno.args, FLAGS);
  if (f.bool("help")) {
    console.log(usage(["Usage: deno task certs --out DIR --nodes NAME=ADDR[+ADDR],..."], FLAGS));
    return;
  }
  const out = f.required("out", "the directory to write to");
  let nodes;
  try {
    nodes = parseNodeList(f.required("nodes", "e.g. a=127.0.0.71,b=127.0.0.72"));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const daysText = f.string("days") ?? "825";
  if (!/^-?[0-9]{1,5}$/.test(daysText) || Number(daysText) === 0) {
    throw new UsageError(`--days must be a non-zero whole number: received ${daysText}`);
  }
  const keyType = f.oneOf("key-type", KEY_TYPES, "p256");
  const made = await makeCa(out);
  console.log(`certs: ${made ? "made" : "kept"} ${out}/ca.pem`);
  for (const n of nodes) {
    await makeCert(out, n, { days: Number(daysText), keyType });
    console.log(`certs: ${out}/${n.name}.pem for ${n.addresses.join(", ")}`);
  }
}

if (import.meta.main) await runMain("certs", main);
