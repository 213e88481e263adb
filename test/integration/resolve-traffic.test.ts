import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { setTrafficPart } from "../../src/db/repo/traffic.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import { routingPath } from "../../src/render/rules.js";
import type { DynamicConfig, Router } from "../../src/render/types.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";

interface Resolution {
  matched: boolean;
  outcome: number;
  router?: string;
  rule?: string;
  priority?: number;
  deployment_id?: string;
  reason: string;
  traffic?: {
    kind: "split" | "geo";
    via: string;
    router: string;
    service: string;
    track: string | null;
    rule_index: number | null;
    weights: { track: string; weight: number; percent: number }[];
    sticky: boolean;
    mirror: { track: string; percent: number; max_body_bytes: number } | null;
    geo?: { mapped: string; served: string | null; reason: string };
    reason: string;
  };
}

interface Request {
  host: string;
  path: string;
  headers?: Record<string, string>;
  cookie?: string;
}

/**
 * A small model of Traefik's HTTP routing (traefik v3.7.9 pkg/muxer/http/mux.go and matcher.go): the routers of the
 * entry point whose rule matches, highest priority first. Understands the matchers we render (Host, PathPrefix,
 * Header, HeaderRegexp on Cookie, Query, joined by &&); anything else fails the test. Ties fail too.
 */
function traefikWinner(config: DynamicConfig, entryPoint: string, req: Request): [string, Router] | undefined {
  const [rawPath = "", qs = ""] = req.path.split(/\?(.*)/s);
  const routed = routingPath(rawPath) ?? "";
  const query = new URLSearchParams(qs);
  const header = (k: string) =>
    Object.entries(req.headers ?? {})
      .filter(([n]) => n.toLowerCase() === k.toLowerCase())
      .map(([, v]) => v)
      .concat(k.toLowerCase() === "cookie" && req.cookie !== undefined ? [req.cookie] : []);
  const matching: [string, Router][] = [];
  for (const [name, r] of Object.entries(config.http.routers)) {
    if (!r.entryPoints.includes(entryPoint)) {
      continue;
    }
    const ok = r.rule.split(" && ").every((leaf) => {
      const m = /^(Host|PathPrefix|Header|HeaderRegexp|Query)\(`([^`]*)`(?:, `([^`]*)`)?\)$/.exec(leaf);
      if (!m?.[1] || m[2] === undefined) {
        throw new Error(`rule not understood by the model: ${r.rule}`);
      }
      const [, fn, a, b = ""] = m;
      switch (fn) {
        case "Host":
          return req.host === a;
        case "PathPrefix":
          return routed.startsWith(a);
        case "Header":
          return header(a).includes(b);
        case "HeaderRegexp":
          return header(a).some((v) => new RegExp(b).test(v));
        default:
          return query.getAll(a).includes(b);
      }
    });
    if (ok) {
      matching.push([name, r]);
    }
  }
  matching.sort((x, y) => y[1].priority - x[1].priority);
  const [first, second] = matching;
  if (first && second && first[1].priority === second[1].priority) {
    throw new Error(`ambiguous: ${first[0]} and ${second[0]} share priority ${first[1].priority}`);
  }
  return first;
}

describe.each(DRIVERS)("/routing/resolve explains traffic splits on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  let name = "";
  let apiName = "";

  const resolve = async (req: Request, scheme: "http" | "https" = "https") => {
    const q = new URLSearchParams({ host: req.host, path: req.path, scheme });
    for (const [k, v] of Object.entries(req.headers ?? {})) {
      q.append("header", `${k}: ${v}`);
    }
    if (req.cookie !== undefined) {
      q.set("cookie", req.cookie);
    }
    const r = await api.get<Resolution>(`/api/v1/routing/resolve?${q}`);
    expect(r.status).toBe(200);
    return r.body;
  };
  const served = async () => (await api.traefikConfig()).config;
  const setHealth = (id: string, health: "healthy" | "unhealthy") =>
    srv.db.execute(sql`update deployment_locations set health_status = ${health} where id = ${id}`);

  beforeAll(async () => {
    const routing = await srv.seedDeployment("dep_ab", {
      domain: "ab.example.com",
      target_port: 8080,
      ssl_enabled: true,
    });
    name = routeName({ id: routing?.domains[0]?.id ?? "", deploymentId: "dep_ab" });
    // Another deployment with a longer path prefix on the same host: it must win over every A/B router.
    const other = await srv.seedDeployment("dep_api", {
      domain: "ab.example.com",
      path_prefix: "/api",
      target_port: 8080,
      ssl_enabled: true,
    });
    apiName = routeName({ id: other?.domains[0]?.id ?? "", deploymentId: "dep_api" });
    await srv.seedLocation("dep_ab", "st_1", { address: "10.2.0.1" });
    await srv.seedLocation("dep_ab", "ca_1", { address: "10.2.1.1", track: "canary" });
    await srv.seedLocation("dep_api", "api_1", { address: "10.2.2.1" });
    for (const id of ["st_1", "ca_1", "api_1"]) {
      await setHealth(id, "healthy");
    }
    const put = await api.put("/api/v1/deployments/dep_ab/split", {
      weights: { stable: 75, canary: 25 },
      sticky: true,
      rules: [
        { match: { header: "X-Variant", value: "b" }, track: "canary" },
        { match: { cookie: "ab", value: "b" }, track: "canary" },
        { match: { query: "variant", value: "b" }, track: "canary" },
      ],
      mirror: { track: "canary", percent: 5 },
    });
    expect(put.status).toBe(200);
    await waitFor(async () => (await served()).http.routers[`${name}--ab-2`] !== undefined, 15_000);
  });

  const cases: [string, Request, string | null][] = [
    ["no header, cookie or query: the weighted split", { host: "ab.example.com", path: "/x" }, null],
    ["the header rule", { host: "ab.example.com", path: "/x", headers: { "x-variant": "b" } }, "ab-0"],
    ["the cookie rule", { host: "ab.example.com", path: "/x", cookie: "theme=dark; ab=b" }, "ab-1"],
    ["the query rule", { host: "ab.example.com", path: "/x?variant=b" }, "ab-2"],
    [
      "the earliest of several matching rules",
      { host: "ab.example.com", path: "/x?variant=b", headers: { "X-Variant": "b" }, cookie: "ab=b" },
      "ab-0",
    ],
    ["a near-miss cookie (ab=bb)", { host: "ab.example.com", path: "/", cookie: "ab=bb; xab=b" }, null],
    ["an empty query value", { host: "ab.example.com", path: "/x?variant=" }, null],
  ];
  it.each(cases)("names the router Traefik picks: %s", async (_what, req, suffix) => {
    const r = await resolve(req);
    const expected = suffix ? `${name}--${suffix}` : name;
    expect(r).toMatchObject({ matched: true, outcome: 200, deployment_id: "dep_ab", router: expected });
    const [winner, router] = traefikWinner(await served(), "websecure", req) ?? [];
    expect(winner).toBe(expected);
    expect({ rule: r.rule, priority: r.priority }).toEqual({ rule: router?.rule, priority: router?.priority });
    expect(r.traffic?.service).toBe(router?.service); // the service the winning router names
    const svc = deploymentServiceName("dep_ab");
    expect(r.traffic).toMatchObject({
      kind: "split",
      via: suffix ? "rule" : "weighted",
      router: expected,
      service: suffix ? `${svc}--track-canary` : svc,
      track: suffix ? "canary" : null,
      sticky: true,
      mirror: { track: "canary", percent: 5, max_body_bytes: 1048576 },
      weights: [
        { track: "canary", weight: 25, percent: 25 },
        { track: "stable", weight: 75, percent: 75 },
      ],
    });
  });

  it("a longer path prefix of another route beats every A/B router", async () => {
    const req = { host: "ab.example.com", path: "/api/x?variant=b", headers: { "X-Variant": "b" } };
    const r = await resolve(req);
    expect(r).toMatchObject({ deployment_id: "dep_api", router: apiName });
    expect(r.traffic).toBeUndefined();
    expect(traefikWinner(await served(), "websecure", req)?.[0]).toBe(apiName);
  });

  it("with the canary unhealthy, a matching rule falls to the weighted split, all stable", async () => {
    await setHealth("ca_1", "unhealthy");
    await waitFor(async () => (await served()).http.routers[`${name}--ab-0`] === undefined, 15_000);
    const req = { host: "ab.example.com", path: "/x", headers: { "X-Variant": "b" } };
    const r = await resolve(req);
    expect(r).toMatchObject({ router: name, outcome: 200 });
    expect(r.traffic).toMatchObject({
      via: "weighted",
      mirror: null,
      weights: [{ track: "stable", weight: 75, percent: 100 }],
    });
    expect(r.reason).toMatch(/no healthy replica/);
    expect(traefikWinner(await served(), "websecure", req)?.[0]).toBe(name);
    await setHealth("ca_1", "healthy");
  });

  it("explains geo routing with the country", async () => {
    const routing = await srv.seedDeployment("dep_geo", { domain: "geo.example.com", target_port: 80 });
    expect(routing).toBeDefined();
    await setTrafficPart(srv.db, "dep_geo", "geo", {
      header: "CF-IPCountry",
      regions: { eu: ["DE", "FR"], us: ["US"] },
      default: "eu",
    });
    const q = new URLSearchParams({ host: "geo.example.com", path: "/", scheme: "https", country: "US" });
    const r = await api.get<Resolution>(`/api/v1/routing/resolve?${q}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ matched: true, deployment_id: "dep_geo" });
    // No replica in any region: explainGeo (src/render/geo.ts) says which region it maps to, served by none.
    expect(r.body).toMatchObject({ outcome: 503, serves: true });
    expect(r.body.traffic).toMatchObject({ kind: "geo", via: "none", geo: { mapped: "us", served: null } });
    const bad = await api.get(
      `/api/v1/routing/resolve?${new URLSearchParams({ host: "geo.example.com", country: "USA" })}`,
    );
    expect(bad.status).toBe(400);

    // With a healthy replica in each region: the router resolve names is the one Traefik picks, with its rule.
    const geoName = routeName({ id: routing?.domains[0]?.id ?? "", deploymentId: "dep_geo" });
    await srv.seedLocation("dep_geo", "geo_us", { address: "10.0.2.1", region: "us" });
    await srv.seedLocation("dep_geo", "geo_eu", { address: "10.0.1.1", region: "eu" });
    await setHealth("geo_us", "healthy");
    await setHealth("geo_eu", "healthy");
    const geoService = deploymentServiceName("dep_geo");
    await waitFor(async () => (await served()).http.services[`${geoService}--region-us`] !== undefined, 15_000);
    const cases: [Request, string, string][] = [
      [{ host: "geo.example.com", path: "/", headers: { "CF-IPCountry": "US" } }, `${geoName}--geo-us`, "us"],
      [{ host: "geo.example.com", path: "/", headers: { "cf-ipcountry": "FR" } }, `${geoName}--geo-eu`, "eu"],
      [{ host: "geo.example.com", path: "/", headers: { "CF-IPCountry": "JP" } }, geoName, "eu"],
      [{ host: "geo.example.com", path: "/" }, geoName, "eu"],
    ];
    for (const [req, router, region] of cases) {
      const answer = await resolve(req);
      const [winner, picked] = traefikWinner(await served(), "websecure", req) ?? [];
      expect({ router: answer.router, winner }).toEqual({ router, winner: router });
      expect({ rule: answer.rule, priority: answer.priority }).toEqual({
        rule: picked?.rule,
        priority: picked?.priority,
      });
      expect(answer).toMatchObject({ outcome: 200, traffic: { kind: "geo", geo: { served: region } } });
      expect(answer.traffic?.service).toBe(picked?.service);
    }
  });

  it("names the service of a plain-HTTP route whose sticky split gives it a service of its own", async () => {
    // The cookie's Secure follows each route's TLS, so the deployment's TLS and plain routes get a weighted
    // service each (src/render/render.ts): resolve names the one the winning router points at.
    await srv.seedDeployment("dep_mix", { domain: "mix.example.com", target_port: 8080, ssl_enabled: true });
    const plain = await api.post("/api/v1/deployments/dep_mix/domains", {
      domain: "plain.mix.example.com",
      ssl_enabled: false,
    });
    expect(plain.status).toBe(201);
    await srv.seedLocation("dep_mix", "mix_st", { address: "10.2.3.1" });
    await srv.seedLocation("dep_mix", "mix_ca", { address: "10.2.3.2", track: "canary" });
    await setHealth("mix_st", "healthy");
    await setHealth("mix_ca", "healthy");
    const put = await api.put("/api/v1/deployments/dep_mix/split", {
      weights: { stable: 50, canary: 50 },
      sticky: true,
    });
    expect(put.status).toBe(200);
    const services = async () =>
      new Set(
        Object.entries((await served()).http.routers)
          .filter(([n]) => n.startsWith("dep-mix--"))
          .map(([, r]) => r.service),
      );
    await waitFor(async () => (await services()).size === 2, 15_000);
    for (const [req, scheme, entryPoint] of [
      [{ host: "mix.example.com", path: "/" }, "https", "websecure"],
      [{ host: "plain.mix.example.com", path: "/" }, "http", "web"],
    ] as const) {
      const answer = await resolve(req, scheme);
      const [winner, picked] = traefikWinner(await served(), entryPoint, req) ?? [];
      expect(answer).toMatchObject({ outcome: 200, router: winner, traffic: { kind: "split", via: "weighted" } });
      expect(answer.traffic?.service).toBe(picked?.service);
    }
    expect(await services()).toContain(deploymentServiceName("dep_mix"));
  });

  it("refuses a header parameter that is not a `Name: value` line", async () => {
    const q = new URLSearchParams({ host: "ab.example.com", header: "no colon here" });
    const r = await api.get(`/api/v1/routing/resolve?${q}`);
    expect(r.status).toBe(400);
  });
});
