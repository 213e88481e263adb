import { describe, expect, it } from "vitest";
import { canonical } from "../../src/render/canonical.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { matchRoute, PRIORITY_STEP, priorityFor } from "../../src/render/rules.js";
import { toJson } from "../../src/render/serialize.js";
import { explainSplit, MIRROR_MAX_BODY_BYTES, matcherFor, type RequestFacts } from "../../src/render/split.js";
import { StoredSplit } from "../../src/render/split-config.js";
import type { RenderInput, RenderSettings, ReplicaInput, RouteInput } from "../../src/render/types.js";
import { aReplica, aRoute, routed, settings, shuffled } from "../fixtures/rows.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const route = aRoute(); // dep_a, app.example.com, "/", plain http
const ROUTER = routeName(route);
/** The deployment's one service: the base of every service its split renders. */
const SVC = deploymentServiceName(route.deploymentId);
const stable = (n: number) => aReplica({ id: `s${n}`, address: `10.0.0.${n}`, track: "stable" });
const canary = (n: number) => aReplica({ id: `c${n}`, address: `10.0.1.${n}`, track: "canary" });
const SPLIT = { weights: { stable: 90, canary: 10 } };

function renderSplit(
  split: unknown,
  replicas: ReplicaInput[],
  opts: { routes?: RouteInput[]; settings?: RenderSettings } = {},
) {
  const input: RenderInput = {
    routes: opts.routes ?? [route],
    replicas,
    settings: opts.settings ?? settings,
    traffic: new Map([["dep_a", { split, geo: null, resilience: null }]]),
  };
  const result = routed(renderDynamicConfig(input));
  expect(traefikSchemaErrors(result.config)).toEqual([]);
  expect(toJson(result.config)).toBe(toJson(canonical(result.config))); // canonical by construction
  return result;
}

const facts = (headers: Record<string, string[]> = {}, query: Record<string, string[]> = {}): RequestFacts => ({
  headers: new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
  query: new Map(Object.entries(query)),
});

describe("traffic split rendering", () => {
  it("weighs one loadBalancer per track under the route's service name", () => {
    const { config } = renderSplit(SPLIT, [stable(1), stable(2), canary(1)]);
    expect(Object.keys(config.http.services)).toEqual([SVC, `${SVC}--track-canary`, `${SVC}--track-stable`]);
    expect(config.http.services[SVC]).toEqual({
      weighted: {
        services: [
          { name: `${SVC}--track-canary`, weight: 10 },
          { name: `${SVC}--track-stable`, weight: 90 },
        ],
      },
    });
    expect(config.http.services[`${SVC}--track-canary`]?.loadBalancer?.servers).toEqual([
      { url: "http://10.0.1.1:3000" },
    ]);
    expect(config.http.services[`${SVC}--track-stable`]?.loadBalancer?.servers).toEqual([
      { url: "http://10.0.0.1:3000" },
      { url: "http://10.0.0.2:3000" },
    ]);
    expect(config.http.routers[ROUTER]?.service).toBe(SVC);
  });

  it("gives an unhealthy track's share to the others instead of rendering an empty child", () => {
    const sick = { ...canary(1), healthStatus: "unhealthy" as const };
    const { config } = renderSplit(SPLIT, [stable(1), sick]);
    expect(config.http.services[SVC]).toEqual({
      weighted: { services: [{ name: `${SVC}--track-stable`, weight: 90 }] },
    });
    expect(config.http.services[`${SVC}--track-canary`]).toBeUndefined();
    // A zero weight (a rollout that aborted) drops out the same way.
    const zero = renderSplit({ weights: { stable: 90, canary: 0 } }, [stable(1), canary(1)]).config;
    expect(zero.http.services[SVC]?.weighted?.services).toEqual([{ name: `${SVC}--track-stable`, weight: 90 }]);
  });

  it("answers 503 through the weight-0 placeholder when no weighted track has a healthy replica", () => {
    const { config } = renderSplit(SPLIT, [aReplica({ track: "other" })]);
    expect(config.http.services[SVC]).toEqual({
      loadBalancer: { passHostHeader: true, servers: [{ url: settings.noReplicaUrl, weight: 0 }] },
    });
    expect(Object.keys(config.http.services)).toEqual([SVC]);
  });

  it("renders the sticky cookie, Secure by default on a TLS route", () => {
    const tls = aRoute({ sslEnabled: true });
    const d = renderSplit({ ...SPLIT, sticky: {} }, [stable(1), canary(1)], { routes: [tls] }).config;
    expect(d.http.services[SVC]?.weighted?.sticky).toEqual({
      cookie: { httpOnly: true, sameSite: "lax", secure: true },
    });
    const named = renderSplit(
      { ...SPLIT, sticky: { cookie_name: "canary_pin", secure: false, http_only: false, same_site: "strict" } },
      [stable(1), canary(1)],
    ).config;
    expect(named.http.services[SVC]?.weighted?.sticky).toEqual({
      cookie: { httpOnly: false, name: "canary_pin", sameSite: "strict", secure: false },
    });
    const plain = renderSplit({ ...SPLIT, sticky: {} }, [stable(1), canary(1)]).config;
    expect(plain.http.services[SVC]?.weighted?.sticky?.cookie.secure).toBe(false);
  });

  it("gives a deployment's TLS and plain routes a weighted service each when the sticky cookie's Secure follows the route", () => {
    const tls = aRoute({ sslEnabled: true });
    const plain = aRoute({ id: "rt_2", domain: "b.example.com" });
    const { config } = renderSplit({ ...SPLIT, sticky: {} }, [stable(1), canary(1)], { routes: [tls, plain] });
    const tlsService = config.http.routers[routeName(tls)]?.service ?? "";
    const plainService = config.http.routers[routeName(plain)]?.service ?? "";
    expect(tlsService).not.toBe(plainService);
    expect([tlsService, plainService]).toContain(SVC);
    expect(config.http.services[tlsService]?.weighted?.sticky?.cookie.secure).toBe(true);
    expect(config.http.services[plainService]?.weighted?.sticky?.cookie.secure).toBe(false);
    // Each weighted service has its own track pools, named from it.
    for (const service of [tlsService, plainService]) {
      expect(config.http.services[service]?.weighted?.services.map((c) => c.name)).toEqual([
        `${service}--track-canary`,
        `${service}--track-stable`,
      ]);
    }
    // With `secure` set, the cookie is the same on both: one service.
    const one = renderSplit({ ...SPLIT, sticky: { secure: true } }, [stable(1), canary(1)], { routes: [tls, plain] });
    expect(new Set(Object.values(one.config.http.routers).map((r) => r.service))).toEqual(new Set([SVC]));
  });

  it("with Traefik's own health checks, the weighted service propagates them and every child has one", () => {
    const withChecks: RenderSettings = {
      ...settings,
      traefikHealthCheck: { path: "/health", intervalSeconds: 10, timeoutSeconds: 3 },
    };
    const { config } = renderSplit(SPLIT, [stable(1), canary(1)], { settings: withChecks });
    expect(config.http.services[SVC]?.weighted?.healthCheck).toEqual({});
    for (const track of ["canary", "stable"]) {
      expect(config.http.services[`${SVC}--track-${track}`]?.loadBalancer?.healthCheck).toEqual({
        interval: "10s",
        path: "/health",
        timeout: "3s",
      });
    }
    // The semantics check enforces Traefik's rule: a health-propagating parent over a child without a check fails.
    const broken = structuredClone(config);
    delete broken.http.services[`${SVC}--track-canary`]?.loadBalancer?.healthCheck;
    expect(traefikSchemaErrors(broken).join("\n")).toMatch(/has no healthCheck/);
    // With a mirror and a sticky cookie in front, still accepted: the mirroring service declares no health check.
    const mirrored = renderSplit(
      { ...SPLIT, sticky: {}, mirror: { track: "canary", percent: 50 } },
      [stable(1), canary(1)],
      {
        settings: withChecks,
      },
    ).config;
    expect(mirrored.http.services[`${SVC}--main`]?.weighted?.healthCheck).toEqual({});
    expect(mirrored.http.services[SVC]?.mirroring?.service).toBe(`${SVC}--main`);
    // Without the setting, no healthCheck anywhere.
    expect(renderSplit(SPLIT, [stable(1), canary(1)]).config.http.services[SVC]?.weighted?.healthCheck).toBe(undefined);
  });

  it("mirrors a percentage to a track through a mirroring service with a bounded body size", () => {
    const { config } = renderSplit({ weights: { stable: 1 }, mirror: { track: "canary", percent: 10 } }, [
      stable(1),
      canary(1),
    ]);
    expect(Object.keys(config.http.services)).toEqual([
      SVC,
      `${SVC}--main`,
      `${SVC}--track-canary`,
      `${SVC}--track-stable`,
    ]);
    expect(config.http.services[SVC]).toEqual({
      mirroring: {
        maxBodySize: MIRROR_MAX_BODY_BYTES,
        mirrors: [{ name: `${SVC}--track-canary`, percent: 10 }],
        service: `${SVC}--main`,
      },
    });
    expect(config.http.services[`${SVC}--main`]).toEqual({
      weighted: { services: [{ name: `${SVC}--track-stable`, weight: 1 }] },
    });
    // The mirror track without a healthy replica: no mirroring at all (never a mirror to an empty service).
    const alone = renderSplit({ weights: { stable: 1 }, mirror: { track: "canary", percent: 10 } }, [stable(1)]);
    expect(alone.config.http.services[SVC]?.mirroring).toBeUndefined();
  });

  it("renders the same bytes whatever the replica order", () => {
    const replicas = [stable(1), stable(2), stable(3), canary(1), canary(2)];
    const split = { ...SPLIT, sticky: {}, rules: [{ match: { header: "X-Variant", value: "b" }, track: "canary" }] };
    const first = toJson(renderSplit(split, replicas).config);
    for (const seed of [1, 2, 3]) {
      expect(toJson(renderSplit(split, shuffled(replicas, seed)).config)).toBe(first);
    }
  });

  it("skips the routes of a deployment whose stored split does not validate (a backtick in a value)", () => {
    const bad = { ...SPLIT, rules: [{ match: { header: "X-Variant", value: "b`) || Host(`x" }, track: "canary" }] };
    const result = renderDynamicConfig({
      routes: [route],
      replicas: [stable(1)],
      settings,
      traffic: new Map([["dep_a", { split: bad }]]),
    });
    expect(result.config).toEqual({});
    expect(result.warnings).toEqual([{ kind: "route", id: "rt_1", reason: "traffic settings are invalid" }]);
  });
});

describe("A/B routers", () => {
  const RULES = [
    { match: { header: "X-Variant", value: "b" }, track: "canary" },
    { match: { cookie: "ab", value: "b" }, track: "canary" },
    { match: { query: "variant", value: "b.1" }, track: "canary" },
  ];

  it("ANDs each rule with the route's rule, above the base router, earlier rules first", () => {
    const tls = aRoute({ sslEnabled: true, pathPrefix: "/app" });
    const { config } = renderSplit({ ...SPLIT, rules: RULES }, [stable(1), canary(1)], { routes: [tls] });
    const base = config.http.routers[ROUTER];
    expect(Object.keys(config.http.routers)).toEqual([
      ROUTER,
      `${ROUTER}--ab-0`,
      `${ROUTER}--ab-1`,
      `${ROUTER}--ab-2`,
      `${ROUTER}--to-https`,
    ]);
    const baseRule = "Host(`app.example.com`) && PathPrefix(`/app`)";
    expect(config.http.routers[`${ROUTER}--ab-0`]).toEqual({
      entryPoints: ["websecure"],
      priority: (base?.priority ?? 0) + 5,
      rule: `${baseRule} && Header(\`X-Variant\`, \`b\`)`,
      service: `${SVC}--track-canary`,
      tls: { certResolver: "letsencrypt" },
    });
    expect(config.http.routers[`${ROUTER}--ab-1`]?.rule).toBe(
      `${baseRule} && HeaderRegexp(\`Cookie\`, \`(?:^|;\\s*)ab=b(?:;|$)\`)`,
    );
    expect(config.http.routers[`${ROUTER}--ab-2`]?.rule).toBe(`${baseRule} && Query(\`variant\`, \`b.1\`)`);
    const prios = [0, 1, 2].map((i) => config.http.routers[`${ROUTER}--ab-${i}`]?.priority ?? 0);
    expect(prios).toEqual([...prios].sort((a, b) => b - a));
    expect(Math.min(...prios)).toBeGreaterThan(base?.priority ?? Infinity);
    // Never as high as a route with a path prefix one byte longer.
    expect(Math.max(...prios)).toBeLessThan(priorityFor("app.example.com", "/app/"));
  });

  it("anchors the cookie regexp on the cookie name and value", () => {
    const re = /HeaderRegexp\(`Cookie`, `(.*)`\)/.exec(matcherFor({ cookie: "a.b", value: "x" }))?.[1] ?? "";
    const js = new RegExp(re);
    expect(["a.b=x", "z=1; a.b=x", "a.b=x; z=1", "z=1;a.b=x"].every((c) => js.test(c))).toBe(true);
    expect(["xa.b=x", "a.b=xy", "aXb=x", "z=a.b=x"].some((c) => js.test(c))).toBe(false);
  });

  it("leaves out the router of a rule whose track has no healthy replica", () => {
    const { config } = renderSplit({ ...SPLIT, rules: RULES }, [stable(1)]);
    expect(Object.keys(config.http.routers)).toEqual([ROUTER, `${ROUTER}--to-http`]);
  });

  it("explains which router a request takes, like the rendered routers", () => {
    const split = StoredSplit.parse({ ...SPLIT, rules: RULES });
    const up = [stable(1), canary(1)];
    expect(explainSplit(SVC, split, up, facts({ "x-variant": ["b"] }))).toMatchObject({
      via: "rule",
      suffix: "ab-0",
      service: `${SVC}--track-canary`,
      track: "canary",
    });
    expect(explainSplit(SVC, split, up, facts({ Cookie: ["q=1; ab=b"] }))).toMatchObject({ suffix: "ab-1" });
    expect(explainSplit(SVC, split, up, facts({}, { variant: ["b.1"] }))).toMatchObject({ suffix: "ab-2" });
    const weighted = explainSplit(SVC, split, up, facts({ Cookie: ["ab=bb"] }, { variant: ["b"] }));
    expect(weighted).toMatchObject({ via: "weighted", service: SVC });
    expect(weighted.shares).toEqual([
      { track: "canary", weight: 10, percent: 10 },
      { track: "stable", weight: 90, percent: 90 },
    ]);
    // The canary gone: its rule has no router, and the weighted split is all stable.
    const down = explainSplit(SVC, split, [stable(1)], facts({ "x-variant": ["b"] }));
    expect(down).toMatchObject({ via: "weighted", track: "stable", shares: [{ track: "stable", percent: 100 }] });
    expect(down.reason).toMatch(/no healthy replica/);
  });
});

describe("router priorities leave room for extra routers", () => {
  it("steps by 8 per path byte; exact hosts still beat wildcards; matchRoute picks as before", () => {
    expect(priorityFor("a.example.com", "/")).toBe(20_000 + PRIORITY_STEP);
    expect(priorityFor("*.example.com", "/")).toBe(10_000 + PRIORITY_STEP);
    expect(priorityFor("a.example.com", "/", 7)).toBeLessThan(priorityFor("a.example.com", "/x"));
    expect(priorityFor("*.example.com", `/${"x".repeat(1023)}`, 7)).toBeLessThan(priorityFor("a.example.com", "/"));
    const routes = [
      { domain: "a.example.com", pathPrefix: "/" },
      { domain: "a.example.com", pathPrefix: "/api" },
      { domain: "*.example.com", pathPrefix: "/api/v1" },
    ];
    expect(matchRoute(routes, "a.example.com", "/api/v1/x")).toBe(routes[1]);
    expect(matchRoute(routes, "b.example.com", "/api/v1/x")).toBe(routes[2]);
  });
});

describe("StoredSplit validation", () => {
  const bad: [string, unknown][] = [
    ["a backtick in a header value", { rules: [{ match: { header: "X-A", value: "a`b" }, track: "canary" }] }],
    ["a template in a cookie value", { rules: [{ match: { cookie: "ab", value: "{{x}}" }, track: "canary" }] }],
    ["a space in a query name", { rules: [{ match: { query: "a b", value: "1" }, track: "canary" }] }],
    ["a regexp in a cookie name", { rules: [{ match: { cookie: "a.*", value: "1" }, track: "canary" }] }],
    ["two matchers in one rule", { rules: [{ match: { header: "X-A", query: "a", value: "1" }, track: "canary" }] }],
    ["no matcher", { rules: [{ match: { value: "1" }, track: "canary" }] }],
    ["a bad header name", { rules: [{ match: { header: "X A", value: "1" }, track: "canary" }] }],
    ["a reserved header", { rules: [{ match: { header: "X-Obiente-Secret", value: "1" }, track: "canary" }] }],
    ["six rules", { rules: Array(6).fill({ match: { header: "X-A", value: "1" }, track: "canary" }) }],
    ["an upper-case track", { weights: { Stable: 1 } }],
    ["all weights zero", { weights: { stable: 0 } }],
    ["a fractional weight", { weights: { stable: 0.5 } }],
    ["a mirror of 0 %", { mirror: { track: "canary", percent: 0 } }],
    ["a cookie name with a quote", { sticky: { cookie_name: 'a"b' } }],
  ];
  it.each(bad)("refuses %s", (_what, over) => {
    expect(StoredSplit.safeParse({ weights: { stable: 1 }, ...(over as object) }).success).toBe(false);
  });
});
