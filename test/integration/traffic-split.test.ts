import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client.js";
import { setTrafficPart } from "../../src/db/repo/traffic.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import { MIRROR_MAX_BODY_BYTES } from "../../src/render/split.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { expectInvalid, expectProblem } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";

const SPLIT = {
  weights: { stable: 90, canary: 10 },
  sticky: true,
  rules: [
    { match: { header: "X-Variant", value: "b" }, track: "canary" },
    { match: { cookie: "ab", value: "b" }, track: "canary" },
    { match: { query: "variant", value: "b" }, track: "canary" },
  ],
  mirror: { track: "canary", percent: 10 },
};

describe.each(DRIVERS)("traffic split API on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  let name = ""; // the route's router
  /** The deployment's one service: its routers point at it, its split services are named from it. */
  const svc = deploymentServiceName("dep_split");
  const put = (body: unknown, id = "dep_split") => api.put(`/api/v1/deployments/${id}/split`, body);
  const storedSplit = async (id = "dep_split") =>
    rowsOf<{ split: unknown }>(
      await srv.db.execute(sql`select split from deployment_traffic where deployment_id = ${id}`),
    )[0]?.split ?? null;
  const setHealth = async (ids: string[], health: "healthy" | "unhealthy") => {
    for (const id of ids) {
      await srv.db.execute(sql`update deployment_locations set health_status = ${health} where id = ${id}`);
    }
  };
  /** Waits until the served config satisfies `ok` (renders follow NOTIFY or the change poll). */
  const configWhere = (ok: (cfg: DynamicConfig) => boolean) =>
    waitFor(async () => {
      const doc = await api.traefikDocument();
      return doc.http !== undefined && ok(doc as DynamicConfig) ? (doc as DynamicConfig) : undefined;
    }, 15_000);

  beforeAll(async () => {
    const routing = await srv.seedDeployment("dep_split", {
      domain: "shop.split.example.com",
      target_port: 8080,
      ssl_enabled: true,
    });
    name = routeName({ id: routing?.domains[0]?.id ?? "", deploymentId: "dep_split" });
    await srv.seedLocation("dep_split", "st_1", { address: "10.1.0.1" });
    await srv.seedLocation("dep_split", "st_2", { address: "10.1.0.2" });
    await srv.seedLocation("dep_split", "ca_1", { address: "10.1.1.1", track: "canary" });
    await setHealth(["st_1", "st_2", "ca_1"], "healthy");
    await srv.seedDeployment("dep_lc", {
      domain: "lc.split.example.com",
      target_port: 80,
      load_balancer_algo: "least-conn",
    });
    await srv.seedDeployment("dep_geo", { domain: "geo.split.example.com", target_port: 80 });
    await setTrafficPart(srv.db, "dep_geo", "geo", { header: "CF-IPCountry", regions: { eu: ["DE"] }, default: "eu" });
  });

  it("stores the split, shows it with the effective weights, and serves a weighted service", async () => {
    const r = await put(SPLIT);
    expect(r.status).toBe(200);
    const expected = {
      weights: { stable: 90, canary: 10 },
      sticky: {},
      rules: SPLIT.rules,
      mirror: { track: "canary", percent: 10 },
      effective: [
        { track: "canary", weight: 10, percent: 10 },
        { track: "stable", weight: 90, percent: 90 },
      ],
      healthy_replicas: { canary: 1, stable: 2 },
    };
    expect(r.body).toEqual(expected);
    expect(await storedSplit()).toEqual({
      weights: { stable: 90, canary: 10 },
      sticky: {},
      rules: SPLIT.rules,
      mirror: { track: "canary", percent: 10 },
    });
    const again = await api.get("/api/v1/deployments/dep_split/split");
    expect({ status: again.status, body: again.body }).toEqual({ status: 200, body: expected });

    const cfg = await configWhere((c) => c.http.services[svc]?.mirroring !== undefined);
    expect(cfg.http.services[svc]).toEqual({
      mirroring: {
        maxBodySize: MIRROR_MAX_BODY_BYTES,
        mirrors: [{ name: `${svc}--track-canary`, percent: 10 }],
        service: `${svc}--main`,
      },
    });
    expect(cfg.http.services[`${svc}--main`]).toEqual({
      weighted: {
        services: [
          { name: `${svc}--track-canary`, weight: 10 },
          { name: `${svc}--track-stable`, weight: 90 },
        ],
        sticky: { cookie: { httpOnly: true, sameSite: "lax", secure: true } },
      },
    });
    expect(cfg.http.services[`${svc}--track-stable`]?.loadBalancer?.servers).toEqual([
      { url: "http://10.1.0.1:8080" },
      { url: "http://10.1.0.2:8080" },
    ]);
    const base = cfg.http.routers[name];
    for (const i of [0, 1, 2]) {
      const ab = cfg.http.routers[`${name}--ab-${i}`];
      expect(ab).toMatchObject({ entryPoints: base?.entryPoints, service: `${svc}--track-canary`, tls: base?.tls });
      expect(ab?.rule.startsWith(`${base?.rule} && `)).toBe(true);
      expect(ab?.priority).toBeGreaterThan(base?.priority ?? Infinity);
    }
  });

  it("drops a track that goes unhealthy and its A/B routers, and brings it back", async () => {
    expect((await put({ weights: { stable: 90, canary: 10 }, rules: SPLIT.rules.slice(0, 1) })).status).toBe(200);
    await setHealth(["ca_1"], "unhealthy");
    const cfg = await configWhere((c) => c.http.routers[`${name}--ab-0`] === undefined);
    expect(cfg.http.services[svc]).toEqual({
      weighted: { services: [{ name: `${svc}--track-stable`, weight: 90 }] },
    });
    expect(cfg.http.services[`${svc}--track-canary`]).toBeUndefined();
    const view = await api.get<{ effective: unknown }>("/api/v1/deployments/dep_split/split");
    expect(view.body.effective).toEqual([{ track: "stable", weight: 90, percent: 100 }]);
    await setHealth(["ca_1"], "healthy");
    const back = await configWhere((c) => c.http.routers[`${name}--ab-0`] !== undefined);
    expect(back.http.services[svc]?.weighted?.services).toHaveLength(2);
  });

  it("DELETE returns to one stable pool; a second DELETE and a GET are 404", async () => {
    expect((await put({ weights: { stable: 1, canary: 1 } })).status).toBe(200);
    const del = await api.delete("/api/v1/deployments/dep_split/split");
    expect(del.status).toBe(204);
    expect(await storedSplit()).toBeNull();
    const cfg = await configWhere((c) => c.http.services[svc]?.loadBalancer !== undefined);
    expect(cfg.http.services[svc]?.loadBalancer?.servers).toEqual([
      { url: "http://10.1.0.1:8080" },
      { url: "http://10.1.0.2:8080" },
    ]);
    expect(Object.keys(cfg.http.services).filter((s) => s.startsWith(`${svc}--`))).toEqual([]);
    expectProblem(await api.delete("/api/v1/deployments/dep_split/split"), 404, "SPLIT_NOT_FOUND");
    expectProblem(await api.get("/api/v1/deployments/dep_split/split"), 404, "SPLIT_NOT_FOUND");
    expectProblem(await put(SPLIT, "dep_nope"), 404, "DEPLOYMENT_NOT_FOUND");
  });

  it("refuses a split on a geo-routed or least-conn deployment with 409", async () => {
    const geo = expectProblem(await put(SPLIT, "dep_geo"), 409, "TRAFFIC_CONFLICT");
    expect(geo.detail).toMatch(/geo/);
    const lc = expectProblem(await put(SPLIT, "dep_lc"), 409, "TRAFFIC_CONFLICT");
    expect(lc.detail).toMatch(/least-conn/);
    expect(await storedSplit("dep_geo")).toBeNull();
    expect(await storedSplit("dep_lc")).toBeNull();
  });

  const rule = (match: Record<string, unknown>) => ({ weights: { stable: 1 }, rules: [{ match, track: "canary" }] });
  const invalid: [string, unknown, string[]][] = [
    [
      "a backtick in a header value",
      rule({ header: "X-Variant", value: "b`) || Host(`evil" }),
      ["body.rules[0].match.value"],
    ],
    ["a template in a query value", rule({ query: "v", value: "{{ .Env }}" }), ["body.rules[0].match.value"]],
    ["a quote in a cookie name", rule({ cookie: 'ab"', value: "b" }), ["body.rules[0].match.cookie"]],
    ["a regexp in a cookie name", rule({ cookie: "a|b", value: "b" }), ["body.rules[0].match.cookie"]],
    ["a space in a header name", rule({ header: "X Variant", value: "b" }), ["body.rules[0].match.header"]],
    ["the proxy's own header", rule({ header: "X-Obiente-Proxy-Secret", value: "b" }), ["body.rules[0].match.header"]],
    ["two matchers", rule({ header: "X-A", cookie: "a", value: "b" }), ["body.rules[0].match"]],
    ["no matcher", rule({ value: "b" }), ["body.rules[0].match"]],
    [
      "a bad track",
      { weights: { stable: 1 }, rules: [{ match: { header: "X-A", value: "b" }, track: "Canary!" }] },
      ["body.rules[0].track"],
    ],
    [
      "six rules",
      { weights: { stable: 1 }, rules: Array(6).fill({ match: { header: "X-A", value: "b" }, track: "c" }) },
      ["body.rules"],
    ],
    ["a bad track name in weights", { weights: { "stable`": 1 } }, ["body.weights.stable`"]],
    ["no weight above zero", { weights: { stable: 0, canary: 0 } }, ["body.weights"]],
    ["a fractional weight", { weights: { stable: 1.5 } }, ["body.weights.stable"]],
    [
      "a mirror over 100 %",
      { weights: { stable: 1 }, mirror: { track: "canary", percent: 101 } },
      ["body.mirror.percent"],
    ],
    ["an unknown field", { weights: { stable: 1 }, canary: 10 }, ["body"]],
    [
      "a sticky cookie name with a space",
      { weights: { stable: 1 }, sticky: { cookie_name: "a b" } },
      ["body.sticky.cookie_name"],
    ],
  ];
  it.each(invalid)("400 for %s, naming the field", async (_what, body, locations) => {
    const before = await storedSplit();
    const r = await put(body);
    const p = expectInvalid(r, ...locations);
    expect(p.detail).toBeTruthy();
    expect(await storedSplit()).toEqual(before);
  });
});
