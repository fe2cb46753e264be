/**
 * Unit tests of the replication modules that need no running node: signatures and replay
 * windows (`trust.ts`), the bounded clock (`version.ts`) and the server-list merge rules
 * (`membership.ts`: newest wins, a revoked key never comes back, future versions skipped).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  bodyDigest,
  futureVersionError,
  MAX_CLOCK_SKEW_MS,
  newKey,
  newNonce,
  NonceWindow,
  objectDigest,
  parseAuthFields,
  requestText,
  Signer,
  validPublicKey,
  verifySignature,
} from "../lib/replication/trust.ts";
import { HybridClock } from "../lib/replication/version.ts";
import { Membership } from "../lib/replication/membership.ts";
import { ReplicationDb } from "../lib/replication/db.ts";

Deno.test("trust: signatures verify with the signer's key only, and cover every field", () => {
  const k = newKey(), other = newKey();
  ok(validPublicKey(k.publicKey));
  ok(!validPublicKey("not a key"));
  const text = requestText("POST", "/_cdn/heartbeat", 1000, newNonce(), bodyDigest("{}"));
  const sig = new Signer("a", k).sign(text);
  ok(verifySignature(k.publicKey, text, sig));
  ok(!verifySignature(other.publicKey, text, sig));
  ok(!verifySignature(k.publicKey, text.replace("POST", "GET"), sig));
  ok(!verifySignature(k.publicKey, text, "AAAA"));
  deepEqual(parseAuthFields(`id=a, ts=5, nonce=ab, sig=${sig}`), {
    id: "a",
    ts: 5,
    nonce: "ab",
    sig,
  });
  equal(parseAuthFields("id a"), null);
  equal(
    objectDigest({
      name: "a b.txt",
      contentType: "",
      size: 1,
      sha256: "f".repeat(64),
      mtime: 0,
      meta: {},
      version: { ts: 7, node: "n" },
    }),
    `object=a%20b.txt;v=7.n;sha256=${"f".repeat(64)};deleted=0`,
  );
});

Deno.test("trust: a nonce is fresh once, and only within the skew window", () => {
  let now = 1_000_000;
  const w = new NonceWindow(() => now);
  const n = newNonce();
  ok(w.fresh(n, now));
  ok(!w.fresh(n, now), "replay");
  ok(!w.fresh(newNonce(), now - MAX_CLOCK_SKEW_MS - 1), "too old");
  ok(!w.fresh(newNonce(), now + MAX_CLOCK_SKEW_MS + 1), "too far ahead");
  ok(!w.fresh("short", now), "malformed nonce");
  now += 10;
  ok(w.fresh(newNonce(), now));
});

Deno.test("versions: the clock never follows a time far ahead of the wall clock", () => {
  const now = 5_000_000;
  const c = new HybridClock("a", () => now);
  c.observe(now + 1e9);
  const v = c.next();
  ok(v.ts <= now + MAX_CLOCK_SKEW_MS + 1, `clock jumped to ${v.ts}`);
  ok(futureVersionError({ ts: now + 1e9, node: "x" }, now) !== null);
  equal(futureVersionError({ ts: now + 1000, node: "x" }, now), null);
});

Deno.test("membership: newest wins, a revoked key never comes back, bad entries are skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nearcast-members-" });
  const db = new ReplicationDb(dir);
  try {
    const now = Date.now();
    const lines: string[] = [];
    const clock = new HybridClock("a", () => now);
    const m = new Membership({
      selfId: "a",
      db,
      clock,
      heartbeatMs: 1000,
      now: () => now,
      log: (l) => lines.push(l),
    });
    const kb = newKey().publicKey, kb2 = newKey().publicKey;
    const url = "http://127.0.0.1:1";
    ok(m.merge({ id: "b", url, key: kb, version: { ts: now, node: "a" }, removed: false }));
    ok(!m.merge({ id: "b", url, key: kb2, version: { ts: now - 1, node: "a" }, removed: false }));
    equal(m.keyOf("b"), kb);
    // A newer entry without a key keeps the known key.
    ok(m.merge({ id: "b", url, key: "", version: { ts: now + 1, node: "a" }, removed: false }));
    equal(m.keyOf("b"), kb);
    // Removed: the key is refused, and the same key does not come back at a newer version.
    ok(m.merge({ id: "b", url, key: kb, version: { ts: now + 2, node: "a" }, removed: true }));
    equal(m.keyOf("b"), null);
    ok(!m.merge({ id: "b", url, key: kb, version: { ts: now + 3, node: "c" }, removed: false }));
    equal(m.keyOf("b"), null);
    // A new key (the node joined again) is admitted.
    ok(m.merge({ id: "b", url, key: kb2, version: { ts: now + 4, node: "a" }, removed: false }));
    equal(m.keyOf("b"), kb2);
    // From a list: a future version and a malformed entry are skipped and logged.
    m.mergeList([
      { id: "z", url, key: "", version: { ts: now + 1e9, node: "c" }, removed: false },
      { id: "y", url: "ftp://x", version: { ts: now, node: "c" } },
      { id: "w", url, key: "", version: { ts: now, node: "c" }, removed: false },
    ], "c");
    equal(m.get("z"), undefined);
    equal(m.get("y"), undefined);
    ok(m.get("w") !== undefined);
    ok(lines.some((l) => /skipped z from c: version .* ahead/.test(l)), lines.join("\n"));
    ok(lines.some((l) => /skipped a malformed entry from c/.test(l)), lines.join("\n"));
    // The list survives a restart.
    const again = new Membership({
      selfId: "a",
      db,
      clock,
      heartbeatMs: 1000,
      now: () => now,
      log: () => {},
    });
    equal(again.keyOf("b"), kb2);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
