import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useApiServer } from "../helpers/api-server.js";
import { ADMIN_TOKEN } from "../helpers/app.js";
import { launchChromium, logIn, noChromium, screenshot } from "../helpers/browser.js";

describe.skipIf(noChromium !== undefined)("the console's login, session and CSRF protection (Chromium)", () => {
  const srv = useApiServer("pglite");
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("logs in with the admin token, shows the overview, and logs out", async () => {
    await srv.seedDeployment("dep_console", { domain: "console.example.com", target_port: 80 });
    const page = await browser.newPage();
    await logIn(page, srv.url, ADMIN_TOKEN);
    await expect(page.getByRole("heading", { name: "Overview" }).isVisible()).resolves.toBe(true);
    const cards = await page.locator(".card").allInnerTexts();
    expect(cards.join("\n")).toMatch(/1\s+deployments/);
    // The cookie is HttpOnly and strict: the page's JavaScript cannot read the token.
    const cookies = await page.context().cookies();
    expect(cookies).toEqual([expect.objectContaining({ name: "obr_console", httpOnly: true, sameSite: "Strict" })]);
    expect(await page.evaluate("document.cookie")).toBe("");
    expect(await page.content()).not.toContain(ADMIN_TOKEN);
    await screenshot(page, "console-overview");
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(`${srv.url}/ui/login`);
    await page.goto(`${srv.url}/ui`);
    expect(new URL(page.url()).pathname).toBe("/ui/login");
    await page.close();
  });

  it("refuses a wrong token, and a form sent without the session's CSRF token", async () => {
    const page = await browser.newPage();
    await page.goto(`${srv.url}/ui/login`);
    await page.getByLabel("Token").fill("not-a-token-at-all-0123456789");
    await page.getByRole("button", { name: "Log in" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain("not accepted");
    await screenshot(page, "console-login-refused");
    await logIn(page, srv.url, ADMIN_TOKEN);
    // A write from elsewhere: the browser sends the cookie (same site here), but not the CSRF token.
    const status = await page.evaluate(async () => {
      const r = await fetch("/ui/logout", { method: "POST", body: new URLSearchParams({ _csrf: "forged" }) });
      return r.status;
    });
    expect(status).toBe(403);
    await page.goto(`${srv.url}/ui`);
    expect(new URL(page.url()).pathname).toBe("/ui"); // still logged in: the forged logout did nothing
    await page.close();
  });
});
