/**
 * Headless browsers for tests and benchmarks, driven by npm `puppeteer-core` (which downloads no
 * browser of its own): Debian's `chromium` through the DevTools protocol, Debian's `firefox-esr`
 * through WebDriver BiDi.
 *
 * @module
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";

/** The browsers the tests drive. */
export type BrowserKind = "chromium" | "firefox";

const BROWSERS: Record<BrowserKind, { label: string; names: string[]; pkg: string }> = {
  chromium: { label: "Chromium", names: ["chromium", "chromium-browser"], pkg: "chromium" },
  firefox: { label: "Firefox", names: ["firefox-esr", "firefox"], pkg: "firefox-esr" },
};

/** The browser's display name: "Chromium", "Firefox". */
export function browserLabel(kind: BrowserKind): string {
  return BROWSERS[kind].label;
}

/** The system browser's executable, or an error naming what is missing and how to get it. */
export function browserPath(kind: BrowserKind): string {
  const { label, names, pkg } = BROWSERS[kind];
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    for (const name of names) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  throw new Error(
    `${label} is not installed (no ${names.join(" or ")} on PATH): apt-get install ${pkg}, or ` +
      "run sh scripts/ensure_tools.sh as root",
  );
}

/** The system Chromium, or an error naming what is missing and how to get it. */
export function chromiumPath(): string {
  return browserPath("chromium");
}

/**
 * Generous bound for a browser to start (puppeteer's default, 30 s, is passed by Firefox on a
 * loaded 2-core machine).
 */
const LAUNCH_MS = 120_000;

/** A headless browser (Chromium unless `kind` says otherwise) with its profile in `dir`. */
export async function launch(dir: string, kind: BrowserKind = "chromium"): Promise<Browser> {
  const executablePath = browserPath(kind);
  if (kind === "firefox") {
    return await puppeteer.launch({
      browser: "firefox",
      executablePath,
      headless: true,
      timeout: LAUNCH_MS,
      userDataDir: `${dir}/firefox`,
    });
  }
  return await puppeteer.launch({
    executablePath,
    headless: true,
    timeout: LAUNCH_MS,
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
