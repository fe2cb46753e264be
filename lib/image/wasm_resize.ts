/**
 * The WASM rescaler (`wasm/resize.ts`, built to `wasm/build/resize.wasm`) behind the
 * {@link Resizer} contract. It computes the same filter tables as the reference (cached per
 * axis), writes them and the pixels into the module's memory and runs the SIMD passes; the
 * result is byte-identical to {@link TsResizer} (`tests/image_resize_differential_test.ts`).
 *
 * Memory: one instance per resizer; buffers live in the module's linear memory, which grows only
 * when an image needs more than any earlier one (it never shrinks). With `out` given, a call
 * allocates nothing when the dimensions repeat. `resizeView` skips the output copy.
 *
 * @example
 * ```ts
 * import { createWasmResizer } from "./wasm_resize.ts";
 *
 * const grey = new Uint8Array(8 * 8 * 4).fill(128);
 * const out = createWasmResizer().resize(grey, 8, 8, 3, 3);
 * if (out.some((v) => v !== 128)) throw new Error("a flat image stays flat");
 * ```
 *
 * @module
 */
import { checkResize } from "./_common.ts";
import { type FilterTable, filterTable } from "./_filter.ts";
import type { Pixels, Resizer } from "./types.ts";
import { wasmModuleLoader } from "../common/wasm_module.ts";

const WASM_URL = new URL("../../wasm/build/resize.wasm", import.meta.url);

/** The module's exports (numeric ABI, see `wasm/README.md`). */
interface Exports {
  memory: WebAssembly.Memory;
  prepare(sw: number, sh: number, dw: number, dh: number, kv: number, kh: number): number;
  ptr(which: number): number;
  run(sw: number, sh: number, dw: number, dh: number, kv: number, kh: number): number;
}

/** Compiles the module once per process (synchronously). */
const wasmModule = wasmModuleLoader(WASM_URL, "the WASM rescaler");

/** The WASM rescaler. Not re-entrant: one call at a time per instance (calls are synchronous). */
export class WasmResizer implements Resizer {
  readonly #x: Exports;
  #v: FilterTable | undefined;
  #h: FilterTable | undefined;
  /** Dimensions the memory is laid out for, and whether the tables in memory match them. */
  #shape = [0, 0, 0, 0];
  #in = new Uint8Array(0);
  #out = new Uint8Array(0);

  constructor() {
    this.#x = new WebAssembly.Instance(wasmModule()).exports as unknown as Exports;
  }

  /** Bytes of linear memory the module holds now (it grows for larger images, never shrinks). */
  get memoryBytes(): number {
    return this.#x.memory.buffer.byteLength;
  }

  /**
   * Resizes like {@link Resizer.resize} but returns a view of the module's memory instead of a
   * copy: valid until the next call on this resizer.
   */
  resizeView(src: Pixels, sw: number, sh: number, dw: number, dh: number): Uint8Array {
    checkResize(src, sw, sh, dw, dh);
    const x = this.#x;
    const s = this.#shape;
    const v = this.#v?.srcLength === sh && this.#v.dstLength === dh
      ? this.#v
      : (this.#v = filterTable(sh, dh));
    const h = this.#h?.srcLength === sw && this.#h.dstLength === dw
      ? this.#h
      : (this.#h = filterTable(sw, dw));
    if (s[0] !== sw || s[1] !== sh || s[2] !== dw || s[3] !== dh) {
      if (x.prepare(sw, sh, dw, dh, v.taps, h.taps) !== 0) {
        throw new RangeError(
          `Cannot resize image: no WASM memory for ${sw}x${sh} to ${dw}x${dh}`,
        );
      }
      const buf = x.memory.buffer as ArrayBuffer;
      new Int32Array(buf, x.ptr(3), dh).set(v.starts);
      new Int16Array(buf, x.ptr(4), v.weights.length).set(v.weights);
      new Int32Array(buf, x.ptr(5), dw).set(h.starts);
      new Int16Array(buf, x.ptr(6), h.weights.length).set(h.weights);
      s[0] = sw, s[1] = sh, s[2] = dw, s[3] = dh;
      this.#in = new Uint8Array(buf, x.ptr(0), sw * sh * 4);
      this.#out = new Uint8Array(buf, x.ptr(2), dw * dh * 4);
    }
    this.#in.set(src);
    x.run(sw, sh, dw, dh, v.taps, h.taps);
    return this.#out;
  }

  resize(
    src: Pixels,
    sw: number,
    sh: number,
    dw: number,
    dh: number,
    out?: Uint8Array,
  ): Uint8Array {
    checkResize(src, sw, sh, dw, dh, out);
    const view = this.resizeView(src, sw, sh, dw, dh);
    const dst = out ?? new Uint8Array(view.length);
    dst.set(view);
    return dst;
  }
}

/** Loads `wasm/build/resize.wasm` (compiled once per process) into a new resizer. */
export function createWasmResizer(): WasmResizer {
  return new WasmResizer();
}
