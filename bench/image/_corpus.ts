/**
 * The image experiment's corpus: one large photo (1920 px, q80) and 20 page images (800 px, q80)
 * made with ImageMagick from Debian's lomiri-wallpapers-16.04 photos, kept under
 * bench/.out/image/experiment/ between runs; and a seeded Zipf(1) request sequence over them.
 *
 * @module
 */
import { magick } from "../../tests/_image_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Where the corpus is written. */
export const CORPUS_DIR = `${ROOT}bench/.out/image/experiment`;
const SOURCES = "/usr/share/backgrounds";
const PHOTO_SOURCE = `${SOURCES}/life_by_Aitzol_Berasategi.jpg`;
/** Images of the page and of the Zipf stream. */
export const PAGE_IMAGES = 20;

/** The files made: `/photo.jpg` and `/img01.jpg` … with their sizes in bytes. */
export interface Corpus {
  dir: string;
  photoBytes: number;
  /** Paths of the page images, `/img01.jpg` … */
  pages: string[];
  bytes: Map<string, number>;
}

/** Makes (or reuses) the corpus. */
export async function makeCorpus(): Promise<Corpus> {
  await Deno.mkdir(CORPUS_DIR, { recursive: true });
  const wallpapers = [...Deno.readDirSync(SOURCES)]
    .map((e) => e.name)
    .filter((n) => n.endsWith(".jpg") && `${SOURCES}/${n}` !== PHOTO_SOURCE)
    .sort();
  if (wallpapers.length < PAGE_IMAGES) {
    throw new Error(
      `Cannot make the image corpus: ${SOURCES} has ${wallpapers.length} JPEGs, needs ${PAGE_IMAGES}: ` +
        "apt-get install lomiri-wallpapers-16.04",
    );
  }
  const make = async (name: string, args: string[]) => {
    const file = `${CORPUS_DIR}/${name}`;
    try {
      return (await Deno.stat(file)).size;
    } catch { /* make it */ }
    const out = await magick(args);
    await Deno.writeFile(file, out);
    return out.length;
  };
  const bytes = new Map<string, number>();
  bytes.set(
    "/photo.jpg",
    await make("photo.jpg", [
      PHOTO_SOURCE,
      "-strip",
      "-resize",
      "1920x",
      "-quality",
      "80",
      "jpg:-",
    ]),
  );
  const pages: string[] = [];
  for (let i = 0; i < PAGE_IMAGES; i++) {
    const name = `img${String(i + 1).padStart(2, "0")}.jpg`;
    const src = `${SOURCES}/${wallpapers[i]}`;
    bytes.set(
      `/${name}`,
      await make(name, [src, "-strip", "-resize", "800x", "-quality", "80", "jpg:-"]),
    );
    pages.push(`/${name}`);
  }
  return { dir: CORPUS_DIR, photoBytes: bytes.get("/photo.jpg")!, pages, bytes };
}

/** `n` ranks in [0, k) drawn from Zipf(1) with a seeded generator (same sequence every run). */
export function zipfSequence(n: number, k: number, seed = 12): number[] {
  const weights = Array.from({ length: k }, (_, i) => 1 / (i + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  let s = seed >>> 0;
  const rand = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const out: number[] = [];
  for (let j = 0; j < n; j++) {
    let u = rand() * total, i = 0;
    while (u > weights[i] && i < k - 1) u -= weights[i++];
    out.push(i);
  }
  return out;
}
