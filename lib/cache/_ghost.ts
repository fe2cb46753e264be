/**
 * A direct-mapped ghost of recently evicted keys for the TypeScript LFRU: a tag per position
 * (the key's hash with tag bits) and the ghost's eviction count when it was written, so that a
 * hit can be judged by how many evictions ago the key left (see `adapt` in `lfru.ts`).
 *
 * @module
 */

/** Tags and eviction stamps of `length` positions (a power of two); position = hash & mask. */
export class Ghost {
  readonly tags: Uint32Array<ArrayBuffer>;
  readonly at: Uint32Array<ArrayBuffer>;
  /** Evictions written so far, mod 2^32. */
  evictions = 0;

  constructor(length: number) {
    this.tags = new Uint32Array(length);
    this.at = new Uint32Array(length);
  }

  /**
   * Writes `tag` at the position of hash `h`, stamped with the eviction count; `counts` false
   * records it without advancing the count.
   */
  add(h: number, tag: number, counts = true): void {
    const i = h & (this.tags.length - 1);
    this.tags[i] = tag;
    this.at[i] = this.evictions;
    if (counts) this.evictions = (this.evictions + 1) >>> 0;
  }

  /** Evictions written since position `i` was (1 for the last one). */
  age(i: number): number {
    return (this.evictions - this.at[i]) >>> 0;
  }

  /** A ghost of `length` positions with the same entries, re-indexed in position order. */
  regrow(length: number): Ghost {
    const g = new Ghost(length);
    g.evictions = this.evictions;
    for (let i = 0; i < this.tags.length; i++) {
      const v = this.tags[i];
      if (v === 0) continue;
      g.tags[v & (length - 1)] = v;
      g.at[v & (length - 1)] = this.at[i];
    }
    return g;
  }
}
