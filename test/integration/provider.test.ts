import { gunzipSync } from "node:zlib";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { deploymentLocations, deploymentRouting, deployments } from "../../schema/tables.js";
import { silentLogger } from "../../src/lib/logger.js";
import { deploymentServiceName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { startServer } from "../../src/server.js";
import { useApiServer } from "../helpers/api-server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb } from "../helpers/db.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

/** The deployments' services: every route of a deployment points at its one service. */
const WEB_SERVICE = deploymentServiceName("dep_web");
const API_SERVICE = deploymentServiceName("dep_api");

const auth = { authorization: `Bearer ${PROVIDER_TOKEN}` };

describe.each(DRIVERS)("GET /traefik/config on %s", (driver) => {
  // One test makes the database unreadable on purpose: its error lines are expected.
  const app = useApiServer(driver, {}, { allowErrorLogs: true });

  const get = (path = "/traefik/config", headers: Record<string, string> = auth) =>
    fetch(`${app.url}${path}`, { headers });
  const getConfig = async (): Promise<DynamicConfig> => {
    const res = await get();
    expect(res.status).toBe(200);
    const config = (await res.json()) as DynamicConfig;
    // `{}` until the rows below are read (nothing to route: Traefik applies it).
    expect(traefikSchemaErrors(config, { allowEmpty: config.http === undefined })).toEqual([]);
    return config;
  };

  beforeAll(async () => {
    const db = app.db;
    await db.insert(deployments).values([
      { id: "dep_web", name: "web" },
      { id: "dep_api", name: "api" },
    ]);
    await db.insert(deploymentRouting).values([
      { id: "rt_web", deploymentId: "dep_web", domain: "web.example.com", targetPort: 3000, sslEnabled: true },
      {
        id: "rt_api",
        deploymentId: "dep_api",
        domain: "web.example.com",
        pathPrefix: "/api",
        targetPort: 4000,
        sslEnabled: false,
      },
    ]);
    await db.insert(deploymentLocations).values([
      { id: "web_1", deploymentId: "dep_web", address: "10.1.0.1", healthStatus: "healthy" },
      { id: "web_2", deploymentId: "dep_web", address: "10.1.0.2", healthStatus: "unhealthy" },
      { id: "api_1", deploymentId: "dep_api", address: "10.2.0.1", port: 31001, healthStatus: "healthy" },
    ]);
  });

  it("picks up rows written straight to the database (NOTIFY) and renders them", async () => {
    // Rows arrive in three statements; wait for the last one (the replicas), not just the routers.
    const config = await waitFor(async () => {
      const c = await getConfig();
      const api = c.http?.services[API_SERVICE]?.loadBalancer?.servers[0];
      // Two routers per route: the TLS one + its --to-https redirect, the plain one + its --to-http redirect.
      return Object.keys(c.http?.routers ?? {}).length === 4 && api !== undefined && api.weight === undefined
        ? c
        : undefined;
    });
    expect(config.http.services[WEB_SERVICE]?.loadBalancer?.servers).toEqual([{ url: "http://10.1.0.1:3000" }]);
    expect(config.http.services[API_SERVICE]?.loadBalancer?.servers).toEqual([{ url: "http://10.2.0.1:31001" }]);
    expect(config.http.routers["dep-web--rt-web"]?.tls).toEqual({ certResolver: "letsencrypt" });
  });

  it("answers JSON with an ETag, and YAML by query or Accept", async () => {
    const json = await get();
    expect(json.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(json.headers.get("etag")).toMatch(/^"[0-9a-f]{32}-json(-gz)?"$/);
    const body = (await json.json()) as DynamicConfig;
    for (const res of [
      await get("/traefik/config?format=yaml"),
      await fetch(`${app.url}/traefik/config`, { headers: { ...auth, accept: "application/yaml" } }),
    ]) {
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/yaml; charset=utf-8");
      const yaml = parseYaml(await res.text()) as DynamicConfig;
      expect(yaml).toEqual(body);
    }
    const bad = await get("/traefik/config?format=xml");
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toBe("application/problem+json");
  });

  it("requires the provider token", async () => {
    const none = await get("/traefik/config", {});
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    expect(none.headers.get("content-type")).toBe("application/problem+json");
    expect(((await none.json()) as { code: string }).code).toBe("UNAUTHORIZED");
    expect((await get("/traefik/config", { authorization: "Bearer wrong-token-wrong-token" })).status).toBe(401);
    expect((await get("/traefik/config", { authorization: `Bearer ${ADMIN_TOKEN}` })).status).toBe(403);
  });

  it("serves gzip when asked (as Traefik's Go client does) and the same bytes otherwise", async () => {
    const { request } = await import("undici");
    const gz = await request(`${app.url}/traefik/config`, { headers: { ...auth, "accept-encoding": "gzip" } });
    expect(gz.statusCode).toBe(200);
    expect(gz.headers["content-encoding"]).toBe("gzip");
    const zipped = Buffer.from(await gz.body.arrayBuffer());
    const plain = await request(`${app.url}/traefik/config`, { headers: { ...auth, "accept-encoding": "identity" } });
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(gunzipSync(zipped).equals(Buffer.from(await plain.body.arrayBuffer()))).toBe(true);
    expect(gz.headers.etag).not.toBe(plain.headers.etag);
  });

  it("answers 304 only to a request that sent If-None-Match", async () => {
    const first = await get();
    const etag = first.headers.get("etag") ?? "";
    await first.arrayBuffer();
    const again = await get("/traefik/config", { ...auth, "if-none-match": etag });
    expect(again.status).toBe(304);
    expect((await get()).status).toBe(200);
    expect((await get("/traefik/config", { ...auth, "if-none-match": '"other"' })).status).toBe(200);
  });

  it("does not re-render per poll: the revision only moves when state changes", async () => {
    const revs = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await get();
      await res.arrayBuffer();
      revs.add(`${res.headers.get("x-config-revision")}@${res.headers.get("x-config-rendered-at")}`);
    }
    expect(revs.size).toBe(1);
    const before = Number([...revs][0]?.split("@")[0]);
    await app.db.execute(sql`update deployment_locations set cpu_usage = 42 where id = 'web_1'`);
    await app.db.execute(sql`update deployment_locations set health_status = 'healthy' where id = 'web_2'`);
    const after = await waitFor(async () => {
      const res = await get();
      const c = (await res.json()) as DynamicConfig;
      return c.http.services[WEB_SERVICE]?.loadBalancer?.servers.length === 2 ? res : undefined;
    });
    expect(Number(after.headers.get("x-config-revision"))).toBe(before + 1);
    // Leave the suite's rows as seeded: the NOTIFY test above expects web_2 unhealthy, in whatever order they run.
    await app.db.execute(sql`update deployment_locations set health_status = 'unhealthy' where id = 'web_2'`);
    await waitFor(async () => {
      const c = (await (await get()).json()) as DynamicConfig;
      return c.http.services[WEB_SERVICE]?.loadBalancer?.servers.length === 1;
    });
  });

  it("keeps serving the last good config, marked stale, when the database cannot be read", async () => {
    const good = await (await get()).text();
    await app.db.execute(sql`alter table deployment_routing rename to deployment_routing_gone`);
    try {
      app.cache.invalidate();
      const stale = await waitFor(async () => {
        const res = await get();
        return res.headers.get("x-config-stale") === "true" ? res : undefined;
      });
      expect(stale.status).toBe(200);
      expect(await stale.text()).toBe(good);
    } finally {
      await app.db.execute(sql`alter table deployment_routing_gone rename to deployment_routing`);
    }
    app.cache.invalidate();
    await waitFor(async () => {
      const res = await get();
      await res.arrayBuffer();
      return res.headers.get("x-config-stale") === null;
    });
  });

  it("answers 405 to other methods and a problem for unknown paths", async () => {
    const post = await fetch(`${app.url}/traefik/config`, { method: "POST", headers: auth });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const missing = await get("/nope");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ status: 404, code: "NOT_FOUND", instance: "/nope" });
  });
});

describe.each(DRIVERS)("startup without a readable database on %s", (driver) => {
  it("answers 503, never an empty 200, until the first render succeeds", async () => {
    const tdb = await makeTestDb(driver);
    await tdb.handle.db.execute(sql`alter table deployment_locations rename to deployment_locations_gone`);
    const app = await startServer(testConfig(), { handle: tdb.handle, logger: silentLogger });
    try {
      const res = await fetch(`${app.url}/traefik/config`, { headers: auth });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("5");
      expect(await res.json()).toMatchObject({ status: 503, code: "CONFIG_UNAVAILABLE" });
      await tdb.handle.db.execute(sql`alter table deployment_locations_gone rename to deployment_locations`);
      app.cache.invalidate();
      const ok = await waitFor(async () => {
        const r = await fetch(`${app.url}/traefik/config`, { headers: auth });
        return r.status === 200 ? r : undefined;
      });
      // The database is empty: `{}`, which Traefik applies (it is only refused before the first read).
      const body = await ok.text();
      expect(body).toBe("{}\n");
      expect(traefikSchemaErrors(body, { allowEmpty: true })).toEqual([]);
    } finally {
      await app.close();
      await tdb.close();
    }
  });
});
