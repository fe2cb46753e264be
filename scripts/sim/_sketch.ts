/**
 * Caffeine's frequency sketch, simplified: a count-min sketch of four rows of 4-bit counters
 * (held in bytes, capped at 15) over dense object numbers; every counter is halved after
 * `10 × entries` additions, so popularity ages.
 *
 * @module
 */

const ROWS = 4;
const MAX = 15;
const SEEDS = [0x97cb3127, 0xc2b2ae35, 0x85ebca6b, 0x27d4eb2f];
/** Additions per halving, in multiples of the entries the cache holds (Caffeine's 10). */
const SAMPLE_FACTOR = 10;

export class FrequencySketch {
  private readonly table: Uint8Array;
  private readonly mask: number;
  private readonly width: number;
  readonly sampleSize: number;
  private additions = 0;

  /** A sketch for a cache of about `entries` objects. */
  constructor(entries: number) {
    let w = 16;
    while (w < entries) w *= 2;
    this.width = w;
    this.mask = w - 1;
    this.table = new Uint8Array(ROWS * w);
    this.sampleSize = SAMPLE_FACTOR * Math.max(entries, 16);
  }

  private index(o: number, row: number): number {
    let h = Math.imul(o + 1, SEEDS[row]);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    return row * this.width + (h & this.mask);
  }

  frequency(o: number): number {
    let f = MAX;
    for (let r = 0; r < ROWS; r++) f = Math.min(f, this.table[this.index(o, r)]);
    return f;
  }

  increment(o: number): void {
    for (let r = 0; r < ROWS; r++) {
      const i = this.index(o, r);
      if (this.table[i] < MAX) this.table[i]++;
    }
    if (++this.additions >= this.sampleSize) {
      for (let i = 0; i < this.table.length; i++) this.table[i] >>>= 1;
      this.additions >>>= 1;
    }
  }
}

/** Objects of mean size a cache of `capacity` bytes holds, from the trace's objects. */
export function entriesFor(firstSize: Float64Array, capacity: number): number {
  let total = 0;
  for (let i = 0; i < firstSize.length; i++) total += firstSize[i];
  const mean = firstSize.length > 0 ? Math.max(total / firstSize.length, 1) : 1;
  return Math.max(1, Math.floor(capacity / mean));
}
