/**
 * Turns the replica's image layer on (`--images`), checking first that the process may use FFI:
 * imagescript's codecs need `--allow-ffi`. An explicit mode without it is a start-up error; the
 * default (`both`) turns images off with a warning instead, so a replica started with narrower
 * permissions still serves. The layer's module (and imagescript) is loaded only when used.
 *
 * @module
 */
import { StartError } from "../common/cli.ts";
import type { ImageLayer, ImageMode } from "./serve.ts";

/** The `--images` part of the replica's configuration. */
export interface ImagesConfig {
  images: ImageMode | "off";
  /** Whether `--images` was given (else it is the default). */
  imagesGiven: boolean;
  /** `--image-memory`: bytes transcodes may reserve at once. */
  imageMemoryBytes: number;
}

/** The image layer for `c`, or null when images are off. */
export async function imageLayer(
  c: ImagesConfig,
  log: (line: string) => void,
  rttMs: (ip: string) => number | undefined,
): Promise<ImageLayer | null> {
  if (c.images === "off") return null;
  const ffi = await Deno.permissions.query({ name: "ffi" });
  if (ffi.state !== "granted") {
    if (c.imagesGiven) {
      throw new StartError(
        `--images ${c.images}: needs --allow-ffi (imagescript's image codecs): run with -A or ` +
          `--allow-ffi, or pass --images off`,
      );
    }
    log(
      "http: images off: --images both (the default) needs --allow-ffi (imagescript's image codecs)",
    );
    return null;
  }
  const { ImageLayer } = await import("./serve.ts");
  return new ImageLayer({ mode: c.images, rttMs, memoryBytes: c.imageMemoryBytes, log });
}
