import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { type DbHandle, openDb } from "../../src/db/client.js";
import type { TraefikDocument } from "../../src/render/types.js";
import { startServer } from "../../src/server.js";
import { httpClient, type RoutingJson } from "../helpers/api-client.js";
import { PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { useTwoInstances } from "../helpers/two-instances.js";

/** The bound for another instance to serve a write. */
const WITHIN_MS = 1000;

// Two instances on one PostgreSQL database. The safety-net poll is set to a minute, so only LISTEN/NOTIFY can
// carry a write from A to B in time. PGlite is one process's database: there is no second instance to ask.

describe.skipIf(!process.env.DATABASE_URL)("two instances on one PostgreSQL database", () => {
  const two = useTwoInstances({ CONFIG_REFRESH_SECONDS: "60" });
  const { logger } = two;

  /** Time until B's /traefik/config satisfies `seen`, failing past WITHIN_MS. */
  const propagation = async (seen: (config: TraefikDocument) => boolean): Promise<number> => {
    const started = performance.now();
    await waitFor(async () => seen(await two.b.traefikDocument()), WITHIN_MS, 10);
    return performance.now() - started;
  };
  const PROVIDER = { token: PROVIDER_TOKEN };
  const rules = (config: TraefikDocument) => Object.values(config.http?.routers ?? {}).map((r) => r.rule);

  it("control: an instance that does not LISTEN misses the write for longer than the bound", async () => {
    const { a, b } = two;
    // Proves the bound is met by NOTIFY, not by the poll: same setup, LISTEN replaced by a no-op.
    const handle = await openDb({ DATABASE_URL: two.url, DATA_DIR: "" });
    const deaf: DbHandle = { ...handle, listen: async () => async () => {} };
    const c = await startServer(testConfig({ DATABASE_URL: two.url, CONFIG_REFRESH_SECONDS: "60" }), {
      handle: deaf,
      logger,
    });
    try {
      const client = httpClient(c.url);
      await a.post("/api/v1/deployments", { id: "dep_unheard", name: "unheard" });
      await a.put("/api/v1/deployments/dep_unheard/routing", { domain: "unheard.example.com", target_port: 80 });
      await new Promise((r) => setTimeout(r, WITHIN_MS + 200));
      // The deaf instance never heard of any route: it serves the empty document.
      expect(rules(await client.traefikDocument())).not.toContain("Host(`unheard.example.com`)");
      expect(rules((await b.traefikConfig()).config)).toContain("Host(`unheard.example.com`)");
      expect((await a.delete("/api/v1/deployments/dep_unheard")).status).toBe(204);
    } finally {
      await c.close();
      await handle.close();
    }
  });

  it("starts with the two instances serving the same bytes", async () => {
    const { a, b } = two;
    expect(JSON.stringify(await a.traefikDocument())).toBe(JSON.stringify(await b.traefikDocument()));
    const [ra, rb] = [await a.get("/traefik/config", PROVIDER), await b.get("/traefik/config", PROVIDER)];
    expect(ra.headers.get("x-config-hash")).toBe(rb.headers.get("x-config-hash"));
  });

  it(`a route written through A is served by B within ${WITHIN_MS} ms`, async () => {
    const { a } = two;
    expect((await a.post("/api/v1/deployments", { id: "dep_twin", name: "twin" })).status).toBe(201);
    const put = await a.put<RoutingJson>("/api/v1/deployments/dep_twin/routing", {
      domain: "twin.example.com",
      target_port: 8080,
    });
    expect(put.status).toBe(200);
    // A serves it at once; B within the bound.
    expect(rules((await a.traefikConfig()).config)).toContain("Host(`twin.example.com`)");
    const ms = await propagation((c) => rules(c).includes("Host(`twin.example.com`)"));
    expect(ms).toBeLessThan(WITHIN_MS);
  });

  it("a domain added, a replica moved and a deletion each reach B within the bound", async () => {
    const { a, b } = two;
    await a.post("/api/v1/deployments/dep_twin/domains", { domain: "www.twin.example.com", path_prefix: "/app" });
    expect(
      await propagation((c) => rules(c).includes("Host(`www.twin.example.com`) && PathPrefix(`/app`)")),
    ).toBeLessThan(WITHIN_MS);

    // A replica registered through A and marked healthy by a third session (as a health checker would).
    expect((await a.put("/api/v1/deployments/dep_twin/locations/twin_1", { address: "10.3.0.1" })).status).toBe(201);
    await two.db.execute(sql`update deployment_locations set health_status = 'healthy' where id = 'twin_1'`);
    expect(
      await propagation((c) =>
        Object.values(c.http?.services ?? {}).some((svc) =>
          svc.loadBalancer?.servers.some((x) => x.url === "http://10.3.0.1:8080"),
        ),
      ),
    ).toBeLessThan(WITHIN_MS);

    // Through B this time: the channel works both ways.
    const started = performance.now();
    expect((await b.put("/api/v1/deployments/dep_twin/routing", { path_prefix: "/b" })).status).toBe(200);
    await waitFor(
      async () => rules((await a.traefikConfig()).config).includes("Host(`twin.example.com`) && PathPrefix(`/b`)"),
      WITHIN_MS,
      10,
    );
    expect(performance.now() - started).toBeLessThan(WITHIN_MS + 100);

    expect((await a.delete("/api/v1/deployments/dep_twin")).status).toBe(204);
    expect(await propagation((c) => !JSON.stringify(c).includes("twin.example.com"))).toBeLessThan(WITHIN_MS);
    expect(await a.traefikDocument()).toEqual({}); // the last deployment is gone: nothing left to route
    const [ra, rb] = [await a.get("/traefik/config", PROVIDER), await b.get("/traefik/config", PROVIDER)];
    expect(rb.headers.get("x-config-hash")).toBe(ra.headers.get("x-config-hash"));
    expect([...a.faults, ...b.faults]).toEqual([]);
    expect(logger.errors).toEqual([]);
  });
});
