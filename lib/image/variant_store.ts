/**
 * Where the image layer keeps the variants it made: {@link LruVariants}, a byte-bounded LRU of
 * its own (a layer used alone, as in unit tests), or `CacheVariants` (`cache_variants.ts`), the
 * replica's own cache and store. Both look a variant up by the original's URL, the rung
 * (`X-Nearcast-Variant` value) and the original's source tag: a variant made from other bytes
 * than the original served now is a miss.
 *
 * @module
 */

/** Bytes backed by a plain ArrayBuffer. */
export type Bytes = Uint8Array<ArrayBuffer>;

/** A place for variants. */
export interface VariantStore {
  /** The variant's bytes, or undefined when not held for this source. */
  get(url: string, rung: string, tag: string): Promise<Bytes | undefined>;
  /** Whether the variant is held for this source, without counting a use. */
  has(url: string, rung: string, tag: string): boolean;
  /** Keeps a variant (`pinned`: the original is an upload, keep it as long as the upload). */
  put(
    url: string,
    rung: string,
    tag: string,
    bytes: Bytes,
    contentType: string,
    pinned: boolean,
  ): Promise<void>;
}

/**
 * Names the bytes of an original: its `ETag`, else its length and `Last-Modified`, so a changed
 * original never finds the variants of the old one.
 */
export function sourceTag(etag: string | null, lastModified: string | null, size: number): string {
  return etag ?? `${size};${lastModified ?? ""}`;
}

/** A byte-bounded LRU of variants (the layer's own, when it has no replica cache). */
export class LruVariants implements VariantStore {
  readonly #budget: number;
  readonly #map = new Map<string, Bytes>();
  #bytes = 0;

  constructor(budget: number) {
    this.#budget = budget;
  }

  get(url: string, rung: string, tag: string): Promise<Bytes | undefined> {
    const k = `${url}\u0000${rung}\u0000${tag}`;
    const b = this.#map.get(k);
    if (b) {
      this.#map.delete(k);
      this.#map.set(k, b);
    }
    return Promise.resolve(b);
  }

  has(url: string, rung: string, tag: string): boolean {
    return this.#map.has(`${url}\u0000${rung}\u0000${tag}`);
  }

  put(url: string, rung: string, tag: string, bytes: Bytes): Promise<void> {
    if (bytes.length > this.#budget) return Promise.resolve();
    const k = `${url}\u0000${rung}\u0000${tag}`;
    const old = this.#map.get(k);
    if (old) this.#bytes -= old.length;
    this.#map.delete(k);
    this.#map.set(k, bytes);
    this.#bytes += bytes.length;
    while (this.#bytes > this.#budget) {
      const [key, b] = this.#map.entries().next().value!;
      this.#map.delete(key);
      this.#bytes -= b.length;
    }
    return Promise.resolve();
  }
}
