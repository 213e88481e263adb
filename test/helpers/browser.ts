import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";

// Browser tests drive Debian's Chromium (`apt-get install -y chromium`; .ci/run installs it) with playwright-core.
// Without a Chromium the suites skip, saying why.

const CANDIDATES = [
  process.env.CHROMIUM_PATH,
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
].filter((p): p is string => typeof p === "string" && p.length > 0);

/** The Chromium binary to drive, if the machine has one. */
export const chromiumPath: string | undefined = CANDIDATES.find((p) => existsSync(p));
export const noChromium = chromiumPath
  ? undefined
  : `no Chromium found (tried ${CANDIDATES.join(", ")}): apt-get install -y chromium, or set CHROMIUM_PATH`;

export async function launchChromium(): Promise<Browser> {
  if (!chromiumPath) {
    throw new Error(noChromium);
  }
  return chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** test-results/ (git-ignored): where the page screenshots go, to be looked at. */
export const SCREENSHOTS = fileURLToPath(new URL("../../test-results/", import.meta.url));

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Logs the page in with `token` through the login form, as an operator would. */
export async function logIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/ui/login`);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(`${baseUrl}/ui`);
}
