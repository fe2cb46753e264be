/**
 * The TLS flags of a node (`--tls`, `--cert`, `--key`, `--ca`, `--acme-*`), their table for
 * `--help` and a pure parse to a {@link TlsConfig} or a `UsageError` naming the flag.
 *
 * @module
 */
import { type Flags, type FlagTable, UsageError } from "../common/cli.ts";

/** Default: renew an ACME certificate when less than this part of its lifetime is left. */
export const DEFAULT_RENEW_FRACTION = 1 / 3;

/** The node's TLS flags. */
export const TLS_FLAGS = {
  tls: {
    type: "boolean",
    help: "Serve HTTPS only (content, API and node-to-node) and call other nodes over HTTPS, " +
      "verified against --ca. Needs --cert and --key, or --acme-directory.",
  },
  cert: { type: "string", arg: "FILE", help: "With --tls: this node's certificate (PEM)." },
  key: { type: "string", arg: "FILE", help: "With --tls: the certificate's private key (PEM)." },
  ca: {
    type: "string",
    arg: "FILE",
    help: "With --tls: the CA (PEM) every other node's certificate must chain to " +
      "(deno task certs makes one).",
  },
  "acme-directory": {
    type: "string",
    arg: "URL",
    help: "With --tls: obtain and renew the certificate from this ACME directory " +
      "(e.g. https://acme-v02.api.letsencrypt.org/directory); HTTP-01 challenge.",
  },
  "acme-email": { type: "string", arg: "ADDR", help: "Contact address of the ACME account." },
  "acme-ca": {
    type: "string",
    arg: "FILE",
    help: "CA (PEM) of the ACME directory's own HTTPS, when not a public one (a test server).",
  },
  "acme-http-port": {
    type: "string",
    arg: "PORT",
    help: "Port the HTTP-01 challenge is answered on, at the advertised address, while a " +
      "certificate is being obtained. Default 80.",
  },
  "acme-renew-before": {
    type: "string",
    arg: "DURATION",
    help:
      "Renew when less than this is left (e.g. 20d; at most 24d). Default: a third of the lifetime.",
  },
  "node-auth": {
    type: "string",
    arg: "cert|key|both",
    help: "What authenticates node-to-node requests: cert, this node's --cert (signed with " +
      "--key; peers check it against --ca and that it names a node in their server list); " +
      "key, the node key admitted with the admin token; both, signed with both and accepted " +
      "with either (to change a running fleet). Default: cert with --tls --cert, else key.",
  },
} satisfies FlagTable;

/** What authenticates node-to-node requests (`--node-auth`). */
export const NODE_AUTH_MODES = ["cert", "key", "both"] as const;

/** ACME settings of a node. */
export interface AcmeConfig {
  directory: string;
  email: string | null;
  /** `--acme-ca`: file of the directory's own CA, or null for the built-in roots. */
  caFile: string | null;
  httpPort: number;
  /** Renew this long before expiry, or null for a third of the lifetime. */
  renewBeforeMs: number | null;
}

/** A node's TLS settings. */
export interface TlsConfig {
  certFile: string | null;
  keyFile: string | null;
  caFile: string | null;
  acme: AcmeConfig | null;
}

/** The TLS settings from parsed flags, or null without `--tls`. */
export function parseTlsFlags(f: Flags): TlsConfig | null {
  const given = Object.keys(TLS_FLAGS).filter((k) =>
    k !== "tls" && k !== "node-auth" && f.values[k] !== undefined
  );
  if (!f.bool("tls")) {
    if (given.length > 0) throw new UsageError(`--${given[0]} needs --tls`);
    return null;
  }
  const certFile = f.string("cert") ?? null;
  const keyFile = f.string("key") ?? null;
  const directory = f.httpUrl("acme-directory") ?? null;
  if (directory !== null && (certFile !== null || keyFile !== null)) {
    throw new UsageError("--acme-directory obtains the certificate: give it or --cert/--key");
  }
  if (directory === null) {
    if (certFile === null || keyFile === null) {
      throw new UsageError("--tls needs --cert FILE and --key FILE (or --acme-directory URL)");
    }
    if (f.string("ca") === undefined) {
      throw new UsageError(
        "--tls with --cert needs --ca FILE, the CA other nodes' certificates chain to",
      );
    }
    const acmeOnly = given.find((k) => k.startsWith("acme-"));
    if (acmeOnly !== undefined) throw new UsageError(`--${acmeOnly} needs --acme-directory`);
  }
  return {
    certFile,
    keyFile,
    caFile: f.string("ca") ?? null,
    acme: directory === null ? null : {
      directory,
      email: f.string("acme-email") ?? null,
      caFile: f.string("acme-ca") ?? null,
      httpPort: f.port("acme-http-port", 80),
      renewBeforeMs: f.string("acme-renew-before") === undefined
        ? null
        : f.duration("acme-renew-before", 0, 1),
    },
  };
}

/**
 * `--node-auth`: `cert` by default with `--tls --cert` (the certificate names the node), else
 * `key`; `cert` and `both` need `--tls --cert --key --ca` (an ACME certificate names an
 * address, not a node).
 */
export function parseNodeAuth(
  f: Flags,
  tls: TlsConfig | null,
): (typeof NODE_AUTH_MODES)[number] {
  const hasCert = tls !== null && tls.certFile !== null && tls.caFile !== null;
  const mode = f.oneOf("node-auth", NODE_AUTH_MODES, hasCert ? "cert" : "key");
  if (mode !== "key" && !hasCert) {
    throw new UsageError(
      `--node-auth ${mode} needs --tls --cert FILE --key FILE --ca FILE ` +
        "(an ACME certificate names an address, not a node)",
    );
  }
  return mode;
}
