/**
 * Crash recovery at open: what a crash can leave is a temporary file, a body file no row
 * references, or (after a lost disk write) a row whose file is missing or has the wrong size.
 *
 * @module
 */

import type { DatabaseSync } from "node:sqlite";
import { type BlobFiles, SHA256_HEX } from "./_blobs.ts";
import type { Statements } from "./_schema.ts";

/** What `openStore` found and repaired; exposed for logs and tests. */
export interface RecoveryReport {
  /** Temporary files removed (bodies a crash interrupted). */
  tempFilesRemoved: number;
  /** Body files removed because no row referenced them. */
  orphanFilesRemoved: number;
  /** Rows removed because their file was missing or had the wrong size. */
  rowsDropped: number;
}

/** Removes temporary and unreferenced files, and rows whose file is missing or wrong. */
export function recover(db: DatabaseSync, q: Statements, blobs: BlobFiles): RecoveryReport {
  const report: RecoveryReport = { tempFilesRemoved: 0, orphanFilesRemoved: 0, rowsDropped: 0 };
  for (const e of Deno.readDirSync(blobs.tmp)) {
    Deno.removeSync(`${blobs.tmp}/${e.name}`, { recursive: true });
    report.tempFilesRemoved++;
  }
  const files = new Map<string, number>(); // sha256 -> size on disk
  for (const shard of Deno.readDirSync(blobs.objects)) {
    if (!shard.isDirectory || !/^[0-9a-f]{2}$/.test(shard.name)) continue;
    blobs.knowShard(shard.name);
    for (const f of Deno.readDirSync(`${blobs.objects}/${shard.name}`)) {
      const path = `${blobs.objects}/${shard.name}/${f.name}`;
      if (f.isFile && SHA256_HEX.test(f.name) && f.name.startsWith(shard.name)) {
        files.set(f.name, Deno.statSync(path).size);
      }
    }
  }
  const referenced = new Set<string>();
  const rows = db.prepare("SELECT key, size, sha256 FROM objects WHERE in_file = 1")
    .all() as unknown as { key: string; size: number; sha256: string }[];
  db.exec("BEGIN IMMEDIATE");
  try {
    for (const r of rows) {
      if (files.get(r.sha256) === r.size) {
        referenced.add(r.sha256);
      } else {
        q.del.run(r.key);
        report.rowsDropped++;
      }
    }
    db.exec("COMMIT");
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
  for (const sha of files.keys()) {
    if (!referenced.has(sha)) {
      Deno.removeSync(blobs.pathOf(sha));
      report.orphanFilesRemoved++;
    }
  }
  return report;
}
