import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { setTrafficPart } from "../../src/db/repo/traffic.js";
import { NO_REPLICA_URL } from "../../src/provider/settings.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { expectInvalid, expectProblem } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";

const PORT = 8080;
const GEO = {
  header: "CF-IPCountry",
  regions: { eu: ["DE", "FR", "NL"], us: ["US", "CA"] },
  failover: { eu: ["us"], us: ["eu"] },
  default: "eu",
};
const url = (address: string) => ({ url: `http://${address}:${PORT}` });
const EU = [url("10.0.1.1"), url("10.0.1.2")];
const US = [url("10.0.2.1")];
const PLACEHOLDER = [{ url: NO_REPLICA_URL, weight: 0 }];

describe.each(DRIVERS)("geographic routing (/api/v1/deployments/:id/geo) on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  const path = (id = "dep_geo") => `/api/v1/deployments/${id}/geo`;
  let name = ""; // the route's router
  /** The deployment's one service: the default region's pool, and the base of the region services' names. */
  const svc = deploymentServiceName("dep_geo");

  const setHealth = (ids: string[], health: "healthy" | "unhealthy") =>
    srv.db.execute(
      sql`update deployment_locations set health_status = ${health}, consecutive_successes = 3 where id in ${sql.raw(
        `(${ids.map((i) => `'${i}'`).join(", ")})`,
      )}`,
    );
  /** The served config once `check` holds for it (changes reach it through the change feed). */
  const configWhere = (check: (cfg: DynamicConfig) => boolean) =>
    waitFor(async () => {
      const { config } = await api.traefikConfig(); // schema- and semantics-checked
      return check(config) ? config : undefined;
    }, 15_000);
  const serversOf = (cfg: DynamicConfig, service: string) =>
    JSON.stringify(cfg.http.services[service]?.loadBalancer?.servers);

  beforeAll(async () => {
    const routing = await srv.seedDeployment("dep_geo", {
      domain: "geo.example.com",
      target_port: PORT,
      ssl_enabled: false,
    });
    name = routeName({ id: routing?.domains[0]?.id ?? "", deploymentId: "dep_geo" });
    await srv.seedLocation("dep_geo", "eu-1", { address: "10.0.1.1", region: "eu" });
    await srv.seedLocation("dep_geo", "eu-2", { address: "10.0.1.2", region: "eu" });
    await srv.seedLocation("dep_geo", "us-1", { address: "10.0.2.1", region: "us" });
    await srv.seedLocation("dep_geo", "nowhere", { address: "10.0.3.1" }); // no region: in none
    await srv.seedLocation("dep_geo", "canary", { address: "10.0.4.1", region: "eu", track: "canary" });
    await setHealth(["eu-1", "eu-2", "us-1", "nowhere", "canary"], "healthy");
  });

  it("answers 404 before geo routing is set, and for an unknown deployment", async () => {
    expectProblem(await api.get(path()), 404, "GEO_NOT_FOUND");
    expectProblem(await api.delete(path()), 404, "GEO_NOT_FOUND");
    expectProblem(await api.get(path("dep_nope")), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await api.put(path("dep_nope"), GEO), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await api.delete(path("dep_nope")), 404, "DEPLOYMENT_NOT_FOUND");
  });

  it("PUT stores the settings and shows each region's healthy replicas and serving region; GET shows the same", async () => {
    const expected = {
      ...GEO,
      status: { eu: { healthy_replicas: 2, served_by: "eu" }, us: { healthy_replicas: 1, served_by: "us" } },
    };
    const put = await api.put(path(), GEO);
    expect({ status: put.status, contentType: put.contentType, body: put.body }).toEqual({
      status: 200,
      contentType: "application/json",
      body: expected,
    });
    const get = await api.get(path());
    expect({ status: get.status, body: get.body }).toEqual({ status: 200, body: expected });
  });

  it("renders a router per region to that region's stable replicas, and the default region for everyone else", async () => {
    expect((await api.put(path(), GEO)).status).toBe(200);
    const cfg = await configWhere((c) => c.http.routers[`${name}--geo-eu`] !== undefined);
    const priority = cfg.http.routers[name]?.priority ?? 0;
    expect(cfg.http.routers[`${name}--geo-eu`]).toEqual({
      entryPoints: ["web"],
      priority: priority + 1,
      rule: "Host(`geo.example.com`) && HeaderRegexp(`CF-IPCountry`, `^(?:DE|FR|NL)$`)",
      service: `${svc}--region-eu`,
    });
    expect(cfg.http.routers[`${name}--geo-us`]?.rule).toBe(
      "Host(`geo.example.com`) && HeaderRegexp(`CF-IPCountry`, `^(?:CA|US)$`)",
    );
    expect(cfg.http.services[`${svc}--region-eu`]?.loadBalancer?.servers).toEqual(EU);
    expect(cfg.http.services[`${svc}--region-us`]?.loadBalancer?.servers).toEqual(US);
    expect(cfg.http.services[svc]?.loadBalancer?.servers).toEqual(EU); // default: eu
  });

  it("fails over to the next region while one has no healthy replica, and back when it recovers", async () => {
    expect((await api.put(path(), GEO)).status).toBe(200);
    await setHealth(["eu-1", "eu-2"], "unhealthy");
    const down = await configWhere((c) => serversOf(c, `${svc}--region-eu`) === JSON.stringify(US));
    expect(down.http.services[svc]?.loadBalancer?.servers).toEqual(US);
    expect(down.http.services[`${svc}--region-us`]?.loadBalancer?.servers).toEqual(US);
    expect((await api.get(path())).body).toMatchObject({
      status: { eu: { healthy_replicas: 0, served_by: "us" }, us: { healthy_replicas: 1, served_by: "us" } },
    });

    await setHealth(["us-1"], "unhealthy"); // nothing left anywhere: 503 from the placeholder
    const none = await configWhere((c) => serversOf(c, svc) === JSON.stringify(PLACEHOLDER));
    expect(none.http.services[`${svc}--region-eu`]?.loadBalancer?.servers).toEqual(PLACEHOLDER);
    expect(none.http.services[`${svc}--region-us`]?.loadBalancer?.servers).toEqual(PLACEHOLDER);
    expect((await api.get(path())).body).toMatchObject({
      status: { eu: { healthy_replicas: 0, served_by: null }, us: { healthy_replicas: 0, served_by: null } },
    });

    await setHealth(["eu-1", "eu-2", "us-1"], "healthy");
    const back = await configWhere((c) => serversOf(c, `${svc}--region-eu`) === JSON.stringify(EU));
    expect(back.http.services[`${svc}--region-us`]?.loadBalancer?.servers).toEqual(US);
  });

  it("moves a replica between regions when its region changes", async () => {
    expect((await api.put(path(), GEO)).status).toBe(200);
    await srv.seedLocation("dep_geo", "eu-2", { address: "10.0.1.2", region: "us" });
    const cfg = await configWhere(
      (c) => serversOf(c, `${svc}--region-us`) === JSON.stringify([url("10.0.1.2"), url("10.0.2.1")]),
    );
    expect(cfg.http.services[`${svc}--region-eu`]?.loadBalancer?.servers).toEqual([url("10.0.1.1")]);
    await srv.seedLocation("dep_geo", "eu-2", { address: "10.0.1.2", region: "eu" });
    await configWhere((c) => serversOf(c, `${svc}--region-eu`) === JSON.stringify(EU));
  });

  it("refuses invalid settings with 400 naming the field, including rule injection attempts", async () => {
    const cases: [unknown, string[]][] = [
      [{ ...GEO, header: "CF-IPCountry`) || Host(`evil.example.com" }, ["body.header"]],
      [{ ...GEO, header: "X-{{.Env}}" }, ["body.header"]],
      [{ ...GEO, header: "Host" }, ["body.header"]],
      [{ ...GEO, header: "X-Obiente-Deployment" }, ["body.header"]],
      [{ ...GEO, regions: { eu: ["DE`) || Host(`evil"], us: ["US"] } }, ["body.regions.eu[0]"]],
      [{ ...GEO, regions: { eu: ["DE|.*"], us: ["US"] } }, ["body.regions.eu[0]"]],
      [{ ...GEO, regions: { eu: ["de"], us: ["US"] } }, ["body.regions.eu[0]"]],
      [{ ...GEO, regions: { eu: ["XK"], us: ["US"] } }, ["body.regions.eu[0]"]],
      [{ ...GEO, regions: { "eu`": ["DE"], us: ["US"] }, failover: {}, default: "us" }, ["body.regions.eu`"]],
      [{ ...GEO, regions: { eu: ["DE", "US"], us: ["US"] } }, ["body.regions.us[0]"]],
      [{ ...GEO, failover: { eu: ["eu"] } }, ["body.failover.eu[0]"]],
      [{ ...GEO, failover: { eu: ["us", "us"] } }, ["body.failover.eu[1]"]],
      [{ ...GEO, failover: { eu: ["ap"] } }, ["body.failover.eu[0]"]],
      [{ ...GEO, failover: { ap: ["eu"] } }, ["body.failover.ap"]],
      [{ ...GEO, default: "ap" }, ["body.default"]],
      [{ ...GEO, default: undefined }, ["body.default"]],
      [{ ...GEO, weights: { stable: 1 } }, ["body"]],
      [
        {
          ...GEO,
          regions: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`r${i}`, []])),
          failover: {},
          default: "r0",
        },
        ["body.regions"],
      ],
    ];
    for (const [body, locations] of cases) {
      const r = await api.put(path(), body);
      expectInvalid(r, ...locations);
      expect(r.text).not.toContain("evil");
    }
  });

  it("answers 409 when the deployment has a traffic split or a least-conn route", async () => {
    await srv.seedDeployment("dep_split", { domain: "split.example.com", target_port: PORT, ssl_enabled: false });
    await setTrafficPart(srv.db, "dep_split", "split", { weights: { stable: 90, canary: 10 } });
    const split = expectProblem(await api.put(path("dep_split"), GEO), 409, "TRAFFIC_CONFLICT");
    expect(split).toMatchObject({ conflicts_with: "split", detail: expect.stringContaining("split") });

    await srv.seedDeployment("dep_lc", {
      domain: "lc.example.com",
      target_port: PORT,
      ssl_enabled: false,
      load_balancer_algo: "least-conn",
    });
    const lc = expectProblem(await api.put(path("dep_lc"), GEO), 409, "TRAFFIC_CONFLICT");
    expect(lc).toMatchObject({ conflicts_with: "load_balancer_algo" });
    expectProblem(await api.get(path("dep_lc")), 404, "GEO_NOT_FOUND");
  });

  it("refuses to switch a deployment with geo routing to least-conn (409), and allows it once geo is removed", async () => {
    await srv.seedDeployment("dep_switch", { domain: "switch.example.com", target_port: PORT, ssl_enabled: false });
    expect((await api.put(path("dep_switch"), GEO)).status).toBe(200);
    const refused = expectProblem(
      await api.put("/api/v1/deployments/dep_switch/routing", { load_balancer_algo: "least-conn" }),
      409,
      "TRAFFIC_CONFLICT",
    );
    expect(refused).toMatchObject({ conflicts_with: "geo" });
    expect((await api.get("/api/v1/deployments/dep_switch/routing")).body).toMatchObject({
      load_balancer_algo: "round-robin",
    });
    expect((await api.delete(path("dep_switch"))).status).toBe(204);
    expect((await api.put("/api/v1/deployments/dep_switch/routing", { load_balancer_algo: "least-conn" })).status).toBe(
      200,
    );
  });

  it("DELETE returns the deployment to one pool of stable replicas", async () => {
    expect((await api.put(path(), GEO)).status).toBe(200);
    await configWhere((c) => c.http.routers[`${name}--geo-eu`] !== undefined);
    const r = await api.delete(path());
    expect({ status: r.status, text: r.text }).toEqual({ status: 204, text: "" });
    const cfg = await configWhere((c) => c.http.routers[`${name}--geo-eu`] === undefined);
    expect(Object.keys(cfg.http.services).filter((s) => s === svc || s.startsWith(`${svc}--`))).toEqual([svc]);
    // Every stable replica, with or without a region; not the canary.
    expect(cfg.http.services[svc]?.loadBalancer?.servers).toEqual([...EU, url("10.0.2.1"), url("10.0.3.1")]);
    expectProblem(await api.get(path()), 404, "GEO_NOT_FOUND");
    expectProblem(await api.delete(path()), 404, "GEO_NOT_FOUND");
  });

  it("documents PUT, GET and DELETE in the OpenAPI document with their scopes", async () => {
    const doc = await api.get<{ paths: Record<string, Record<string, { security?: unknown }>> }>("/openapi.json", {
      token: null,
    });
    const ops = doc.body.paths["/api/v1/deployments/{id}/geo"];
    expect(Object.keys(ops ?? {}).sort()).toEqual(["delete", "get", "put"]);
    expect(ops?.get?.security).toEqual([{ apiToken: ["read"] }]);
    expect(ops?.put?.security).toEqual([{ apiToken: ["write"] }]);
    expect(ops?.delete?.security).toEqual([{ apiToken: ["write"] }]);
  });
});
