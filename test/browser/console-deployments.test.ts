import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routeName } from "../../src/render/names.js";
import type { LocationJson, RoutingJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, waitFor } from "../helpers/app.js";
import { launchChromium, logIn, noChromium, screenshot } from "../helpers/browser.js";
import { startReplica, type TestReplica } from "../helpers/replica.js";

const DEP = "dep_shop_eu";
const LOC = "dep_shop_eu_r1";
const PASSWORD = "correct-horse-battery";

describe.skipIf(noChromium !== undefined)(
  "the console's deployments, live replica health and events (Chromium)",
  () => {
    // A real checker on a 1 s cadence: the replica's /health decides its health, as in production.
    const srv = useApiServer("pglite", {
      HEALTH_ENABLED: "true",
      HEALTH_INTERVAL_SECONDS: "1",
      HEALTH_TICK_SECONDS: "1",
      HEALTH_TIMEOUT_SECONDS: "0.5",
      HEALTH_RISE: "1",
    });
    let browser: Browser;
    let replica: TestReplica;
    let page: Page;

    const healthOf = async () => {
      const r = await srv.api.get<{ items: LocationJson[] }>(`/api/v1/deployments/${DEP}/locations`);
      return r.body.items.find((l) => l.id === LOC)?.health_status;
    };

    beforeAll(async () => {
      browser = await launchChromium();
      replica = await startReplica("shop-eu");
      // 55 deployments (more than a page of 50), one of them the shop with a route, auth and a live replica.
      for (let i = 0; i < 54; i++) {
        const id = `dep_fleet_${String(i).padStart(2, "0")}`;
        expect((await srv.api.post("/api/v1/deployments", { id, name: `Fleet worker ${i}` })).status).toBe(201);
      }
      expect((await srv.api.post("/api/v1/deployments", { id: DEP, name: "Shop Frontend EU" })).status).toBe(201);
      const routing = await srv.api.put(`/api/v1/deployments/${DEP}/routing`, {
        domain: "shop-eu.example.com",
        path_prefix: "/",
        target_port: replica.port,
      });
      expect(routing.status).toBe(200);
      const mw = await srv.api.put(`/api/v1/deployments/${DEP}/middlewares`, {
        basic_auth: { users: [{ username: "ops", password: PASSWORD }], realm: "shop" },
        headers: { request: { "X-Api-Key": "very-secret-header-value" }, security_preset: true },
      });
      expect(mw.status).toBe(200);
      await srv.seedLocation(DEP, LOC, { address: "127.0.0.1", port: replica.port, node_hostname: "node-a" });
      await waitFor(async () => (await healthOf()) === "healthy", 10_000);
      page = await browser.newPage();
      await logIn(page, srv.url, ADMIN_TOKEN);
    });
    afterAll(async () => {
      await browser?.close();
      await replica?.close();
    });

    it("pages the deployments list and finds one by part of its name", async () => {
      await page.goto(`${srv.url}/ui/deployments`);
      await expect(page.getByRole("heading", { name: "Deployments", level: 1 }).isVisible()).resolves.toBe(true);
      expect(await page.locator("tbody tr").count()).toBe(50);
      await screenshot(page, "console-deployments");
      await page.getByRole("link", { name: "Next page" }).click();
      await page.waitForURL(/after=dep_fleet_49/);
      const rest = await page.locator("tbody tr td:first-child").allInnerTexts();
      expect(rest).toEqual(["dep_fleet_50", "dep_fleet_51", "dep_fleet_52", "dep_fleet_53", DEP]);
      expect(await page.getByRole("link", { name: "Next page" }).count()).toBe(0);

      await page.getByLabel("Search id or name").fill("frontend");
      await page.getByRole("button", { name: "Search" }).click();
      await page.waitForURL(/[?&]q=frontend/);
      expect(new URL(page.url()).searchParams.get("after")).toBeNull(); // a new search starts at the first page
      const found = await page.locator("tbody tr").allInnerTexts();
      expect(found).toHaveLength(1);
      expect(found[0]).toContain("Shop Frontend EU");
      await screenshot(page, "console-deployments-search");

      await page.getByRole("link", { name: DEP }).click();
      await page.waitForURL(`${srv.url}/ui/deployments/${DEP}`);
      await expect(page.getByRole("heading", { name: "Shop Frontend EU", level: 1 }).isVisible()).resolves.toBe(true);
    });

    it("shows the deployment's route, middlewares without secrets, replica and rendered config", async () => {
      await page.goto(`${srv.url}/ui/deployments/${DEP}`);
      const route = await page.locator("tr[data-route-id]").textContent();
      expect(route).toContain("shop-eu.example.com");
      expect(route).toContain("(primary)");
      expect(route).toMatch(/Host\(`shop-eu\.example\.com`\)/);
      expect(route).toMatch(/priority \d+/);
      expect(route).toContain("verified");
      const row = page.locator(`tr[data-location-id="${LOC}"]`);
      const text = await row.textContent();
      expect(text).toContain(`127.0.0.1:${replica.port}`);
      expect(text).toContain("node-a");
      expect(await row.locator("[data-health] .pill").textContent()).toBe("healthy");
      const middlewares = await page.locator("#middlewares + .scroll").textContent();
      expect(middlewares).toContain("users: ops");
      expect(middlewares).toContain("X-Api-Key");
      // What Traefik gets for it, redacted: the provider's view has the real hash and header value; the page has not.
      const rendered = await page.locator("pre[data-rendered]").textContent();
      const doc = JSON.parse(rendered ?? "{}") as {
        routers: Record<string, unknown>;
        middlewares: Record<string, unknown>;
      };
      const routing = await srv.api.get<RoutingJson>(`/api/v1/deployments/${DEP}/routing`);
      const routeId = routing.body.domains[0]?.id ?? "none";
      expect(Object.keys(doc.routers)).toContain(routeName({ id: routeId, deploymentId: DEP }));
      expect(Object.keys(doc.middlewares)).toEqual(expect.arrayContaining(["dep-shop-eu--basic-auth"]));
      const provider = await srv.api.get<{
        http: { middlewares: Record<string, { basicAuth?: { users: string[] } }> };
      }>("/traefik/config", { token: PROVIDER_TOKEN });
      const hash = provider.body.http.middlewares["dep-shop-eu--basic-auth"]?.basicAuth?.users[0]?.split(":")[1];
      expect(hash).toMatch(/^\$2/);
      const html = await page.content();
      for (const secret of [hash ?? "no hash", PASSWORD, "very-secret-header-value", ADMIN_TOKEN]) {
        expect(html).not.toContain(secret);
      }
      // Nothing of the other 54 deployments.
      expect(rendered).not.toContain("dep-fleet");
    });

    it("shows a replica turning unhealthy live, without a reload, when its /health starts failing", async () => {
      await page.goto(`${srv.url}/ui/deployments/${DEP}`);
      await page.waitForSelector("#live[data-state=open]", { timeout: 10_000 });
      await page.evaluate("window.__stillTheSamePage = true");
      const row = `tr[data-location-id="${LOC}"]`;
      replica.mode = "fail";
      await page.waitForSelector(`${row} [data-health] .pill.unhealthy`, { timeout: 15_000 });
      expect(await page.evaluate("window.__stillTheSamePage")).toBe(true);
      expect(await page.locator(`${row} [data-health]`).textContent()).toBe("unhealthy");
      expect(await page.locator(`${row} [data-last-error]`).textContent()).toContain("500");
      await page.locator(`${row} details summary`).click();
      const history = await page.locator(`${row} [data-history] li`).first().textContent();
      expect(history).toMatch(/healthy → unhealthy/);
      await screenshot(page, "console-deployment");
      await page.setViewportSize({ width: 390, height: 844 }); // a phone: wide tables scroll inside the page
      await screenshot(page, "console-deployment-phone");
      await page.setViewportSize({ width: 1280, height: 720 });
    });

    it("lists the newest events and adds new ones live", async () => {
      await page.goto(`${srv.url}/ui/events`);
      await page.waitForSelector("#live[data-state=open]", { timeout: 10_000 });
      const first = await page.locator("#events tr").first().textContent();
      expect(first).toContain("replica.health_changed");
      expect(first).toContain("healthy → unhealthy");
      const before = await page.locator("#events tr").count();
      replica.mode = "ok"; // rise 1: healthy again at the next probe, a new event on the open page
      await expect
        .poll(async () => page.locator("#events tr").first().textContent(), { timeout: 15_000 })
        .toContain("unhealthy → healthy");
      expect(await page.locator("#events tr").count()).toBe(before + 1);
      await screenshot(page, "console-events");

      await page.getByLabel("Type").selectOption("config.revision");
      await page.getByRole("button", { name: "Show" }).click();
      await page.waitForURL(/type=config\.revision/);
      const types = await page.locator("#events tr td:nth-child(3)").allInnerTexts();
      expect(types.length).toBeGreaterThan(0);
      expect(new Set(types)).toEqual(new Set(["config.revision"]));
    });

    it("shows each replica's track and region, and a draining replica with the end of its drain", async () => {
      const canary = "shop_eu_canary";
      const put = await srv.api.put(`/api/v1/deployments/${DEP}/locations/${canary}`, {
        address: "127.0.0.1",
        port: replica.port,
        track: "canary",
        region: "eu",
      });
      expect(put.status).toBe(201);
      // force: the canary may already be probed healthy, and it is its track's only replica.
      const drained = await srv.api.post(`/api/v1/deployments/${DEP}/locations/${canary}/drain`, {
        seconds: 600,
        force: true,
      });
      expect(drained.status).toBe(200);
      await page.goto(`${srv.url}/ui/deployments/${DEP}`);
      const row = (await page.locator(`tr[data-location-id="${canary}"]`).textContent()) ?? "";
      expect(row).toMatch(/canary\s*·\s*eu/);
      expect(row).toContain("draining until");
      const stable = (await page.locator(`tr[data-location-id="${LOC}"]`).textContent()) ?? "";
      expect(stable).toContain("stable");
      expect(stable).not.toContain("draining");
    });

    it("answers an unknown deployment with a 404 page", async () => {
      for (const id of ["dep_nobody", "NOT a valid id"]) {
        const res = await page.goto(`${srv.url}/ui/deployments/${encodeURIComponent(id)}`);
        expect(res?.status()).toBe(404);
        await expect(page.getByRole("heading", { name: "Deployment not found" }).isVisible()).resolves.toBe(true);
      }
    });
  },
);
