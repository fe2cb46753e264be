/**
 * The network part of the image experiment: clients on 0.5, 2, 10 and 100 Mbit/s links
 * (`tests/tools/image_links.ts`, namespaces `img-x-*`) run three workloads at once against a
 * replica in one `--images` mode, fresh for each run: one large photo fetched three times, a
 * page of 20 thumbnails (`?w=320`, six at a time, as a browser would), and a Zipf stream of 20
 * requests over the page images, without hints.
 *
 * @module
 */
import { startImageServers } from "../../tests/_image_links_helpers.ts";
import { createImageLinks, type Fetched, type ImageLinks } from "../../tests/tools/image_links.ts";
import type { Corpus } from "./_corpus.ts";

/** The client links. */
export const LINKS = [
  { name: "c05", mbit: 0.5 },
  { name: "c2", mbit: 2 },
  { name: "c10", mbit: 10 },
  { name: "c100", mbit: 100 },
];

/** What one client saw in one run. */
export interface ClientRun {
  link: number;
  /** The photo's three fetches. */
  photo: Fetched[];
  page: { seconds: number; bytes: number; got: Fetched[] };
  zipf: { seconds: number; bytes: number; got: Fetched[] };
  /** Fetches tried again after curl failed (a connection that did not open in 15 s). */
  retries: number;
}

/** Builds the links (call once). */
export function openLinks(): Promise<ImageLinks> {
  return createImageLinks("img-x-", LINKS, { notsentLowat: 16384 });
}

/** One run of every workload on every link against a fresh replica in `mode`. */
export async function networkRun(
  links: ImageLinks,
  corpus: Corpus,
  mode: string,
  zipf: number[],
): Promise<ClientRun[]> {
  const servers = await startImageServers(links, corpus.dir, ["--images", mode]);
  try {
    return await Promise.all(LINKS.map(async (l): Promise<ClientRun> => {
      let retries = 0;
      const again = async <T>(f: () => Promise<T>): Promise<T> => {
        for (let i = 0;; i++) {
          try {
            return await f();
          } catch (e) {
            if (i >= 2) throw e;
            retries++;
          }
        }
      };
      const photo: Fetched[] = [];
      for (let i = 0; i < 3; i++) {
        photo.push(await again(() => links.fetch(l.name, servers.port, "/photo.jpg")));
      }
      const thumbs = corpus.pages.map((p) => `${p}?w=320`);
      const page = await again(() => links.fetchAll(l.name, servers.port, thumbs, [], 6));
      const stream = zipf.map((i) => corpus.pages[i]);
      const z = await again(() => links.fetchAll(l.name, servers.port, stream, [], 1));
      const sum = (g: Fetched[]) => g.reduce((n, f) => n + f.bytes, 0);
      return {
        link: l.mbit,
        photo,
        page: { ...page, bytes: sum(page.got) },
        zipf: { ...z, bytes: sum(z.got) },
        retries,
      };
    }));
  } finally {
    await servers.stop();
  }
}
