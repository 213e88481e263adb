import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/lib/logger.js";
import { routeName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { type Running, startServer } from "../../src/server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { startReplica, type TestReplica } from "../helpers/replica.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };

// End to end, as Traefik would do it: read the rendered config, then send a request to the service URL with the
// headers the rendered middleware sets. The embedded proxy must pick the lowest-CPU replica and follow changes.
describe.each(DRIVERS)("least-conn through the embedded fallback proxy on %s", (driver) => {
  let tdb: TestDb;
  let app: Running;
  const replicas: TestReplica[] = [];

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${app.url}/api/v1${path}`, {
      method,
      headers: admin,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const setCpu = (id: string, port: number, cpu: number) =>
    call("PUT", `/deployments/dep_lc/locations/${id}`, { address: "127.0.0.1", port, cpu_usage: cpu });

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    app = await startServer(testConfig({ FALLBACK_ENABLED: "true", PROXY_PORT: "0", PROXY_REFRESH_MS: "100" }), {
      handle: tdb.handle,
      logger: silentLogger,
    });
    replicas.push(await startReplica("a"), await startReplica("b"));
    await call("POST", "/deployments", { id: "dep_lc", name: "lc" });
    await call("PUT", "/deployments/dep_lc/routing", {
      domain: "lc.example.com",
      target_port: 1,
      load_balancer_algo: "least-cpu",
    });
    for (const [i, r] of replicas.entries()) {
      await setCpu(`r${i}`, r.port, i === 0 ? 80 : 10);
    }
    await tdb.handle.db.execute(
      (await import("drizzle-orm"))
        .sql`update deployment_locations set health_status = 'healthy' where deployment_id = 'dep_lc'`,
    );
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all(replicas.map((r) => r.close()));
    await tdb?.close();
  });

  it("renders the route to the proxy and the proxy picks the lowest-CPU replica, following CPU changes", async () => {
    const res = await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } });
    const cfg = (await res.json()) as DynamicConfig;
    expect(traefikSchemaErrors(cfg)).toEqual([]);
    const routes = (await (await call("GET", "/deployments/dep_lc/routing")).json()) as { domains: { id: string }[] };
    const name = routeName({ id: routes.domains[0]?.id ?? "", deploymentId: "dep_lc" });
    // The router's service (the deployment's), as Traefik follows it.
    const serviceUrl = cfg.http.services[cfg.http.routers[name]?.service ?? ""]?.loadBalancer?.servers[0]?.url;
    expect(serviceUrl).toBe(app.proxyUrl);
    const mwName = cfg.http.routers[name]?.middlewares?.at(-1) ?? "";
    const headers = cfg.http.middlewares?.[mwName]?.headers?.customRequestHeaders as Record<string, string>;
    expect(headers["X-Obiente-Deployment"]).toBe("dep_lc");

    const hit = async () => {
      const r = await request(`${serviceUrl}/`, { headers: { ...headers, host: "lc.example.com" } });
      return r.statusCode === 200 ? await r.body.text() : `status ${r.statusCode}`;
    };
    await waitFor(async () => (await hit()) === "b");
    for (let i = 0; i < 5; i++) {
      expect(await hit()).toBe("b"); // CPU 10 beats CPU 80
    }
    const [a, b] = replicas;
    if (!a || !b) {
      throw new Error("replicas missing");
    }
    await setCpu("r1", b.port, 95); // no config reload: the proxy follows the readings
    await waitFor(async () => (await hit()) === "a");
    const forged = await request(`${serviceUrl}/`, {
      headers: { "x-obiente-deployment": "dep_lc", "x-obiente-proxy-secret": "wrong-wrong-wrong-wrong" },
    });
    expect(forged.statusCode).toBe(403);
    await forged.body.dump();
  });
});
