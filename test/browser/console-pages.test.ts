import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useApiServer } from "../helpers/api-server.js";
import { ADMIN_TOKEN } from "../helpers/app.js";
import { launchChromium, logIn, noChromium, screenshot } from "../helpers/browser.js";
import { makeCert, pemBody, unrelatedKey } from "../helpers/certs.js";

// The resolve, certificates, history and preview pages, driven as an operator would: forms, links, redirects.

const WAIT = { timeout: 10_000 };

/** Posts a form the page did not offer, as a hand-made page in the same browser would (the browser navigates). */
async function submitForm(page: Page, action: string, fields: Record<string, string>): Promise<void> {
  // A string, evaluated in the page (this project's TypeScript has no DOM types); the data goes in as JSON.
  await page.evaluate(`(() => {
    const form = document.createElement("form");
    form.method = "post";
    form.action = ${JSON.stringify(action)};
    for (const [name, value] of Object.entries(${JSON.stringify(fields)})) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    document.body.append(form);
    form.submit();
  })()`);
}

describe.skipIf(noChromium !== undefined)("the console's resolve, certificates, history and preview pages", () => {
  const srv = useApiServer("pglite");
  let browser: Browser;
  let admin: Page;

  beforeAll(async () => {
    browser = await launchChromium();
    await srv.seedDeployment("dep_shop", { domain: "shop.example.com", target_port: 8080 });
    await srv.seedDeployment("dep_api", { domain: "shop.example.com", path_prefix: "/api", target_port: 3000 });
    await srv.seedDeployment("dep_wild", { domain: "*.example.com", target_port: 80 });
    admin = await browser.newPage();
    await logIn(admin, srv.url, ADMIN_TOKEN);
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("resolves a host and path through the form, at an address that links to the answer", async () => {
    await admin.goto(`${srv.url}/ui/resolve`);
    await admin.getByLabel("Host").fill("shop.example.com");
    await admin.getByLabel("Path").fill("/api/users");
    await admin.getByLabel("Scheme").selectOption("https");
    await admin.getByRole("button", { name: "Resolve" }).click();
    await admin.waitForURL(/\/ui\/resolve\?host=/, WAIT);
    const url = new URL(admin.url());
    expect(Object.fromEntries(url.searchParams)).toEqual({
      host: "shop.example.com",
      path: "/api/users",
      scheme: "https",
    });
    const main = (await admin.locator("main").textContent()) ?? "";
    expect(main).toContain("dep_api");
    expect(main).toContain("503");
    expect(main).toContain("no healthy replica");
    // The candidates it beat: the shop's "/" route, with why.
    const rows = await admin.locator("table tbody tr").allTextContents();
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/dep_api[\s\S]*chosen/);
    expect(rows[1]).toMatch(/dep_shop[\s\S]*shorter path prefix/);
    expect(rows[2]).toMatch(/dep_wild[\s\S]*wildcard host ranks below an exact host/);
    await expect(admin.getByRole("link", { name: "dep_api" }).first().getAttribute("href")).resolves.toBe(
      "/ui/deployments/dep_api",
    );
    await screenshot(admin, "console-resolve");

    // The same address opened again answers again (a link someone pasted), and a wildcard loses to an exact host.
    await admin.goto(`${srv.url}/ui/resolve?host=shop.example.com&path=/&scheme=http`);
    const again = (await admin.locator("main").textContent()) ?? "";
    expect(again).toContain("301");
    expect(again).toContain("https://shop.example.com/");
    expect(await admin.locator("table tbody tr").allTextContents()).toEqual([
      expect.stringContaining("chosen"),
      expect.stringContaining("wildcard host ranks below an exact host"),
    ]);

    // Bad input: the API's message next to the field, not an error page.
    await admin.goto(`${srv.url}/ui/resolve?host=`);
    const api = await srv.api.get("/api/v1/routing/resolve?host=");
    const message = (api.body as { errors: { message: string }[] }).errors[0]?.message ?? "(none)";
    await expect(admin.locator("#resolve-host-error").textContent()).resolves.toContain(message);
    await expect(admin.getByLabel("Host").getAttribute("aria-invalid")).resolves.toBe("true");
  });

  it("uploads a certificate, lists it with its routes and expiry, and deletes one after confirming", async () => {
    const cert = makeCert({ sans: ["shop.example.com", "www.shop.example.com"] });
    const soon = makeCert({ sans: ["old.example.com"], days: 5 });
    expect((await srv.api.post("/api/v1/certificates", { cert_pem: soon.chainPem, key_pem: soon.keyPem })).status).toBe(
      201,
    );

    await admin.goto(`${srv.url}/ui/certificates`);
    await admin.getByLabel(/^Certificate/).fill(cert.chainPem);
    await admin.getByLabel(/^Private key/).fill(cert.keyPem);
    await admin.getByRole("button", { name: "Upload" }).click();
    await admin.waitForURL(/\/ui\/certificates\?uploaded=/, WAIT);
    const id = new URL(admin.url()).searchParams.get("uploaded") ?? "";
    await expect(admin.getByRole("status").first().textContent()).resolves.toContain("shop.example.com");
    const row = admin.locator(`tr[id="${id}"]`);
    const text = (await row.textContent()) ?? "";
    expect(text).toContain("www.shop.example.com");
    expect(text).toContain("dep_shop"); // the route using it
    expect(text).toMatch(/\d+ days left/);
    expect(text.replace(/:/g, "").toLowerCase()).toContain(cert.fingerprintSha256);
    // Expiring soon says so in words, not only in colour.
    const soonRow = admin.locator("tr", { hasText: "old.example.com" });
    await expect(soonRow.textContent()).resolves.toMatch(/expires soon\s+[45] days left/);
    await screenshot(admin, "console-certificates");

    // Delete takes two steps: open the confirmation, then press the button inside it.
    await soonRow.getByText("Delete…").click();
    await soonRow.getByRole("button", { name: /Delete the certificate for old\.example\.com/ }).click();
    await admin.waitForURL(/\/ui\/certificates\?deleted=/, WAIT);
    await expect(admin.locator("tr", { hasText: "old.example.com" }).count()).resolves.toBe(0);
    const left = await srv.api.get<{ items: { id: string }[] }>("/api/v1/certificates");
    expect(left.body.items.map((x) => x.id)).toEqual([id]);
  });

  it("shows the API's message next to the key field when the key does not match, never the key", async () => {
    const cert = makeCert({ sans: ["mismatch.example.com"] });
    const key = unrelatedKey();
    const api = await srv.api.post("/api/v1/certificates", { cert_pem: cert.certPem, key_pem: key });
    expect(api.status).toBe(400);
    const message = (api.body as { errors: { location: string; message: string }[] }).errors.find(
      (e) => e.location === "body.key_pem",
    )?.message;
    expect(message).toBeTruthy();

    await admin.goto(`${srv.url}/ui/certificates`);
    await admin.getByLabel(/^Certificate/).fill(cert.certPem);
    await admin.getByLabel(/^Private key/).fill(key);
    await admin.getByRole("button", { name: "Upload" }).click();
    await admin.waitForSelector("#key_pem-error", WAIT);
    await expect(admin.locator("#key_pem-error").textContent()).resolves.toContain(message);
    await expect(admin.getByLabel(/^Private key/).getAttribute("aria-invalid")).resolves.toBe("true");
    // The certificate is kept for another try; the key is not echoed back anywhere in the page.
    expect((await admin.getByLabel(/^Certificate/).inputValue()).trim()).toBe(cert.certPem.trim());
    await expect(admin.getByLabel(/^Private key/).inputValue()).resolves.toBe("");
    expect(await admin.content()).not.toContain(pemBody(key).slice(0, 40));
    await screenshot(admin, "console-certificate-error");
  });

  it("lists revisions, opens a diff, and freezes and releases as admin", async () => {
    await admin.goto(`${srv.url}/ui/history`);
    const rows = admin.locator("table tbody tr");
    await expect(rows.count()).resolves.toBeGreaterThan(2);
    const newest = await srv.api.get<{ items: { revision: number }[] }>("/api/v1/routing/revisions?limit=1");
    const n = newest.body.items[0]?.revision ?? 0;
    await expect(rows.first().textContent()).resolves.toContain("served now");

    // Freeze on the newest revision, see it at the top, release it.
    const first = rows.first();
    await first.getByText("Freeze here…").click();
    await first.getByLabel("Reason").fill("INC-17: console test");
    await first.getByRole("button", { name: `Freeze on ${n}` }).click();
    await admin.waitForURL(/done=frozen/, WAIT);
    await expect(admin.locator("main").textContent()).resolves.toContain(`Frozen on revision ${n}`);
    expect((await srv.api.get<{ frozen: boolean }>("/api/v1/routing/freeze")).body.frozen).toBe(true);
    await screenshot(admin, "console-history");
    await admin.getByRole("button", { name: "Release the freeze" }).click();
    await admin.waitForURL(/done=released/, WAIT);
    expect((await srv.api.get<{ frozen: boolean }>("/api/v1/routing/freeze")).body.frozen).toBe(false);

    // The revision that added dep_wild's routers: its diff names them.
    const list = await srv.api.get<{ items: { revision: number; summary: { added?: number } }[] }>(
      "/api/v1/routing/revisions?limit=50",
    );
    const withAdds = list.body.items.find((r) => (r.summary.added ?? 0) > 0 && r.revision > 1);
    expect(withAdds).toBeDefined();
    await admin.getByRole("link", { name: `Revision ${withAdds?.revision}: its changes` }).click();
    await admin.waitForURL(new RegExp(`/ui/history/${withAdds?.revision}$`), WAIT);
    const diff = (await admin.locator("main").textContent()) ?? "";
    expect(diff).toContain(`Changes from revision ${(withAdds?.revision ?? 0) - 1} to ${withAdds?.revision}`);
    expect(diff).toContain("+ added");
    expect(diff).toMatch(/Routers/);
    await screenshot(admin, "console-revision-diff");
  });

  it("previews an added domain, shows its diff, and applies it", async () => {
    await admin.goto(`${srv.url}/ui/preview?kind=domain`);
    await admin.getByLabel("Deployment id").fill("dep_shop");
    await admin.getByLabel("Domain").fill("shop.example.org");
    await admin.getByRole("button", { name: "Preview" }).click();
    await admin.waitForSelector("#result", WAIT);
    const main = (await admin.locator("main").textContent()) ?? "";
    expect(main).toContain("+ added");
    expect(main).toContain("Host(`shop.example.org`)");
    // Nothing written yet.
    const before = await srv.api.get<{ domains: { domain: string }[] }>("/api/v1/deployments/dep_shop/routing");
    expect(before.body.domains.map((d) => d.domain)).not.toContain("shop.example.org");
    await screenshot(admin, "console-preview");

    await admin.getByRole("button", { name: /^Apply/ }).click();
    await admin.waitForURL(/\/ui\/deployments\/dep_shop$/, WAIT);
    const after = await srv.api.get<{ domains: { domain: string }[] }>("/api/v1/deployments/dep_shop/routing");
    expect(after.body.domains.map((d) => d.domain)).toContain("shop.example.org");
    // Applied through the API as the logged-in token, from the browser's address: the audit log says so.
    const audit = await srv.api.get<{ items: { operation: string; token_name: string; client_address: string }[] }>(
      "/api/v1/audit?deployment_id=dep_shop&limit=500",
    );
    expect(audit.body.items.at(-1)).toMatchObject({
      operation: "POST /api/v1/deployments/{id}/domains",
      token_name: "ADMIN_TOKEN",
      client_address: expect.stringMatching(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/),
    });

    // A refused change: the API's message next to the field.
    await admin.goto(`${srv.url}/ui/preview?kind=domain&deployment=dep_api`);
    await admin.getByLabel("Domain").fill("shop.example.org"); // dep_shop's now
    await admin.getByRole("button", { name: "Preview" }).click();
    await admin.waitForSelector("[role=alert]", WAIT);
    await expect(admin.getByRole("alert").textContent()).resolves.toMatch(/DOMAIN_CONFLICT/);
    await expect(admin.getByRole("button", { name: /^Apply/ }).count()).resolves.toBe(0);
  });

  it("shows a read-only token no write controls, and the API refuses its write with a message", async () => {
    const made = await srv.api.post<{ token: string }>("/api/v1/tokens", { name: "viewer", scopes: ["read"] });
    expect(made.status).toBe(201);
    const context = await browser.newContext();
    const page = await context.newPage();
    await logIn(page, srv.url, made.body.token);

    await page.goto(`${srv.url}/ui/certificates`);
    await expect(page.locator("tbody tr").count()).resolves.toBeGreaterThan(0);
    await expect(page.locator('form[action="/ui/certificates"]').count()).resolves.toBe(0);
    await expect(page.locator("textarea").count()).resolves.toBe(0);
    await expect(page.getByText("Delete…").count()).resolves.toBe(0);

    await page.goto(`${srv.url}/ui/history`);
    await expect(page.locator("table tbody tr").count()).resolves.toBeGreaterThan(0);
    await expect(page.getByText("Freeze here…").count()).resolves.toBe(0);
    await expect(page.locator('form[action^="/ui/history/"]').count()).resolves.toBe(0);

    // Preview is a read: it works, but there is no Apply.
    await page.goto(`${srv.url}/ui/preview?kind=routing`);
    await page.getByLabel("Deployment id").fill("dep_api");
    await page.getByLabel("Path prefix").fill("/v2");
    await page.getByRole("button", { name: "Preview" }).click();
    await page.waitForSelector("#result", WAIT);
    await expect(page.locator("main").textContent()).resolves.toContain("~ changed");
    await expect(page.getByRole("button", { name: /^Apply/ }).count()).resolves.toBe(0);
    await expect(page.locator('form[action="/ui/preview/apply"]').count()).resolves.toBe(0);

    // A hand-made POST with the session's own CSRF token gets past the console, and the API's 403 is shown.
    const csrf = await page.locator('form[action="/ui/logout"] input[name="_csrf"]').inputValue();
    const cert = makeCert({ sans: ["readonly.example.com"] });
    const refused = page.waitForResponse(
      (r) => r.url().endsWith("/ui/certificates") && r.request().method() === "POST",
    );
    await submitForm(page, "/ui/certificates", { _csrf: csrf, cert_pem: cert.certPem, key_pem: cert.keyPem });
    expect((await refused).status()).toBe(403);
    await page.waitForSelector("[role=alert]", WAIT);
    await expect(page.getByRole("alert").textContent()).resolves.toMatch(/needs the `certificates` scope/);
    await expect(page.getByRole("heading", { name: "Certificates" }).isVisible()).resolves.toBe(true);
    await expect(page.locator("textarea").count()).resolves.toBe(0);
    await screenshot(page, "console-readonly");
    expect(await page.content()).not.toContain(pemBody(cert.keyPem).slice(0, 40));
    const certs = await srv.api.get<{ items: { sans: string[] }[] }>("/api/v1/certificates");
    expect(certs.body.items.flatMap((x) => x.sans)).not.toContain("readonly.example.com");
    await context.close();
  });
});
