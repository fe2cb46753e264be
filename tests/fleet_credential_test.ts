/**
 * Each replica has its own credential at the DNS server: its node key, admitted once with the
 * admin token. With real processes on loopback: a replica restarts without the admin token (and
 * with a wrong one) and registers by its key, across a DNS server restart and after the server
 * forgot its session; a revoked replica is refused and no longer answered while another one is;
 * a registration signed by another key for the same id is refused.
 */
import assert from "node:assert/strict";
import {
  answerSigned,
  dhSession,
  newDhKey,
  registrationHeaders,
} from "../lib/fleet/credentials.ts";
import { sealDatagram, sessionHeaders, signDatagram } from "../lib/fleet/protocol.ts";
import { newKey, Signer, type StoredKey } from "../lib/replication/trust.ts";
import {
  http,
  type Proc,
  replicaPort,
  resolveA,
  startDns,
  startReplica,
  testAgent,
  waitFor,
} from "../lib/fleet/_testing.ts";

const ZONE = "cdn.test";
const TOKEN = "credential-test-token";
const A = "127.0.0.51";
const B = "127.0.0.52";

type Row = Record<string, unknown>;

function replica(id: string, host: string, dir: string, control: number, extra: string[]): Proc {
  return startReplica([
    "--host",
    host,
    "--id",
    id,
    "--data",
    dir,
    "--announce",
    `127.0.0.1:${control}`,
    ...extra,
  ]);
}

/** A registration of `id` signed with `key`, with `token` as admin token when given. */
async function signedRegister(
  control: number,
  id: string,
  key: StoredKey,
  token: string | null,
  dh?: string,
): Promise<
  {
    status: number;
    body: Row;
    res: Response;
    nonce: string;
    text: string;
    headers: Record<string, string>;
    sentBody: string;
  }
> {
  const body = JSON.stringify({ id, address: "127.0.0.99", port: 9, key: key.publicKey, dh });
  const { headers, nonce } = registrationHeaders(new Signer(id, key), "/register", body, token);
  const res = await fetch(`http://127.0.0.1:${control}/register`, {
    method: "POST",
    headers,
    body,
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text), res, nonce, text, headers, sentBody: body };
}

async function fleetOf(host: string, p: Proc): Promise<Row> {
  return (await http(`http://${host}:${await replicaPort(p)}/_cdn/fleet`)).body;
}

Deno.test({
  name: "fleet credential: admitted once, then a restart registers by the key alone",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dnsDir = await Deno.makeTempDir({ prefix: "nearcast_cred_dns_" });
    const aDir = await Deno.makeTempDir({ prefix: "nearcast_cred_a_" });
    const dnsArgs = ["-n", ZONE, "--data", dnsDir, "--admin-token", TOKEN, "--probe-port", "9"];
    let dns = await startDns(dnsArgs);
    const control = dns.control;
    const base = `http://127.0.0.1:${control}`;
    const alive = (what: string, id: string, proc: () => Proc) =>
      waitFor(
        what,
        async () => {
          const rows = (await http(`${base}/replicas`)).body.replicas as Row[];
          return rows.find((r) => r.id === id && r.state === "alive" && (r.seq as number) >= 1);
        },
        30_000,
        100,
        () => dns.output() + proc().output(),
      );
    let a = replica("a", A, aDir, control, ["--admin-token", TOKEN]);
    try {
      await alive("a admitted with the admin token", "a", () => a);

      // Restart the replica without the admin token, and the DNS server on the same database:
      // the key is still admitted and the server's key is still the pinned one.
      await a.stop("SIGKILL");
      await dns.stop("SIGTERM");
      dns = await startDns([...dnsArgs, "--control", String(control)]);
      await http(`${base}/replicas/a`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      a = replica("a", A, aDir, control, []);
      await alive("a registered by its key, without the admin token", "a", () => a);
      assert.match(a.output(), /registered as a .* by its key/);
      assert.doesNotMatch(a.output(), /admitted with the admin token/, "no token this time");

      // The server forgets its session: the signed `register` reply makes it register again
      // by its key.
      const before = ((await fleetOf(A, a)).stats as Row).registrations as number;
      const del = await http(`${base}/replicas/a`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(del.status, 200);
      await waitFor(
        "a registered again",
        async () => {
          const s = (await fleetOf(A, a)).stats as Row;
          return (s.registrations as number) > before ? s : undefined;
        },
        30_000,
        100,
        () => dns.output() + a.output(),
      );
      await alive("a alive again", "a", () => a);

      // With a wrong admin token, the key alone is enough too (the token is not sent).
      await a.stop("SIGKILL");
      a = replica("a", A, aDir, control, ["--admin-token", "wrong-token"]);
      await waitFor(
        "a registered by its key with a wrong token",
        () => /registered as a .* by its key/.test(a.output()) || undefined,
        30_000,
        100,
        () => dns.output() + a.output(),
      );
      await alive("a alive", "a", () => a);
      assert.equal(await resolveA(dns.port, ZONE), A);

      // A revoked key stays revoked across a DNS restart, even with the admin token.
      const aKey = JSON.parse(await Deno.readTextFile(`${aDir}/node_key.json`)) as StoredKey;
      const revoked = await http(`${base}/replicas/a/credential`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(revoked.status, 200);
      await a.stop("SIGKILL");
      await dns.stop("SIGTERM");
      dns = await startDns([...dnsArgs, "--control", String(control)]);
      assert.equal((await signedRegister(control, "a", aKey, TOKEN)).status, 401);
      assert.ok(
        !((await http(`${base}/replicas`)).body.replicas as Row[]).some((r) => r.id === "a"),
      );

      // A DNS server with a new database (and key) does not know a's key: a, holding the token
      // and the old server key pinned, is refused by its key and has it admitted again.
      await dns.stop("SIGTERM");
      const fresh = await Deno.makeTempDir({ prefix: "nearcast_cred_dns2_" });
      try {
        dns = await startDns([...dnsArgs, "--data", fresh, "--control", String(control)]);
        a = replica("a", A, aDir, control, ["--admin-token", TOKEN]);
        await alive("a admitted again", "a", () => a);
        assert.match(a.output(), /HTTP 401[\s\S]*key admitted with the admin token/);
      } finally {
        await a.stop();
        await dns.stop("SIGTERM");
        await Deno.remove(fresh, { recursive: true });
      }
    } finally {
      await a.stop();
      await dns.stop("SIGTERM");
      await Deno.remove(dnsDir, { recursive: true });
      await Deno.remove(aDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "fleet credential: revoked alone; another key for the same id is refused",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const aDir = await Deno.makeTempDir({ prefix: "nearcast_cred_a_" });
    const bDir = await Deno.makeTempDir({ prefix: "nearcast_cred_b_" });
    const dns = await startDns(["-n", ZONE, "--admin-token", TOKEN, "--policy", "geo"]);
    const base = `http://127.0.0.1:${dns.control}`;
    const rows = async () => (await http(`${base}/replicas`)).body.replicas as Row[];
    const a = replica("a", A, aDir, dns.control, ["--admin-token", TOKEN]);
    const b = replica("b", B, bDir, dns.control, ["--admin-token", TOKEN]);
    const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      await waitFor(
        "a and b alive",
        async () => {
          const r = await rows();
          return r.filter((x) => x.state === "alive").length === 2 ? r : undefined;
        },
        30_000,
        100,
        () => dns.output() + a.output() + b.output(),
      );

      // Another key for a's id: refused without the admin token, and with a wrong one.
      const other = newKey();
      assert.equal((await signedRegister(dns.control, "a", other, null)).status, 401);
      assert.equal((await signedRegister(dns.control, "a", other, "wrong")).status, 401);
      const aKey = JSON.parse(await Deno.readTextFile(`${aDir}/node_key.json`)) as StoredKey;
      // a's own key is accepted alone, and the answer is signed by the server's key.
      const own = await signedRegister(dns.control, "a", aKey, null);
      assert.equal(own.status, 200);
      // The same signed request again (a replay) is refused.
      const replay = await fetch(`${base}/register`, {
        method: "POST",
        headers: own.headers,
        body: own.sentBody,
      });
      await replay.body?.cancel();
      assert.equal(replay.status, 401);
      // A body other than the one signed is refused (400).
      const signedBody = JSON.stringify({ id: "a", address: A, port: 9, key: aKey.publicKey });
      const swapped = registrationHeaders(new Signer("a", aKey), "/register", signedBody, null);
      const swap = await fetch(`${base}/register`, {
        method: "POST",
        headers: swapped.headers,
        body: signedBody.replace(A, "127.0.0.98"),
      });
      await swap.body?.cancel();
      assert.equal(swap.status, 400);
      // The signature is checked before the body is read: a body that never ends gets 401 at once.
      const bad = registrationHeaders(new Signer("a", newKey()), "/register", signedBody, null);
      const stalled = await fetch(`${base}/register`, {
        method: "POST",
        headers: bad.headers,
        body: new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode("{")) }),
        // @ts-ignore: Deno's fetch takes `duplex` for a streamed body
        duplex: "half",
        signal: AbortSignal.timeout(5_000),
      });
      await stalled.body?.cancel();
      assert.equal(stalled.status, 401);
      const serverKey = own.body.serverKey as string;
      assert.ok(answerSigned(serverKey, own.nonce, 200, own.res.headers, own.text));
      assert.ok(!answerSigned(serverKey, "0".repeat(32), 200, own.res.headers, own.text));

      // A third replica, c, admitted by hand: its session is used below after revocation.
      // It sends an X25519 key: the session token is derived on both sides, not in the answer.
      const cKey = newKey();
      const cDh = newDhKey();
      const c = await signedRegister(dns.control, "c", cKey, TOKEN, cDh.publicKey);
      assert.equal(c.status, 200);
      assert.equal(c.body.token, "");
      const cToken = dhSession(cDh.privateKey, c.body.dh as string, "c", c.nonce);
      assert.ok(!c.text.includes(cToken));
      const path = "/replicas/c/held";
      const held = JSON.stringify({ paths: ["/x"] });
      const putHeld = async () => {
        const res = await fetch(`${base}${path}`, {
          method: "PUT",
          headers: sessionHeaders(cToken, "c", "PUT", path, held).headers,
          body: held,
        });
        await res.body?.cancel();
        return res.status;
      };
      assert.equal(await putHeld(), 200, "the derived session token is the server's");

      // Revocation is admin only.
      assert.equal((await http(`${base}/replicas/a/credential`, { method: "DELETE" })).status, 401);
      const revoke = (id: string) =>
        http(`${base}/replicas/${id}/credential`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${TOKEN}` },
        });
      assert.equal((await revoke("a")).status, 200);
      assert.equal((await revoke("c")).status, 200);
      assert.equal((await revoke("nobody")).status, 404);

      // a (which holds the admin token) cannot come back with its key: refused, never answered;
      // b keeps being answered.
      assert.equal((await signedRegister(dns.control, "a", aKey, null)).status, 401);
      assert.equal((await signedRegister(dns.control, "a", aKey, TOKEN)).status, 401);
      await waitFor(
        "a refused",
        () => /cannot register .*HTTP 401/.test(a.output()) || undefined,
        30_000,
        100,
        a.output,
      );
      for (let i = 0; i < 20; i++) {
        assert.equal(await resolveA(dns.port, ZONE, "127.0.0.1"), B);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual((await rows()).map((r) => [r.id, r.credential]), [["b", true]]);
      assert.equal((await rows())[0].state, "alive");

      // c's session is gone: its held report is refused, its heartbeat is not accepted, and it
      // cannot register again by its key.
      assert.equal(await putHeld(), 401);
      const hb = {
        id: "c",
        ts: Date.now(),
        seq: 1,
        known: 0,
        load: { rps: 0, cacheBytes: 0, hitRatio: 0 },
      };
      const rejected = async () =>
        ((await http(`${base}/replicas`)).body.heartbeats as Row).rejectedHeartbeats as number;
      const r0 = await rejected();
      await sock.send(sealDatagram(cToken, hb), {
        transport: "udp",
        hostname: "127.0.0.1",
        port: dns.control,
      });
      await waitFor("c's heartbeat rejected", async () => (await rejected()) > r0 || undefined);
      assert.equal((await signedRegister(dns.control, "c", cKey, null)).status, 401);
      assert.ok(!(await rows()).some((r) => r.id === "c"));
    } finally {
      sock.close();
      await a.stop();
      await b.stop();
      await dns.stop("SIGTERM");
      await Deno.remove(aDir, { recursive: true });
      await Deno.remove(bDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "fleet credential: signed register replies are bounded per second",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dns = await startDns(["-n", ZONE, "--admin-token", TOKEN]);
    const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: dns.control };
      const load = { rps: 0, cacheBytes: 0, hitRatio: 0 };
      const sent = 500;
      for (let seq = 1; seq <= sent; seq++) {
        await sock.send(
          sealDatagram("guess", { id: "x", ts: Date.now(), seq, known: 0, load }),
          to,
        );
      }
      let replies = 0;
      for (;;) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const got = await Promise.race([
          sock.receive(),
          new Promise<null>((r) => timer = setTimeout(() => r(null), 1000)),
        ]).finally(() => clearTimeout(timer));
        if (got === null) break;
        assert.match(new TextDecoder().decode(got[0]), /^ns1 \S{88}\n\{.*"status":"register"/);
        replies++;
      }
      // 500 sent within at most two one-second windows of 200 replies each.
      assert.ok(replies > 0 && replies <= 400, `${replies} replies`);
    } finally {
      sock.close();
      await dns.stop("SIGTERM");
    }
  },
});

Deno.test({
  name:
    "fleet credential: a register reply signed by another key is dropped; the server's is taken",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dns = await startDns(["-n", ZONE, "--admin-token", TOKEN]);
    const agent = testAgent("r1", dns.control, TOKEN);
    const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      agent.start();
      await waitFor("replies", () => agent.stats.replies >= 2 || undefined, 30_000, 50, dns.output);
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: agent.localPort };
      const other = new Signer("dns", newKey());
      const bad = agent.stats.badReplies;
      const seq = agent.stats.heartbeats + 1;
      const reply = { seq, status: "register", version: 999, servers: null, id: "r1" };
      await sock.send(signDatagram((t) => other.sign(t), reply), to);
      await waitFor("dropped", () => agent.stats.badReplies > bad || undefined);
      assert.equal(agent.stats.registrations, 1);
      // The server forgets r1: its signed `register` reply is taken and r1 registers by its key.
      const del = await http(`http://127.0.0.1:${dns.control}/replicas/r1`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(del.status, 200);
      await waitFor("registered again", () => agent.stats.registrations >= 2 || undefined);
    } finally {
      sock.close();
      await agent.close();
      await dns.stop("SIGTERM");
    }
  },
});

Deno.test({
  name:
    "fleet credential: without --admin-token, a loopback replica restarted with a new key is admitted",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dns = await startDns(["-n", ZONE]);
    const base = `http://127.0.0.1:${dns.control}`;
    const args = ["--host", A, "--id", "t", "--announce", `127.0.0.1:${dns.control}`];
    let t = startReplica(args);
    const alive = (what: string) =>
      waitFor(
        what,
        async () => {
          const rows = (await http(`${base}/replicas`)).body.replicas as Row[];
          return rows.find((r) => r.id === "t" && r.state === "alive" && (r.seq as number) >= 1);
        },
        30_000,
        100,
        () => dns.output() + t.output(),
      );
    try {
      await alive("t alive");
      // No --data: the restarted replica has a new key; loopback is the admin here.
      await t.stop("SIGKILL");
      assert.equal(
        (await http(`${base}/replicas/t`, { method: "DELETE" })).status,
        200,
        "from loopback without --admin-token",
      );
      t = startReplica(args);
      await alive("t alive again with a new key");
    } finally {
      await t.stop();
      await dns.stop("SIGTERM");
    }
  },
});
