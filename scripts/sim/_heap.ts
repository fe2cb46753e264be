/**
 * An indexed binary min-heap over dense object numbers: the key of each object can change in
 * place (no lazy deletion). Ties go to the smaller sequence number (older first).
 *
 * @module
 */

const NONE = -1;

export class IndexedHeap {
  readonly key: Float64Array;
  readonly seq: Float64Array;
  private readonly heap: Int32Array;
  private readonly pos: Int32Array;
  size = 0;

  constructor(objects: number) {
    this.key = new Float64Array(objects);
    this.seq = new Float64Array(objects);
    this.heap = new Int32Array(objects);
    this.pos = new Int32Array(objects).fill(NONE);
  }

  has(o: number): boolean {
    return this.pos[o] !== NONE;
  }

  /** The object with the least key; -1 when empty. */
  top(): number {
    return this.size > 0 ? this.heap[0] : NONE;
  }

  /** Inserts `o` or changes its key. */
  set(o: number, key: number, seq: number): void {
    this.key[o] = key;
    this.seq[o] = seq;
    let i = this.pos[o];
    if (i === NONE) {
      i = this.size++;
      this.heap[i] = o;
      this.pos[o] = i;
    }
    this.down(this.up(i));
  }

  /** Removes `o` (present). */
  remove(o: number): void {
    const i = this.pos[o];
    const last = this.heap[--this.size];
    this.pos[o] = NONE;
    if (i === this.size) return;
    this.heap[i] = last;
    this.pos[last] = i;
    this.down(this.up(i));
  }

  private less(a: number, b: number): boolean {
    const ka = this.key[a];
    const kb = this.key[b];
    return ka < kb || (ka === kb && this.seq[a] < this.seq[b]);
  }

  private up(i: number): number {
    const h = this.heap;
    const o = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(o, h[p])) break;
      h[i] = h[p];
      this.pos[h[i]] = i;
      i = p;
    }
    h[i] = o;
    this.pos[o] = i;
    return i;
  }

  private down(i: number): void {
    const h = this.heap;
    const o = h[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= this.size) break;
      if (c + 1 < this.size && this.less(h[c + 1], h[c])) c++;
      if (!this.less(h[c], o)) break;
      h[i] = h[c];
      this.pos[h[i]] = i;
      i = c;
    }
    h[i] = o;
    this.pos[o] = i;
  }
}
