/**
 * Headless Chromium for tests and benchmarks: Debian's `chromium` driven by npm
 * `puppeteer-core` (which downloads no browser of its own).
 *
 * @module
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";

/** The system Chromium, or an error naming what is missing and how to get it. */
export function chromiumPath(): string {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    for (const name of ["chromium", "chromium-browser"]) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  throw new Error(
    "Chromium is not installed (no chromium on PATH): apt-get install chromium, or run " +
      "sh scripts/ensure_tools.sh as root",
  );
}

/** Headless Chromium with its profile in `dir`. */
export async function launch(dir: string): Promise<Browser> {
  return await puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    userDataDir: `${dir}/chromium`,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

/** Browser code: true when replica `id`'s element has `data-state` `state`. */
export function stateIs(id: string, state: string): string {
  return `document.querySelector('[data-replica="${id}"]')?.dataset.state === "${state}"`;
}

/** The `data-state` of every replica element, by `data-replica`. */
export async function states(page: Page): Promise<Record<string, string>> {
  return await page.evaluate(
    `Object.fromEntries([...document.querySelectorAll("[data-replica]")]
      .map((e) => [e.dataset.replica, e.dataset.state]))`,
  ) as Record<string, string>;
}
