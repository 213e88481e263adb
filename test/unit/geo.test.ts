import { describe, expect, it } from "vitest";
import { canonical } from "../../src/render/canonical.js";
import { explainGeo, geoStatus } from "../../src/render/geo.js";
import { COUNTRY_CODES, StoredGeo } from "../../src/render/geo-config.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { toJson } from "../../src/render/serialize.js";
import type { DynamicConfig, RenderInput, ReplicaInput, RouteInput, Router } from "../../src/render/types.js";
import { aReplica, aRoute, routed, settings, shuffled } from "../fixtures/rows.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const GEO = {
  header: "CF-IPCountry",
  regions: { eu: ["DE", "FR", "NL"], us: ["US", "CA"], ap: ["JP", "SG"] },
  failover: { eu: ["us"], us: ["eu"], ap: ["eu", "us"] },
  default: "eu",
};

const route = aRoute({ targetPort: 8080 });
const ROUTER = routeName(route);
/** The deployment's one service: the default region's pool, and the base of the region services' names. */
const SVC = deploymentServiceName(route.deploymentId);
const PLACEHOLDER = [{ url: settings.noReplicaUrl, weight: 0 }];

/** A healthy `stable` replica at 10.0.<n>.1 in `region`. */
const inRegion = (id: string, region: string | null, over: Partial<ReplicaInput> = {}) =>
  aReplica({ id, address: `10.0.${id.replace(/\D/g, "")}.1`, region, ...over });

const EU = [inRegion("r1", "eu"), inRegion("r2", "eu")];
const US = [inRegion("r3", "us")];
const AP = [inRegion("r4", "ap")];

function input(replicas: ReplicaInput[], geo: unknown = GEO, routes: RouteInput[] = [route]): RenderInput {
  return { routes, replicas, settings, traffic: new Map([["dep_a", { split: null, geo, resilience: null }]]) };
}

/** Renders, checking the document against Traefik's schema and semantics (v3.7.9, min 3.6). */
function render(replicas: ReplicaInput[], geo: unknown = GEO, routes: RouteInput[] = [route]) {
  const result = routed(renderDynamicConfig(input(replicas, geo, routes)));
  expect(traefikSchemaErrors(result.config)).toEqual([]);
  expect(toJson(result.config)).toBe(toJson(canonical(result.config)));
  return result;
}

const urlsOf = (cfg: DynamicConfig, service: string) => cfg.http.services[service]?.loadBalancer?.servers;
const url = (r: ReplicaInput) => ({ url: `http://${r.address}:8080` });

/**
 * The router Traefik picks for a request on `entryPoint` with the country header set to `country` (undefined: no
 * header): the highest priority among those whose rule matches. Only the rule shapes this feature renders are
 * understood: `Host(…)`, optionally `&& HeaderRegexp(`name`, `re`)`; header names compare case-insensitively
 * (Traefik canonicalizes them), values with the regexp as written (JS and RE2 agree on this anchored alternation).
 */
function pickRouter(cfg: DynamicConfig, entryPoint: string, country: string | undefined): [string, Router] {
  let best: [string, Router] | undefined;
  for (const [name, r] of Object.entries(cfg.http.routers)) {
    if (!r.entryPoints?.includes(entryPoint)) {
      continue;
    }
    const m = /^Host\(`[^`]+`\)(?: && HeaderRegexp\(`([^`]+)`, `([^`]+)`\))?$/.exec(r.rule);
    if (!m) {
      throw new Error(`unexpected rule ${r.rule}`);
    }
    const [, header, re] = m;
    if (header !== undefined) {
      expect(header.toLowerCase()).toBe(GEO.header.toLowerCase());
      if (country === undefined || !new RegExp(re ?? "").test(country)) {
        continue;
      }
    }
    if (!best || (r.priority ?? 0) > (best[1].priority ?? 0)) {
      best = [name, r];
    }
  }
  if (!best) {
    throw new Error("no router matches");
  }
  return best;
}

/** The servers a request from `country` reaches (plain-HTTP route on `web`). */
const servedTo = (cfg: DynamicConfig, country: string | undefined) =>
  urlsOf(cfg, pickRouter(cfg, "web", country)[1].service);

describe("geographic routing (render)", () => {
  it("renders one router per region above the route's own, each to that region's healthy replicas", () => {
    const { config, warnings } = render([...EU, ...US, ...AP]);
    expect(warnings).toEqual([]);
    const base = config.http.routers[ROUTER];
    expect(base).toMatchObject({ rule: "Host(`app.example.com`)", service: SVC });
    const priority = base?.priority ?? 0;
    const routers = Object.fromEntries(Object.entries(config.http.routers).filter(([n]) => n.includes("--geo-")));
    expect(routers).toEqual({
      [`${ROUTER}--geo-ap`]: {
        entryPoints: ["web"],
        priority: priority + 1,
        rule: "Host(`app.example.com`) && HeaderRegexp(`CF-IPCountry`, `^(?:JP|SG)$`)",
        service: `${SVC}--region-ap`,
      },
      [`${ROUTER}--geo-eu`]: {
        entryPoints: ["web"],
        priority: priority + 1,
        rule: "Host(`app.example.com`) && HeaderRegexp(`CF-IPCountry`, `^(?:DE|FR|NL)$`)",
        service: `${SVC}--region-eu`,
      },
      [`${ROUTER}--geo-us`]: {
        entryPoints: ["web"],
        priority: priority + 1,
        rule: "Host(`app.example.com`) && HeaderRegexp(`CF-IPCountry`, `^(?:CA|US)$`)",
        service: `${SVC}--region-us`,
      },
    });
    // The base service first, then the regions in name order: canonical by construction.
    expect(Object.keys(config.http.services)).toEqual([
      SVC,
      `${SVC}--region-ap`,
      `${SVC}--region-eu`,
      `${SVC}--region-us`,
    ]);
    expect(urlsOf(config, `${SVC}--region-eu`)).toEqual(EU.map(url));
    expect(urlsOf(config, `${SVC}--region-us`)).toEqual(US.map(url));
    expect(urlsOf(config, `${SVC}--region-ap`)).toEqual(AP.map(url));
    expect(urlsOf(config, SVC)).toEqual(EU.map(url)); // the default region
  });

  it("sends requests without the header, or from a country no region lists, to the default region", () => {
    const { config } = render([...EU, ...US, ...AP]);
    expect(pickRouter(config, "web", undefined)[0]).toBe(ROUTER);
    expect(servedTo(config, undefined)).toEqual(EU.map(url));
    expect(servedTo(config, "BR")).toEqual(EU.map(url)); // assigned, but in no region
    expect(servedTo(config, "XX")).toEqual(EU.map(url)); // Cloudflare's "unknown"
    expect(servedTo(config, "us")).toEqual(EU.map(url)); // values are matched as CDNs send them: upper-case
    expect(servedTo(config, "US,CA")).toEqual(EU.map(url));
    expect(servedTo(config, "US")).toEqual(US.map(url));
    expect(servedTo(config, "SG")).toEqual(AP.map(url));
    for (const country of [undefined, "BR", "XX", "us"]) {
      expect(explainGeo(StoredGeo.parse(GEO), country, [...EU, ...US, ...AP])).toMatchObject({
        mapped: "eu",
        routerRegion: undefined,
        served: "eu",
      });
    }
    expect(explainGeo(StoredGeo.parse(GEO), undefined, EU).reason).toBe(
      "no CF-IPCountry header: the default region eu",
    );
    expect(explainGeo(StoredGeo.parse(GEO), "BR", EU).reason).toBe(
      'CF-IPCountry "BR" is in no region: the default region eu',
    );
  });

  it("fails over in the configured order while a region has no healthy replica", () => {
    const euDown = EU.map((r) => ({ ...r, healthStatus: "unhealthy" as const }));
    const { config } = render([...euDown, ...US, ...AP]);
    expect(urlsOf(config, `${SVC}--region-eu`)).toEqual(US.map(url)); // eu → us
    expect(urlsOf(config, SVC)).toEqual(US.map(url)); // the default follows eu's failover order too
    expect(urlsOf(config, `${SVC}--region-ap`)).toEqual(AP.map(url)); // unaffected
    expect(servedTo(config, "DE")).toEqual(US.map(url));
    const geo = StoredGeo.parse(GEO);
    expect(explainGeo(geo, "DE", [...US, ...AP])).toEqual({
      mapped: "eu",
      routerRegion: "eu",
      served: "us",
      reason: 'CF-IPCountry "DE" maps to region eu; no healthy replica in eu: failed over to us',
    });
    // Back to healthy: back to its own replicas.
    expect(urlsOf(render([...EU, ...US]).config, `${SVC}--region-eu`)).toEqual(EU.map(url));
  });

  it("follows a failover chain past every region without healthy replicas, in order", () => {
    const geo = StoredGeo.parse(GEO);
    // ap → eu → us: ap and eu down, us serves ap's countries.
    const { config } = render([...US]);
    expect(urlsOf(config, `${SVC}--region-ap`)).toEqual(US.map(url));
    expect(servedTo(config, "JP")).toEqual(US.map(url));
    expect(explainGeo(geo, "JP", US)).toEqual({
      mapped: "ap",
      routerRegion: "ap",
      served: "us",
      reason: 'CF-IPCountry "JP" maps to region ap; no healthy replica in ap, eu: failed over to us',
    });
    // Only eu up: ap's first choice after itself.
    expect(urlsOf(render([...EU]).config, `${SVC}--region-ap`)).toEqual(EU.map(url));
    // A region without a failover list does not borrow replicas.
    const strict = { ...GEO, failover: { ap: ["eu"] } };
    const s = render([...EU], strict).config;
    expect(urlsOf(s, `${SVC}--region-us`)).toEqual(PLACEHOLDER);
    expect(geoStatus(StoredGeo.parse(strict), EU)).toEqual({
      ap: { healthy_replicas: 0, served_by: "eu" },
      eu: { healthy_replicas: 2, served_by: "eu" },
      us: { healthy_replicas: 0, served_by: null },
    });
  });

  it("answers 503 (the weight-0 placeholder, no health check) when no region in the order has a healthy replica", () => {
    const down = [...EU, ...US, ...AP].map((r) => ({ ...r, healthStatus: "unhealthy" as const }));
    const { config } = render(down);
    for (const service of [SVC, `${SVC}--region-ap`, `${SVC}--region-eu`, `${SVC}--region-us`]) {
      expect(config.http.services[service]).toEqual({ loadBalancer: { passHostHeader: true, servers: PLACEHOLDER } });
    }
    expect(explainGeo(StoredGeo.parse(GEO), "JP", [])).toEqual({
      mapped: "ap",
      routerRegion: "ap",
      served: undefined,
      reason: 'CF-IPCountry "JP" maps to region ap; no healthy replica in ap, eu, us: 503',
    });
  });

  it("routes only stable replicas with a region; replicas without one are in none", () => {
    const replicas = [
      inRegion("r1", "eu"),
      inRegion("r5", "eu", { track: "canary" }),
      inRegion("r6", null),
      inRegion("r7", "mars"), // a region the settings do not declare
      inRegion("r3", "us"),
    ];
    const { config } = render(replicas);
    expect(urlsOf(config, `${SVC}--region-eu`)).toEqual([url(inRegion("r1", "eu"))]);
    expect(urlsOf(config, SVC)).toEqual([url(inRegion("r1", "eu"))]);
    const all = JSON.stringify(config);
    for (const id of ["r5", "r6", "r7"]) {
      expect(all).not.toContain(inRegion(id, null).address);
    }
  });

  it("gives a region with no countries no router: it serves only as the default or a failover target", () => {
    const geo = { header: "X-Country", regions: { eu: ["DE"], home: [] }, failover: { eu: ["home"] }, default: "home" };
    const home = [inRegion("r8", "home")];
    const { config } = render(home, geo);
    expect(Object.keys(config.http.routers).filter((n) => n.includes("--geo-"))).toEqual([`${ROUTER}--geo-eu`]);
    expect(Object.keys(config.http.services)).toEqual([SVC, `${SVC}--region-eu`]);
    expect(urlsOf(config, SVC)).toEqual(home.map(url));
    expect(urlsOf(config, `${SVC}--region-eu`)).toEqual(home.map(url));
  });

  it("puts the region routers of a TLS route on websecure with the route's TLS; the web twin still redirects", () => {
    const tlsRoute = aRoute({ targetPort: 8080, sslEnabled: true });
    const { config } = render([...EU, ...US], GEO, [tlsRoute]);
    const eu = config.http.routers[`${ROUTER}--geo-eu`];
    expect(eu).toMatchObject({ entryPoints: ["websecure"], tls: config.http.routers[ROUTER]?.tls });
    expect(urlsOf(config, pickRouter(config, "websecure", "FR")[1].service)).toEqual(EU.map(url));
    expect(urlsOf(config, pickRouter(config, "websecure", "CA")[1].service)).toEqual(US.map(url));
    // On web, every request (whatever its country) meets only the redirect twin.
    const [, web] = pickRouter(config, "web", "CA");
    expect(web.middlewares).toEqual(config.http.routers[`${ROUTER}--to-https`]?.middlewares);
  });

  it("explains what the rendered routers do, for every country and every combination of regions up", () => {
    const geo = StoredGeo.parse(GEO);
    const pools = { eu: EU, us: US, ap: AP };
    const countries = [undefined, "", "XX", "us", ...COUNTRY_CODES];
    for (let mask = 0; mask < 8; mask++) {
      const up = Object.values(pools)
        .filter((_, i) => mask & (1 << i))
        .flat();
      const { config } = render(up);
      const servers = (region: string | undefined) =>
        region === undefined ? PLACEHOLDER : pools[region as keyof typeof pools].map(url);
      for (const country of countries) {
        const x = explainGeo(geo, country, up);
        const [router, r] = pickRouter(config, "web", country);
        expect(router).toBe(x.routerRegion === undefined ? ROUTER : `${ROUTER}--geo-${x.routerRegion}`);
        expect(r.service).toBe(x.routerRegion === undefined ? SVC : `${SVC}--region-${x.routerRegion}`);
        expect(urlsOf(config, r.service)).toEqual(servers(x.served));
      }
    }
  });

  it("renders the same bytes for any row order, region order and country order", () => {
    const replicas = [...EU, ...US, ...AP, inRegion("r9", "us")];
    const first = toJson(render(replicas).config);
    const reordered = {
      default: "eu",
      failover: { us: ["eu"], ap: ["eu", "us"], eu: ["us"] },
      regions: { us: ["CA", "US"], ap: ["SG", "JP"], eu: ["NL", "DE", "FR"] },
      header: "CF-IPCountry",
    };
    for (let seed = 1; seed <= 5; seed++) {
      expect(toJson(render(shuffled(replicas, seed), reordered).config)).toBe(first);
    }
  });

  it("skips the route (fail closed) when stored settings do not validate, whatever reached the row", () => {
    const bad = [
      { ...GEO, header: "CF-IPCountry`) || Host(`evil.example" },
      { ...GEO, regions: { eu: ["DE`) || Host(`x"] } },
      { ...GEO, regions: { eu: ["de"] } },
      { ...GEO, default: "mars" },
      { ...GEO, failover: { eu: ["eu"] } },
      { ...GEO, regions: { eu: ["DE"], us: ["DE"] } },
      { ...GEO, extra: true },
    ];
    for (const geo of bad) {
      const result = renderDynamicConfig(input([...EU], geo, [route, aRoute({ id: "rt_2", deploymentId: "dep_b" })]));
      expect(result.warnings).toEqual([{ kind: "route", id: "rt_1", reason: "traffic settings are invalid" }]);
      expect(JSON.stringify(result.config)).not.toContain("evil");
      expect(traefikSchemaErrors(result.config)).toEqual([]);
    }
  });
});

describe("geographic routing settings (validation)", () => {
  const issues = (geo: unknown) =>
    (StoredGeo.safeParse(geo).error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`);

  it("accepts the documented example", () => {
    expect(issues(GEO)).toEqual([]);
    expect(issues({ header: "X-Country", regions: { eu: [] }, default: "eu" })).toEqual([]);
  });

  it("refuses header names that could break out of the rule or are reserved", () => {
    for (const header of ["CF IPCountry", "X`y", "X-{{.Foo}}", "", "Host", "x-obiente-deployment", "A".repeat(65)]) {
      expect(issues({ ...GEO, header })).toEqual([expect.stringMatching(/^header: /)]);
    }
  });

  it("accepts only upper-case, assigned ISO 3166-1 alpha-2 codes", () => {
    for (const code of ["de", "DEU", "D", "XK", "XX", "T1", "EU", "UK", "ZZ", "D`", "Ä1"]) {
      expect(issues({ ...GEO, regions: { ...GEO.regions, eu: ["DE", code] } })).toEqual([
        expect.stringMatching(/^regions\.eu\.1: /),
      ]);
    }
  });

  it("keeps its country table to codes every ICU knows as a region", () => {
    expect(COUNTRY_CODES.size).toBe(249);
    const names = new Intl.DisplayNames(["en"], { type: "region", fallback: "none" });
    expect([...COUNTRY_CODES].filter((c) => !names.of(c))).toEqual([]);
  });

  it("refuses a country in two regions, failover to unknown, self or repeated regions, and an unknown default", () => {
    expect(issues({ ...GEO, regions: { eu: ["DE", "FR"], us: ["US", "FR"] }, failover: {} })).toEqual([
      "regions.us.1: FR is already in region eu",
    ]);
    expect(issues({ ...GEO, regions: { eu: ["DE", "DE"] }, failover: {} })).toEqual([
      "regions.eu.1: DE is listed twice",
    ]);
    expect(issues({ ...GEO, failover: { eu: ["us", "eu", "mars", "us"] } })).toEqual([
      "failover.eu.1: a region cannot fail over to itself",
      "failover.eu.2: mars is not a declared region",
      "failover.eu.3: us is listed twice",
    ]);
    expect(issues({ ...GEO, failover: { mars: ["eu"] } })).toEqual(["failover.mars: mars is not a declared region"]);
    expect(issues({ ...GEO, default: "mars" })).toEqual(["default: mars is not a declared region"]);
    expect(issues({ ...GEO, regions: {}, failover: {}, default: "eu" })).toEqual([
      "regions: declare at least one region",
      "default: eu is not a declared region",
    ]);
    expect(issues({ ...GEO, regions: { EU: ["DE"] } })).toEqual([
      "regions.EU: lower-case letters, digits and '-' (≤ 32)",
    ]);
  });

  it("caps regions at 50 and countries at 250", () => {
    const regions = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`r${i}`, []]));
    expect(issues({ header: "X-Country", regions, default: "r0" })).toEqual(["regions: at most 50 regions"]);
    expect(issues({ header: "X-Country", regions: { eu: [...COUNTRY_CODES] }, default: "eu" })).toEqual([]);
  });
});
