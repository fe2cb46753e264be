/**
 * `deno task certs` (a private CA and per-node certificates with the right names), the clear
 * start-up errors of `--tls` (missing, mismatched, expired or foreign files; flags without
 * `--tls`), the upload client's `--ca`, and the listener's certificate swap without a restart.
 */
import { equal, match, notEqual, ok } from "node:assert/strict";
import { runReplicaCli } from "./_http_replica.ts";
import { runUpload, stopAll, TOKEN, withTempDir } from "./_upload_cluster.ts";
import { makeCerts, startTlsNode, uploadTls } from "./_tls_cluster.ts";
import { serveLimited } from "../lib/common/http_server.ts";
import { certInfo } from "../lib/tls/files.ts";
import { X509Certificate } from "node:crypto";

async function openssl(args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

Deno.test("tls: certs task makes a CA and per-node certificates with IP and DNS names", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/c`;
    await makeCerts([
      "--out",
      out,
      "--nodes",
      "a=127.0.0.71,b=127.0.0.72+b.cdn.test,dns=127.0.0.1",
    ]);
    for (const n of ["a", "b", "dns"]) {
      equal((await Deno.stat(`${out}/${n}-key.pem`)).mode! & 0o777, 0o600, `${n}-key.pem is 0600`);
      match(await openssl(["verify", "-CAfile", `${out}/ca.pem`, `${out}/${n}.pem`]), /: OK/);
    }
    equal((await Deno.stat(`${out}/ca-key.pem`)).mode! & 0o777, 0o600);
    const b = await openssl(["x509", "-in", `${out}/b.pem`, "-noout", "-text"]);
    match(b, /IP Address:127\.0\.0\.72, DNS:b\.cdn\.test/);
    match(b, /TLS Web Server Authentication/);
    // A second run keeps the CA: certificates made later chain to the same one.
    const ca = await Deno.readTextFile(`${out}/ca.pem`);
    await makeCerts(["--out", out, "--nodes", "c=127.0.0.73"]);
    equal(await Deno.readTextFile(`${out}/ca.pem`), ca);
    match(await openssl(["verify", "-CAfile", `${out}/ca.pem`, `${out}/c.pem`]), /: OK/);
    // Bad lists are usage errors naming the part.
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/certs.ts", "--out", out, "--nodes", "a=not_an@address"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    equal(bad.code, 2);
    match(
      new TextDecoder().decode(bad.stderr),
      /not an IP address or DNS name: received "not_an@address"/,
    );
    // --key-type ed25519: the node's key is Ed25519, signed by the same (P-256) CA.
    await makeCerts(["--out", out, "--nodes", "e=127.0.0.74", "--key-type", "ed25519"]);
    match(await openssl(["x509", "-in", `${out}/e.pem`, "-noout", "-text"]), /ED25519/);
    match(await openssl(["verify", "-CAfile", `${out}/ca.pem`, `${out}/e.pem`]), /: OK/);
    await makeCerts(["--out", out, "--nodes", "r=127.0.0.75", "--key-type", "rsa"]).then(
      () => ok(false, "--key-type rsa must be refused"),
      (e) => match((e as Error).message, /--key-type must be p256 or ed25519/),
    );
  });
});

Deno.test("tls: a node refuses to start on a wrong file, with one clear line", async () => {
  await withTempDir(async (dir) => {
    const c = `${dir}/c`;
    await makeCerts(["--out", c, "--nodes", "a=127.0.0.71,b=127.0.0.72"]);
    await makeCerts(["--out", `${dir}/other`, "--nodes", "x=127.0.0.71"]);
    await makeCerts(["--out", c, "--nodes", "old=127.0.0.71", "--days=-1"]);
    const base = ["-p", "0", "--host", "127.0.0.71", "-o", "http://127.0.0.1:9"];
    const run = (args: string[]) => runReplicaCli([...base, ...args]);
    const tls = (cert: string, key: string, ca = `${c}/ca.pem`) =>
      run(["--tls", "--cert", cert, "--key", key, "--ca", ca]);
    const cases: [Promise<{ code: number; out: string }>, RegExp][] = [
      [tls(`${c}/nope.pem`, `${c}/a-key.pem`), /--cert .*nope\.pem: cannot read it: no such file/],
      [
        tls(`${c}/a.pem`, `${c}/b-key.pem`),
        /--key .*b-key\.pem does not belong to --cert .*a\.pem/,
      ],
      [tls(`${c}/old.pem`, `${c}/old-key.pem`), /--cert .*old\.pem expired on \d{4}-/],
      [
        tls(`${dir}/other/x.pem`, `${dir}/other/x-key.pem`),
        /--cert .*x\.pem is not signed by --ca .*ca\.pem/,
      ],
      [tls(`${c}/a-key.pem`, `${c}/a-key.pem`), /--cert .*a-key\.pem: not a PEM certificate/],
      [run(["--tls"]), /--tls needs --cert FILE and --key FILE/],
      [run(["--cert", `${c}/a.pem`]), /--cert needs --tls/],
      [run(["--tls", "--cert", `${c}/a.pem`, "--key", `${c}/a-key.pem`]), /needs --ca FILE/],
      [run(["--node-auth", "cert"]), /--node-auth cert needs --tls --cert FILE --key FILE --ca/],
      [
        run([
          "--data",
          `${dir}/x`,
          "--id",
          "x",
          "--tls",
          "--cert",
          `${c}/a.pem`,
          "--key",
          `${c}/a-key.pem`,
          "--ca",
          `${c}/ca.pem`,
        ]),
        /--node-auth cert: this node's id is x but --cert .*a\.pem names a \(its CN\)/,
      ],
      [
        run(["--tls", "--acme-directory", "https://127.0.0.1:4/dir"]),
        /--acme-directory https:\/\/127\.0\.0\.1:4\/dir: cannot get it: .*Connection refused/,
      ],
    ];
    for (const [p, re] of cases) {
      const r = await p;
      equal(r.code, 2, r.out);
      match(r.out, re);
    }
  });
});

Deno.test("tls: the upload client needs --ca for an https node and says so", async () => {
  await withTempDir(async (dir) => {
    await makeCerts(["--out", `${dir}/c`, "--nodes", "a=127.0.0.71"]);
    const a = await startTlsNode("a", "127.0.0.71", `${dir}/a`, `${dir}/c`);
    try {
      await Deno.writeTextFile(`${dir}/f.txt`, "x");
      const no = await runUpload([`${dir}/f.txt`, "--to", a.url, "--token", TOKEN, "-q"]);
      equal(no.code, 4, no.err);
      match(no.err, /TLS: the peer's certificate is not signed by our CA \(--ca\).*check --ca/);
      const missing = await runUpload([`${dir}/f.txt`, "--to", a.url, "--ca", `${dir}/nope.pem`]);
      equal(missing.code, 2);
      match(missing.err, /--ca .*nope\.pem: cannot read it: no such file/);
      await uploadTls(`${dir}/f.txt`, a.url, `${dir}/c/ca.pem`);
    } finally {
      await stopAll([a]);
    }
  });
});

/** Serial of the certificate `host:port` serves, and of a PEM file, as openssl prints them. */
async function servedSerial(host: string, port: number): Promise<string> {
  const out = await openssl(["s_client", "-connect", `${host}:${port}`], "");
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)![0];
  return (await openssl(["x509", "-noout", "-serial"], pem)).trim();
}

Deno.test("tls: SIGHUP reloads rotated --cert/--key files; a bad file keeps the old one", async () => {
  await withTempDir(async (dir) => {
    const c = `${dir}/c`;
    await makeCerts(["--out", c, "--nodes", "a=127.0.0.71"]);
    const a = await startTlsNode("a", "127.0.0.71", `${dir}/a`, c);
    try {
      const port = Number(new URL(a.url).port);
      const before = await servedSerial("127.0.0.71", port);
      await makeCerts(["--out", c, "--nodes", "a=127.0.0.71"]); // rotated: new key and serial
      const rotated = (await openssl(["x509", "-in", `${c}/a.pem`, "-noout", "-serial"])).trim();
      notEqual(rotated, before);
      Deno.kill(a.proc.pid, "SIGHUP");
      await a.proc.waitFor(/tls: reloaded --cert and --key: now serving CN=a/);
      equal(await servedSerial("127.0.0.71", port), rotated);
      await Deno.writeTextFile(`${c}/a.pem`, "not a certificate\n");
      Deno.kill(a.proc.pid, "SIGHUP");
      await a.proc.waitFor(/tls: reload refused, still serving the old certificate: .*not a PEM/);
      equal(await servedSerial("127.0.0.71", port), rotated);
      // With --node-auth cert (the default), the new certificate must name this node.
      await makeCerts(["--out", c, "--nodes", "z=127.0.0.71"]);
      await Deno.copyFile(`${c}/z.pem`, `${c}/a.pem`);
      await Deno.copyFile(`${c}/z-key.pem`, `${c}/a-key.pem`);
      Deno.kill(a.proc.pid, "SIGHUP");
      await a.proc.waitFor(
        /tls: reload refused, .*the new --cert names z \(CN\), not this node \(a\)/,
      );
      equal(await servedSerial("127.0.0.71", port), rotated);
    } finally {
      await stopAll([a]);
    }
  });
});

/**
 * `TCP_NODELAY` of this process's established sockets whose local port is `port` (the server
 * side of connections to a listener in this process), read with libc's getsockopt.
 */
function serverSideNoDelay(port: number): number[] {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Deno.readTextFileSync(file).split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[1].endsWith(hex) && f[3] === "01") inodes.add(f[9]);
    }
  }
  const libc = Deno.dlopen("libc.so.6", {
    getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  });
  const out: number[] = [];
  try {
    for (const e of Deno.readDirSync("/proc/self/fd")) {
      let target = "";
      try {
        target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      } catch { /* closed meanwhile */ }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m === null || !inodes.has(m[1])) continue;
      const v = new Int32Array(1), len = new Uint32Array([4]);
      libc.symbols.getsockopt(
        Number(e.name),
        6,
        1,
        new Uint8Array(v.buffer),
        new Uint8Array(len.buffer),
      );
      out.push(v[0]);
    }
  } finally {
    libc.close();
  }
  return out;
}

Deno.test("tls: the listener swaps its certificate without a restart; the port stays exclusive", async () => {
  await withTempDir(async (dir) => {
    const c = `${dir}/c`;
    await makeCerts(["--out", c, "--nodes", "one=127.0.0.1,two=127.0.0.1"]);
    const pair = async (n: string) => ({
      cert: await Deno.readTextFile(`${c}/${n}.pem`),
      key: await Deno.readTextFile(`${c}/${n}-key.pem`),
    });
    const server = serveLimited(
      { port: 0, hostname: "127.0.0.1", tls: await pair("one"), onListen: () => {} },
      () => new Response("ok"),
    );
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${c}/ca.pem`)] });
    const url = `https://127.0.0.1:${server.addr.port}/`;
    const subject = async () =>
      await openssl(
        ["s_client", "-connect", `127.0.0.1:${server.addr.port}`, "-CAfile", `${c}/ca.pem`],
        "",
      );
    try {
      // Another listener cannot take the port, TLS or not (SO_REUSEPORT is not an opening).
      let taken = false;
      try {
        Deno.listen({ hostname: "127.0.0.1", port: server.addr.port }).close();
        taken = true;
      } catch (e) {
        ok(e instanceof Deno.errors.AddrInUse, String(e));
      }
      equal(taken, false);
      // A kept-alive connection from before the swap goes on; new ones get the new certificate.
      equal(await (await fetch(url, { client })).text(), "ok");
      match(await subject(), /subject=CN = one/);
      server.setCertificate(await pair("two"));
      const after = await subject();
      match(after, /subject=CN = two/);
      match(after, /Verify return code: 0/);
      equal(await (await fetch(url, { client })).text(), "ok");
      const fresh = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${c}/ca.pem`)] });
      equal(await (await fetch(url, { client: fresh })).text(), "ok");
      fresh.close();
      notEqual(server.stats.accepted, 0);
      // Accepted TLS connections have TCP_NODELAY (Deno sets it on plain TCP ones only): without
      // it each kept-alive response waited ~40 ms for the client's delayed ACK.
      const held = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${c}/ca.pem`)] });
      equal(await (await fetch(url, { client: held })).text(), "ok");
      const flags = serverSideNoDelay(server.addr.port);
      ok(flags.length > 0, "found the accepted connection's socket");
      ok(flags.every((v) => v === 1), `TCP_NODELAY on accepted TLS connections: ${flags}`);
      held.close();
    } finally {
      client.close();
      await server.shutdown();
    }
  });
});

Deno.test("tls: a certificate's serial is logged as openssl prints it (leading zero kept)", async () => {
  await withTempDir(async (dir) => {
    // A serial whose first byte is below 0x10: the runtime gives "D152…", openssl "0D152…".
    for (const serial of ["0x0D152B325199FE04", "0x7F01", "0x01"]) {
      await openssl([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=serial.test",
        "-days",
        "1",
        "-set_serial",
        serial,
        "-keyout",
        `${dir}/k.pem`,
        "-out",
        `${dir}/c.pem`,
      ]);
      const printed = (await openssl(["x509", "-noout", "-serial", "-in", `${dir}/c.pem`]))
        .trim().replace(/^serial=/, "");
      const info = certInfo(new X509Certificate(await Deno.readTextFile(`${dir}/c.pem`)));
      equal(info.serial, printed, `serial ${serial}`);
    }
  });
});
