import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { DEFAULT_FILE_THRESHOLD, MAX_KEY_LENGTH, openStore } from "../lib/store/sqlite_store.ts";
import { bytes, objectFiles, sha256, streamOf, withTempDir } from "./_store_helpers.ts";

const T = 4096; // small threshold so "large" bodies stay small in tests
const EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

Deno.test("store: small, large and empty bodies round-trip with correct entries", async () => {
  await withTempDir(async (dir) => {
    let clock = 1_000;
    const store = openStore(dir, { fileThreshold: T, now: () => clock });
    try {
      const small = bytes(T - 1, 1);
      const large = bytes(T * 10 + 3, 2);
      const e1 = await store.put("/small", '{"s":200}', small);
      clock = 2_000;
      const e2 = await store.put("/large", '{"s":200}', large, true);
      const e3 = await store.put("/empty", "{}", new Uint8Array(0));
      assert.deepEqual(e1, {
        key: "/small",
        meta: '{"s":200}',
        size: small.length,
        sha256: sha256(small),
        pinned: false,
        storedAt: 1_000,
      });
      assert.equal(e2.sha256, sha256(large));
      assert.equal(e2.pinned, true);
      assert.equal(e2.storedAt, 2_000);
      assert.equal(e3.sha256, EMPTY_SHA);
      assert.deepEqual(await store.read("/small"), small);
      assert.deepEqual(await store.read("/large"), large);
      assert.deepEqual(await store.read("/empty"), new Uint8Array(0));
      assert.deepEqual(store.head("/large"), e2);
      assert.equal(store.filePath("/small"), null);
      assert.equal(store.filePath("/empty"), null);
      const p = store.filePath("/large")!;
      assert.equal(p, `${dir}/objects/${e2.sha256.slice(0, 2)}/${e2.sha256}`);
      assert.deepEqual(await Deno.readFile(p), large);
      assert.equal(await store.read("/absent"), null);
      assert.equal(store.head("/absent"), null);
      // Only the large body has a file.
      assert.deepEqual(objectFiles(dir), [`${e2.sha256.slice(0, 2)}/${e2.sha256}`]);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: the threshold boundary puts exactly fileThreshold bytes in a file", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      await store.put("/below", "", bytes(T - 1, 3));
      await store.put("/at", "", bytes(T, 4));
      assert.equal(store.filePath("/below"), null);
      assert.notEqual(store.filePath("/at"), null);
    } finally {
      store.close();
    }
  });
  assert.equal(DEFAULT_FILE_THRESHOLD, 64 * 1024);
});

Deno.test("store: replace swaps the body atomically and frees the old file", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      const a = bytes(T * 3, 5);
      const b = bytes(T * 2, 6);
      await store.put("/k", "a", a);
      await store.put("/k", "b", b);
      assert.deepEqual(await store.read("/k"), b);
      assert.equal(store.head("/k")!.meta, "b");
      assert.deepEqual(objectFiles(dir), [`${sha256(b).slice(0, 2)}/${sha256(b)}`]);
      // File -> database body, and back.
      await store.put("/k", "c", bytes(10, 7));
      assert.deepEqual(objectFiles(dir), []);
      assert.deepEqual(await store.read("/k"), bytes(10, 7));
      await store.put("/k", "d", a);
      assert.deepEqual(await store.read("/k"), a);
      assert.equal([...store.entries()].length, 1);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: delete removes the row and the file; second delete is false", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      await store.put("/big", "", bytes(T * 2, 8));
      await store.put("/small", "", bytes(5, 9));
      assert.equal(store.delete("/big"), true);
      assert.equal(store.delete("/big"), false);
      assert.equal(store.delete("/small"), true);
      assert.equal(await store.read("/big"), null);
      assert.equal(store.head("/small"), null);
      assert.deepEqual(objectFiles(dir), []);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: keys with the same body share one file until the last is gone", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      const body = bytes(T * 4, 10);
      const file = `${sha256(body).slice(0, 2)}/${sha256(body)}`;
      await store.put("/a", "", body);
      await store.putStream("/b", "", streamOf(body));
      await store.put("/c", "", body);
      assert.deepEqual(objectFiles(dir), [file]);
      assert.equal(store.filePath("/a"), store.filePath("/b"));
      store.delete("/a");
      await store.put("/c", "", bytes(3, 11)); // replaced by a database body
      assert.deepEqual(objectFiles(dir), [file]);
      assert.deepEqual(await store.read("/b"), body);
      store.delete("/b");
      assert.deepEqual(objectFiles(dir), []);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: concurrent puts and deletes of a shared body keep the file", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      const body = bytes(T * 8, 12);
      // Delete the last other reference at every point of a put of the same body, including
      // between its rename and its commit: the file must survive for the new row.
      for (let delay = 0; delay < 12; delay++) {
        await store.put("/a", "", body);
        const p = store.put("/b", "", body);
        for (let i = 0; i < delay; i++) await new Promise((r) => setTimeout(r, 0));
        store.delete("/a");
        await p;
        assert.deepEqual(await store.read("/b"), body, `delay ${delay}`);
        store.delete("/b");
        assert.deepEqual(objectFiles(dir), [], `delay ${delay}`);
      }
      await store.put("/b", "", body);
      await Promise.all([store.put("/x", "", body), store.put("/y", "", body)]);
      store.delete("/b");
      store.delete("/x");
      assert.deepEqual(await store.read("/y"), body);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: a read racing a replace returns the old or the new body, never null", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      const a = bytes(T * 64, 30);
      const b = bytes(T * 64, 31);
      const seen = new Set<string>();
      // The read starts at every point of the replace; at some, the old file is unlinked
      // between the read's lookup and its open.
      for (let delay = 0; delay < 40; delay++) {
        await store.put("/k", "a", a);
        const writing = store.put("/k", "b", b);
        for (let i = 0; i < delay; i++) await new Promise((r) => setTimeout(r, 0));
        const reading = store.read("/k");
        await writing;
        const got = await reading;
        assert.ok(got !== null, `delay ${delay}: null`);
        const which = sha256(got) === sha256(a) ? "a" : sha256(got) === sha256(b) ? "b" : "?";
        assert.notEqual(which, "?", `delay ${delay}: neither body`);
        seen.add(which);
        assert.deepEqual(await store.read("/k"), b);
      }
      assert.ok(seen.size >= 1);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: putStream stores small and large streams and checks size and hash", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      const large = bytes(T * 5 + 17, 13);
      const small = bytes(100, 14);
      const e = await store.putStream("/l", "m", streamOf(large, 1000), {
        expectedSize: large.length,
        expectedSha256: sha256(large),
        pinned: true,
      });
      assert.equal(e.sha256, sha256(large));
      assert.equal(e.pinned, true);
      assert.deepEqual(await store.read("/l"), large);
      await store.putStream("/s", "m", streamOf(small, 30));
      assert.equal(store.filePath("/s"), null);
      assert.deepEqual(await store.read("/s"), small);
      await store.putStream("/e", "m", streamOf(new Uint8Array(0)), { expectedSize: 0 });
      assert.deepEqual(await store.read("/e"), new Uint8Array(0));
    } finally {
      store.close();
    }
  });
});

Deno.test("store: a failed putStream stores nothing and keeps the old value", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      const old = bytes(T * 2, 15);
      await store.put("/k", "old", old);
      const body = bytes(T * 6, 16);
      const cases: [string, () => Promise<unknown>, RegExp][] = [
        [
          "stream error",
          () => store.putStream("/k", "new", streamOf(body, 1000, T * 3)),
          /Cannot store "\/k": body stream failed after \d+ bytes.*origin connection reset.*temporary file ".*objects\/tmp\//,
        ],
        [
          "short",
          () =>
            store.putStream("/k", "new", streamOf(body.subarray(0, T * 5)), {
              expectedSize: body.length,
            }),
          /Cannot store "\/k": body stream ended after 20480 bytes, expected 24576/,
        ],
        [
          "long",
          () => store.putStream("/k", "new", streamOf(body), { expectedSize: T * 2 }),
          /Cannot store "\/k": body is longer than expectedSize 8192/,
        ],
        [
          "hash",
          () => store.putStream("/k", "new", streamOf(body), { expectedSha256: sha256(old) }),
          /Cannot store "\/k": body SHA-256 [0-9a-f]{64} does not match expected/,
        ],
        [
          "small stream error",
          () => store.putStream("/k", "new", streamOf(body, 10, 50)),
          /Cannot store "\/k": body stream failed after 50 bytes/,
        ],
      ];
      for (const [name, run, re] of cases) {
        await assert.rejects(run, re, name);
        assert.deepEqual(await store.read("/k"), old, name);
        assert.equal(store.head("/k")!.meta, "old", name);
        assert.deepEqual(
          objectFiles(dir),
          [`${sha256(old).slice(0, 2)}/${sha256(old)}`],
          `${name}: no leftover file`,
        );
      }
      await assert.rejects(
        () => store.putStream("/n", "new", streamOf(body, 1000, T * 2)),
        /body stream failed/,
      );
      assert.equal(store.head("/n"), null);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: bad inputs get clear errors and change nothing", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      await store.put("/k", "m", bytes(10, 17));
      assert.throws(() => store.head(""), /key must be a non-empty string/);
      await assert.rejects(
        () => store.put("x".repeat(MAX_KEY_LENGTH + 1), "", new Uint8Array(1)),
        RangeError,
      );
      await assert.rejects(
        () => store.put("/k", 5 as unknown as string, new Uint8Array(1)),
        /Cannot store "\/k": meta must be a string/,
      );
      await assert.rejects(
        () => store.put("/k", "", "text" as unknown as Uint8Array),
        /Cannot store "\/k": body must be a Uint8Array/,
      );
      await assert.rejects(
        () => store.putStream("/k", "", streamOf(new Uint8Array(1)), { expectedSize: -1 }),
        RangeError,
      );
      await assert.rejects(
        () => store.putStream("/k", "", streamOf(new Uint8Array(1)), { expectedSha256: "abc" }),
        SyntaxError,
      );
      assert.throws(() => openStore(dir, { fileThreshold: -1 }), RangeError);
      assert.deepEqual(await store.read("/k"), bytes(10, 17));
      assert.equal(store.head("/k")!.meta, "m");
    } finally {
      store.close();
    }
    assert.throws(() => store.head("/k"), /Cannot look up "\/k": store ".*" is closed/);
  });
});

Deno.test("store: updateMeta changes only the metadata", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, { fileThreshold: T });
    try {
      const body = bytes(T * 2, 18);
      const before = await store.put("/k", "v1", body);
      store.updateMeta("/k", "v2");
      assert.deepEqual(store.head("/k"), { ...before, meta: "v2" });
      assert.deepEqual(await store.read("/k"), body);
      store.updateMeta("/absent", "v"); // an absent key (deleted meanwhile) is ignored
      assert.equal(store.head("/absent"), null);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: entries() lists every entry, across pages, after reopen", async () => {
  await withTempDir(async (dir) => {
    const N = 1300; // more than two pages of entries()
    let store = openStore(dir, { fileThreshold: T, now: () => 42 });
    const expected = new Map<string, string>();
    try {
      for (let i = 0; i < N; i++) {
        const b = bytes(i % 7 === 0 ? T + i : i, i + 100);
        await store.put(`/obj/${i}`, `{"i":${i}}`, b, i % 3 === 0);
        expected.set(`/obj/${i}`, sha256(b));
      }
    } finally {
      store.close();
    }
    store = openStore(dir, { fileThreshold: T });
    try {
      assert.deepEqual(store.recovery, {
        tempFilesRemoved: 0,
        orphanFilesRemoved: 0,
        rowsDropped: 0,
      });
      const seen = new Map<string, string>();
      for (const e of store.entries()) {
        seen.set(e.key, e.sha256);
        assert.equal(e.storedAt, 42);
        assert.equal(e.pinned, Number(e.key.slice(5)) % 3 === 0);
        assert.equal(e.meta, `{"i":${e.key.slice(5)}}`);
      }
      assert.deepEqual(seen, expected);
      for (const [key, sha] of [...expected].filter((_, i) => i % 97 === 0)) {
        assert.equal(sha256((await store.read(key))!), sha, key);
      }
    } finally {
      store.close();
    }
  });
});

Deno.test("store: a corrupt, truncated or missing file is detected and removed", async () => {
  await withTempDir(async (dir) => {
    const a = bytes(T * 3, 20);
    const b = bytes(T * 3, 21);
    const c = bytes(T * 3, 22);
    let store = openStore(dir, { fileThreshold: T });
    let pa = "", pb = "", pc = "";
    try {
      await store.put("/a", "", a);
      await store.put("/a2", "", a); // shares the corrupt file
      await store.put("/b", "", b);
      await store.put("/c", "", c);
      pa = store.filePath("/a")!;
      pb = store.filePath("/b")!;
      pc = store.filePath("/c")!;
    } finally {
      store.close();
    }
    // Same size, one flipped byte: only the hash can tell.
    const bad = a.slice();
    bad[1234] ^= 0x40;
    await Deno.writeFile(pa, bad);
    // Truncated: caught at open (wrong size).
    await Deno.truncate(pb, T);
    store = openStore(dir, { fileThreshold: T });
    try {
      assert.equal(store.recovery.rowsDropped, 1);
      assert.equal(store.recovery.orphanFilesRemoved, 1);
      assert.equal(store.head("/b"), null);
      assert.equal(await store.read("/a"), null);
      assert.equal(store.head("/a"), null);
      assert.equal(store.head("/a2"), null, "every key sharing the corrupt file is dropped");
      await assert.rejects(() => Deno.stat(pa), Deno.errors.NotFound);
      await assert.rejects(() => Deno.stat(pb), Deno.errors.NotFound);
      // Removed while open: read() notices.
      await Deno.remove(pc);
      assert.equal(await store.read("/c"), null);
      assert.equal(store.head("/c"), null);
      // Truncated while open: the size check runs on every read.
      await store.put("/c", "", c);
      assert.deepEqual(await store.read("/c"), c);
      await Deno.truncate(pc, 10);
      assert.equal(await store.read("/c"), null);
      assert.deepEqual([...store.entries()], []);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: a corrupt database body is detected by its hash", async () => {
  await withTempDir(async (dir) => {
    let store = openStore(dir, { fileThreshold: T });
    try {
      await store.put("/s", "", bytes(100, 23));
    } finally {
      store.close();
    }
    const db = new DatabaseSync(`${dir}/store.sqlite`);
    try {
      db.prepare("UPDATE objects SET body = ? WHERE key = '/s'").run(bytes(100, 24));
    } finally {
      db.close();
    }
    store = openStore(dir, { fileThreshold: T });
    try {
      assert.equal(await store.read("/s"), null);
      assert.equal(store.head("/s"), null);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: leftovers of a crash are cleaned at open", async () => {
  await withTempDir(async (dir) => {
    const keep = bytes(T * 2, 25);
    let store = openStore(dir, { fileThreshold: T });
    try {
      await store.put("/keep", "", keep);
    } finally {
      store.close();
    }
    const orphan = bytes(T * 2, 26);
    const orphanSha = sha256(orphan);
    await Deno.mkdir(`${dir}/objects/${orphanSha.slice(0, 2)}`, { recursive: true });
    await Deno.writeFile(`${dir}/objects/${orphanSha.slice(0, 2)}/${orphanSha}`, orphan);
    await Deno.writeFile(`${dir}/objects/tmp/0b7c.tmp`, bytes(999, 27));
    await Deno.writeFile(`${dir}/objects/tmp/another.tmp`, new Uint8Array(0));
    store = openStore(dir, { fileThreshold: T });
    try {
      assert.deepEqual(store.recovery, {
        tempFilesRemoved: 2,
        orphanFilesRemoved: 1,
        rowsDropped: 0,
      });
      assert.deepEqual(objectFiles(dir), [`${sha256(keep).slice(0, 2)}/${sha256(keep)}`]);
      assert.deepEqual(await store.read("/keep"), keep);
    } finally {
      store.close();
    }
  });
});

Deno.test("store: a database from a newer schema is refused", async () => {
  await withTempDir((dir) => {
    openStore(dir).close();
    const db = new DatabaseSync(`${dir}/store.sqlite`);
    try {
      db.exec("PRAGMA user_version = 99");
    } finally {
      db.close();
    }
    assert.throws(() => openStore(dir), /schema version 99 is newer than 1/);
  });
});
