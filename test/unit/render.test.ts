import { describe, expect, it } from "vitest";
import { canonical } from "../../src/render/canonical.js";
import {
  deploymentServiceName,
  deploymentSlug,
  REDIRECT_TO_HTTP,
  redirectRouterName,
  routeName,
  toHttpRouterName,
} from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { routerContext, routersFor } from "../../src/render/routers.js";
import { routingPath } from "../../src/render/rules.js";
import { toJson, toPrettyJson, toYaml } from "../../src/render/serialize.js";
import type { DynamicConfig, RenderInput, ReplicaInput, RouteInput, Router } from "../../src/render/types.js";
import { checkPathPrefix, traefikPathPrefix } from "../../src/render/validate.js";
import { anInput, aReplica, aRoute, routed, shuffled } from "../fixtures/rows.js";
import { STATIC_CONFIG, type TraefikCheckOptions, traefikSchemaErrors } from "../helpers/traefik-schema.js";

/**
 * Paths of empty objects and lists: Traefik's decoder rejects the whole document for one, except on fields its
 * Go structs tag `allowEmpty` (router `tls`, middleware `compress`, …; paerser parser/nodes_metadata.go).
 */
function emptyElements(value: unknown, path = ""): string[] {
  if (Array.isArray(value)) {
    return value.length === 0 ? [path] : value.flatMap((v, i) => emptyElements(v, `${path}[${i}]`));
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) {
      return /^\.http\.routers\.[^.]+\.tls$|\.compress$/.test(path) ? [] : [path];
    }
    return entries.flatMap(([k, v]) => emptyElements(v, `${path}.${k}`));
  }
  return [];
}

/** Renders a config that routes something, checked against the schema and Traefik's semantics. */
function renderInput(input: RenderInput, opts?: TraefikCheckOptions) {
  const result = routed(renderDynamicConfig(input));
  expect(traefikSchemaErrors(result.config, opts)).toEqual([]);
  expect(emptyElements(result.config)).toEqual([]);
  return result;
}

function render(routes: RouteInput[], replicas: ReplicaInput[] = []) {
  return renderInput(anInput(routes, replicas));
}

function routerFor(config: DynamicConfig, route: RouteInput) {
  const r = config.http.routers[routeName(route)];
  if (!r) {
    throw new Error(`no router for ${route.id}`);
  }
  return r;
}

/** The service a route's router points at (its deployment's). */
function serviceFor(config: DynamicConfig, route: RouteInput) {
  return config.http.services[routerFor(config, route).service];
}

/** Extracts the regexp inside HostRegexp(`…`) and compiles it (Go RE2 and JS agree on this subset). */
function hostRegexpOf(rule: string): RegExp {
  const m = /^HostRegexp\(`([^`]+)`\)$/.exec(rule);
  if (!m?.[1]) {
    throw new Error(`not a HostRegexp rule: ${rule}`);
  }
  return new RegExp(m[1]);
}

describe("renderDynamicConfig", () => {
  it("routes a plain-HTTP domain to its healthy replicas", () => {
    const route = aRoute({ targetPort: 8080 });
    const { config, warnings } = render(
      [route],
      [aReplica({ id: "l1", address: "10.0.0.2" }), aReplica({ id: "l2", address: "10.0.0.1", port: 9000 })],
    );
    const name = routeName(route);
    const service = deploymentServiceName(route.deploymentId);
    expect(warnings).toEqual([]);
    const rule = "Host(`app.example.com`)";
    expect(config.http.routers).toEqual({
      [name]: { entryPoints: ["web"], priority: expect.any(Number), rule, service },
      // HTTPS for it is answered by the route itself, with a redirect to http:// (not by another TLS router).
      [toHttpRouterName(name)]: {
        entryPoints: ["websecure"],
        middlewares: [REDIRECT_TO_HTTP],
        priority: routerFor(config, route).priority,
        rule,
        service,
        tls: {},
      },
    });
    expect(Object.keys(config.http.services)).toEqual([service]);
    expect(config.http.services[service]?.loadBalancer?.servers).toEqual([
      { url: "http://10.0.0.1:9000" },
      { url: "http://10.0.0.2:8080" },
    ]);
    expect(config.http.middlewares).toEqual({
      [REDIRECT_TO_HTTP]: { redirectScheme: { permanent: false, scheme: "http" } },
    });
  });

  it("adds PathPrefix only for prefixes other than /", () => {
    const { config } = render([aRoute({ id: "a" }), aRoute({ id: "b", pathPrefix: "/api/v1" })]);
    expect(routerFor(config, aRoute({ id: "a" })).rule).toBe("Host(`app.example.com`)");
    expect(routerFor(config, aRoute({ id: "b" })).rule).toBe("Host(`app.example.com`) && PathPrefix(`/api/v1`)");
  });

  it("renders a wildcard as an anchored one-label HostRegexp", () => {
    const route = aRoute({ domain: "*.app.example.com" });
    const rule = routerFor(render([route]).config, route).rule;
    expect(rule).toBe("HostRegexp(`^[a-z0-9-]+\\.app\\.example\\.com$`)");
    const re = hostRegexpOf(rule);
    expect(re.test("a.app.example.com")).toBe(true);
    expect(re.test("my-pr-42.app.example.com")).toBe(true);
    expect(re.test("app.example.com")).toBe(false);
    expect(re.test("a.b.app.example.com")).toBe(false);
    expect(re.test("a.app.example.com.evil.io")).toBe(false);
    expect(re.test("a.appxexample.com")).toBe(false);
  });

  it("gives an exact host priority over a wildcard, and a longer prefix over a shorter one", () => {
    const exactRoot = aRoute({ id: "exact_root", domain: "a.app.example.com" });
    const wildLong = aRoute({ id: "wild_long", domain: "*.app.example.com", pathPrefix: `/${"x".repeat(900)}` });
    const short = aRoute({ id: "short", domain: "shop.example.com", pathPrefix: "/a" });
    const long = aRoute({ id: "long", domain: "shop.example.com", pathPrefix: "/a/b" });
    const root = aRoute({ id: "root", domain: "shop.example.com" });
    const { config } = render([exactRoot, wildLong, short, long, root]);
    const p = (r: RouteInput) => routerFor(config, r).priority;
    // The wildcard's rule is far longer, so Traefik's default (rule length) would pick it: ours must not.
    expect(routerFor(config, wildLong).rule.length).toBeGreaterThan(routerFor(config, exactRoot).rule.length);
    expect(p(exactRoot)).toBeGreaterThan(p(wildLong));
    expect(p(long)).toBeGreaterThan(p(short));
    expect(p(short)).toBeGreaterThan(p(root));
  });

  it("serves ssl routes on websecure with the resolver and redirects plain HTTP", () => {
    const route = aRoute({ sslEnabled: true, sslCertResolver: "letsencrypt-dns" });
    const { config } = render([route]);
    const name = routeName(route);
    const secure = routerFor(config, route);
    expect(secure.entryPoints).toEqual(["websecure"]);
    expect(secure.tls).toEqual({ certResolver: "letsencrypt-dns" });
    const redirect = config.http.routers[redirectRouterName(name)];
    expect(redirect?.entryPoints).toEqual(["web"]);
    expect(redirect?.rule).toBe(secure.rule);
    expect(redirect?.priority).toBe(secure.priority);
    const [mw] = redirect?.middlewares ?? [];
    expect(mw && config.http.middlewares?.[mw]).toEqual({ redirectScheme: { scheme: "https", permanent: true } });
  });

  it("uses configured entry point names", () => {
    const route = aRoute({ sslEnabled: true });
    const input = anInput([route]);
    input.settings = { ...input.settings, entryPoints: { web: "http", websecure: "https" } };
    const renamed = {
      ...(STATIC_CONFIG as object),
      entryPoints: { http: { address: ":80" }, https: { address: ":443" } },
    };
    const { config } = renderInput(input, { staticConfig: renamed });
    expect(routerFor(config, route).entryPoints).toEqual(["https"]);
    expect(config.http.routers[redirectRouterName(routeName(route))]?.entryPoints).toEqual(["http"]);
  });

  it("lists only healthy, running replicas", () => {
    const route = aRoute();
    const { config } = render(
      [route],
      [
        aReplica({ id: "ok", address: "10.0.0.1" }),
        aReplica({ id: "sick", address: "10.0.0.2", healthStatus: "unhealthy" }),
        aReplica({ id: "new", address: "10.0.0.3", healthStatus: "unknown" }),
        aReplica({ id: "stopped", address: "10.0.0.4", status: "stopped" }),
        aReplica({ id: "other-dep", deploymentId: "dep_b", address: "10.0.0.5" }),
      ],
    );
    expect(serviceFor(config, route)?.loadBalancer?.servers).toEqual([{ url: "http://10.0.0.1:3000" }]);
  });

  it("keeps the router and answers 503 (weight-0 server) when no replica is healthy", () => {
    const route = aRoute({ sslEnabled: true });
    const { config } = render([route], [aReplica({ healthStatus: "unhealthy" })]);
    expect(routerFor(config, route).service).toBe(deploymentServiceName(route.deploymentId));
    const servers = serviceFor(config, route)?.loadBalancer?.servers ?? [];
    expect(servers).toHaveLength(1);
    expect(servers.every((s) => s.weight === 0)).toBe(true);
  });

  it("brackets IPv6 addresses, keeps DNS names, and uses h2c:// for gRPC", () => {
    const route = aRoute({ protocol: "h2c", targetPort: 50051 });
    const { config } = render(
      [route],
      [aReplica({ id: "v6", address: "fd00::1" }), aReplica({ id: "dns", address: "web-1.internal" })],
    );
    expect(serviceFor(config, route)?.loadBalancer?.servers).toEqual([
      { url: "h2c://[fd00::1]:50051" },
      { url: "h2c://web-1.internal:50051" },
    ]);
  });

  it("maps ip-hash to Traefik's hrw strategy and round-robin to the default", () => {
    const rr = aRoute({ id: "rr" });
    const ip = aRoute({ id: "ip", deploymentId: "dep_b", domain: "b.example.com", loadBalancerAlgo: "ip-hash" });
    const { config } = render([rr, ip], [aReplica(), aReplica({ id: "loc_b", deploymentId: "dep_b" })]);
    expect(serviceFor(config, ip)?.loadBalancer?.strategy).toBe("hrw");
    expect(serviceFor(config, rr)?.loadBalancer?.strategy).toBeUndefined();
  });

  it("points every route of a deployment at its one service: one health check and one hash ring", () => {
    const routes = [
      aRoute({ id: "rt_1", sslEnabled: true, loadBalancerAlgo: "ip-hash" }),
      aRoute({ id: "rt_2", domain: "b.example.com", pathPrefix: "/api", loadBalancerAlgo: "ip-hash" }),
      aRoute({ id: "rt_3", domain: "*.c.example.com", loadBalancerAlgo: "ip-hash" }),
      aRoute({ id: "rt_4", deploymentId: "dep_b", domain: "d.example.com" }),
    ];
    const input = anInput(routes, [aReplica(), aReplica({ id: "loc_b", deploymentId: "dep_b" })]);
    input.settings = {
      ...input.settings,
      traefikHealthCheck: { path: "/health", intervalSeconds: 30, timeoutSeconds: 5 },
    };
    const { config } = renderInput(input);
    const a = deploymentServiceName("dep_a");
    const b = deploymentServiceName("dep_b");
    expect(Object.keys(config.http.services)).toEqual([a, b]);
    for (const [name, router] of Object.entries(config.http.routers)) {
      expect(router.service).toBe(name.startsWith(`${deploymentSlug("dep_b")}--`) ? b : a);
    }
    expect(config.http.services[a]?.loadBalancer?.strategy).toBe("hrw");
    expect(config.http.services[a]?.loadBalancer?.healthCheck).toBeDefined();
  });

  it("gives hand-edited rows of one deployment that disagree on the port a further service each", () => {
    const a = aRoute({ id: "rt_1" });
    const b = aRoute({ id: "rt_2", domain: "b.example.com", targetPort: 4000 });
    const { config } = render([a, b], [aReplica()]);
    const names = [routerFor(config, a).service, routerFor(config, b).service];
    expect(new Set(names).size).toBe(2);
    expect(names).toContain(deploymentServiceName("dep_a"));
    expect(Object.keys(config.http.services).sort()).toEqual([...names].sort());
    for (const n of names) {
      expect(n === deploymentSlug("dep_a") || n.startsWith(`${deploymentSlug("dep_a")}--`)).toBe(true);
    }
    expect(serviceFor(config, a)?.loadBalancer?.servers).toEqual([{ url: "http://10.0.0.1:3000" }]);
    expect(serviceFor(config, b)?.loadBalancer?.servers).toEqual([{ url: "http://10.0.0.1:4000" }]);
  });

  it("adds Traefik's own healthCheck only when switched on, with per-deployment overrides", () => {
    const plain = aRoute({ id: "plain" });
    // Health settings are the deployment's (deployments.health_*): the override is another deployment's.
    const tuned = aRoute({
      id: "tuned",
      deploymentId: "dep_b",
      domain: "b.example.com",
      healthPath: "/ready",
      healthIntervalSeconds: 10,
    });
    const replicas = [aReplica(), aReplica({ id: "loc_b", deploymentId: "dep_b" })];
    expect(serviceFor(render([plain], replicas).config, plain)?.loadBalancer?.healthCheck).toBeUndefined();
    const input = anInput([plain, tuned], replicas);
    input.settings = {
      ...input.settings,
      traefikHealthCheck: { path: "/health", intervalSeconds: 30, timeoutSeconds: 5 },
    };
    const { config } = renderInput(input);
    expect(traefikSchemaErrors(config)).toEqual([]);
    expect(serviceFor(config, plain)?.loadBalancer?.healthCheck).toEqual({
      interval: "30s",
      path: "/health",
      timeout: "5s",
    });
    expect(serviceFor(config, tuned)?.loadBalancer?.healthCheck).toEqual({
      interval: "10s",
      path: "/ready",
      timeout: "5s",
    });
    expect(toJson(canonical(config))).toBe(toJson(config));
    const empty = renderInput({ ...input, replicas: [] }).config;
    expect(serviceFor(empty, plain)?.loadBalancer?.healthCheck).toBeUndefined();
  });

  it("routes least-conn through the fallback proxy with the deployment and secret headers, else round-robin", () => {
    const lc = aRoute({ id: "lc", loadBalancerAlgo: "least-conn", sslEnabled: true });
    const replicas = [aReplica(), aReplica({ id: "l2", address: "10.0.0.2" })];
    const plain = renderInput(anInput([lc], replicas));
    expect(plain.hasSecrets).toBe(false);
    expect(serviceFor(plain.config, lc)?.loadBalancer?.servers).toHaveLength(2);
    const input = anInput([lc], replicas);
    input.settings = {
      ...input.settings,
      fallbackProxy: { url: "http://10.9.9.9:8081", secret: "s3cret-s3cret-s3cret" },
    };
    const { config, hasSecrets } = renderInput(input);
    expect(traefikSchemaErrors(config)).toEqual([]);
    expect(hasSecrets).toBe(true);
    expect(serviceFor(config, lc)?.loadBalancer?.servers).toEqual([{ url: "http://10.9.9.9:8081" }]);
    const router = routerFor(config, lc);
    expect(router.middlewares).toEqual(["dep-a--least-cpu"]);
    expect(config.http.middlewares?.["dep-a--least-cpu"]).toEqual({
      headers: {
        customRequestHeaders: { "X-Obiente-Deployment": "dep_a", "X-Obiente-Proxy-Secret": "s3cret-s3cret-s3cret" },
      },
    });
    // The proxy answers 503 itself: no weight-0 placeholder even with no healthy replica.
    const none = renderInput({ ...input, replicas: [] }).config;
    expect(serviceFor(none, lc)?.loadBalancer?.servers).toEqual([{ url: "http://10.9.9.9:8081" }]);
    expect(toJson(canonical(config))).toBe(toJson(config));
  });

  it("names everything with [a-z0-9-] slugs, never the raw domain", () => {
    const route = aRoute({ id: "rt_weird_1", deploymentId: "dep_abc_1", domain: "*.x.example.com" });
    const { config } = render([route]);
    const names = [
      ...Object.keys(config.http.routers),
      ...Object.keys(config.http.services),
      ...Object.values(config.http.routers).map((r) => r.service),
    ];
    for (const n of names) {
      expect(n).toMatch(/^[a-z0-9]+(-{1,2}[a-z0-9]+)*$/);
      expect(n).not.toContain("example");
    }
  });

  it("skips and reports a bad row without taking the others down", () => {
    const good = aRoute({ id: "good" });
    const evil = aRoute({ id: "evil", domain: "a.com`) || Host(`victim.com" });
    const badPath = aRoute({ id: "badpath", domain: "c.example.com", pathPrefix: "/x`)" });
    const badResolver = aRoute({ id: "badres", domain: "d.example.com", sslEnabled: true, sslCertResolver: "x{{y}}" });
    const badId = aRoute({ id: "rt-Bad.Id", domain: "e.example.com" });
    const badReplica = aReplica({ id: "bad-rep", address: "10.0.0.9/evil" });
    const { config, warnings } = render([evil, good, badPath, badResolver, badId], [badReplica, aReplica()]);
    expect(Object.keys(config.http.routers)).toEqual([routeName(good), toHttpRouterName(routeName(good))]);
    expect(warnings.map((w) => `${w.kind}:${w.id}`).sort()).toEqual([
      "replica:bad-rep",
      "route:badpath",
      "route:badres",
      "route:evil",
      "route:rt-Bad.Id",
    ]);
    expect(toJson(config)).not.toContain("victim");
  });

  it("gives byte-identical output for shuffled rows and repeated renders", () => {
    const routes: RouteInput[] = [];
    const replicas: ReplicaInput[] = [];
    for (let i = 0; i < 60; i++) {
      routes.push(
        aRoute({
          id: `rt_${i}`,
          deploymentId: `dep_${i % 20}`,
          domain: i % 7 === 0 ? `*.d${i}.example.com` : `d${i}.example.com`,
          pathPrefix: i % 5 === 0 ? `/p${i}` : "/",
          sslEnabled: i % 2 === 0,
          sslCertResolver: i % 7 === 0 ? "letsencrypt-dns" : "letsencrypt", // wildcards need DNS-01
          loadBalancerAlgo: i % 3 === 0 ? "ip-hash" : "round-robin",
        }),
      );
    }
    for (let i = 0; i < 50; i++) {
      replicas.push(aReplica({ id: `loc_${i}`, deploymentId: `dep_${i % 20}`, address: `10.0.${i}.1` }));
    }
    const first = render(routes, replicas).config;
    const bytes = toJson(first);
    expect(toJson(canonical(first))).toBe(bytes); // keys already sorted, by construction
    for (const seed of [1, 2, 3]) {
      const again = renderInput(anInput(shuffled(routes, seed), shuffled(replicas, seed + 10))).config;
      expect(toJson(again)).toBe(bytes);
      expect(toYaml(again)).toBe(toYaml(first));
    }
  });

  it("matches the golden file", async () => {
    const routes = [
      aRoute({ id: "rt_web", deploymentId: "dep_shop", domain: "shop.example.com", sslEnabled: true }),
      aRoute({
        id: "rt_api",
        deploymentId: "dep_shop",
        domain: "shop.example.com",
        pathPrefix: "/api",
        targetPort: 4000,
      }),
      aRoute({ id: "rt_prev", deploymentId: "dep_prev", domain: "*.preview.example.com", loadBalancerAlgo: "ip-hash" }),
      aRoute({
        id: "rt_grpc",
        deploymentId: "dep_grpc",
        domain: "grpc.example.com",
        protocol: "h2c",
        targetPort: 50051,
      }),
    ];
    const replicas = [
      aReplica({ id: "shop-1", deploymentId: "dep_shop", address: "10.0.1.1" }),
      aReplica({ id: "shop-2", deploymentId: "dep_shop", address: "10.0.1.2", port: 31000 }),
      aReplica({ id: "prev-1", deploymentId: "dep_prev", address: "2001:db8::7" }),
      aReplica({ id: "grpc-1", deploymentId: "dep_grpc", address: "10.0.3.1", healthStatus: "unhealthy" }),
    ];
    const { config } = render(routes, replicas);
    await expect(toYaml(config)).toMatchFileSnapshot("../fixtures/golden/mixed.yaml");
  });
});

describe("routersFor: the routers one route gets", () => {
  const ctx = routerContext({ web: "web", websecure: "websecure" }, []);
  const rule = "Host(`app.example.com`)";
  const priority = 20_008; // exact host + 8 × len("/")
  const base = { priority, rule, service: deploymentServiceName("dep_a") };
  const toHttps = { ...base, entryPoints: ["web"], middlewares: ["obiente-redirect-to-https"] };
  const toHttp = { ...base, entryPoints: ["websecure"], middlewares: ["obiente-redirect-to-http"], tls: {} };
  const tls = aRoute({ sslEnabled: true });
  const plain = aRoute();
  const leastConn = aRoute({ loadBalancerAlgo: "least-conn" });
  const chain = ["dep-a--ratelimit", "dep-a--basic-auth"]; // not in name order: chain order is behaviour

  const rows: [string, RouteInput, string[], boolean, [string, Router][]][] = [
    [
      "non-TLS route: web, plus an https→http twin on websecure (issue 9 #3)",
      plain,
      [],
      false,
      [
        ["dep-a--rt-1", { ...base, entryPoints: ["web"] }],
        ["dep-a--rt-1--to-http", toHttp],
      ],
    ],
    [
      "TLS route: websecure with its resolver, plus an http→https twin on web",
      tls,
      [],
      false,
      [
        ["dep-a--rt-1", { ...base, entryPoints: ["websecure"], tls: { certResolver: "letsencrypt" } }],
        ["dep-a--rt-1--to-https", toHttps],
      ],
    ],
    [
      "non-TLS route with middlewares: the chain, in order, on the route's router only",
      plain,
      chain,
      false,
      [
        ["dep-a--rt-1", { ...base, entryPoints: ["web"], middlewares: chain }],
        ["dep-a--rt-1--to-http", toHttp],
      ],
    ],
    [
      "TLS route with middlewares: the chain on the TLS router, the twin only redirects",
      tls,
      chain,
      false,
      [
        [
          "dep-a--rt-1",
          { ...base, entryPoints: ["websecure"], middlewares: chain, tls: { certResolver: "letsencrypt" } },
        ],
        ["dep-a--rt-1--to-https", toHttps],
      ],
    ],
    [
      "least-conn via the proxy: its headers middleware alone",
      leastConn,
      [],
      true,
      [
        ["dep-a--rt-1", { ...base, entryPoints: ["web"], middlewares: ["dep-a--least-cpu"] }],
        ["dep-a--rt-1--to-http", toHttp],
      ],
    ],
    [
      "least-conn via the proxy with middlewares: its headers middleware last",
      { ...leastConn, sslEnabled: true },
      chain,
      true,
      [
        [
          "dep-a--rt-1",
          {
            ...base,
            entryPoints: ["websecure"],
            middlewares: [...chain, "dep-a--least-cpu"],
            tls: { certResolver: "letsencrypt" },
          },
        ],
        ["dep-a--rt-1--to-https", toHttps],
      ],
    ],
  ];

  it.each(rows)("%s", (_what, route, middlewares, viaProxy, expected) => {
    const got = routersFor(
      { name: routeName(route), route, service: deploymentServiceName(route.deploymentId), middlewares, viaProxy },
      ctx,
    );
    expect(Object.entries(got)).toEqual(expected); // in this order
    expect(Object.keys(got)).toEqual(Object.keys(got).sort()); // name order: canonical by construction
    expect(toJson(got)).toBe(toJson(canonical(got)));
  });

  it.each(rows.filter(([, , middlewares]) => middlewares.length === 0))(
    "renderDynamicConfig places exactly these routers: %s",
    (_what, route, _middlewares, viaProxy, expected) => {
      const input = anInput([route], [aReplica()]);
      if (viaProxy) {
        input.settings = { ...input.settings, fallbackProxy: { url: "http://10.9.9.9:8081", secret: "s3cret-s3cret" } };
      }
      expect(Object.entries(renderInput(input).config.http.routers)).toEqual(expected);
    },
  );

  it("uses the configured entry points and an uploaded certificate instead of the resolver", () => {
    const cert = { id: "crt_1", certPem: "", keyPem: "", sans: ["*.example.com"] };
    const renamed = routerContext({ web: "http", websecure: "https" }, [cert]);
    const got = routersFor(
      {
        name: routeName(tls),
        route: tls,
        service: deploymentServiceName(tls.deploymentId),
        middlewares: [],
        viaProxy: false,
      },
      renamed,
    );
    expect(Object.entries(got)).toEqual([
      ["dep-a--rt-1", { ...base, entryPoints: ["https"], tls: {} }],
      ["dep-a--rt-1--to-https", { ...toHttps, entryPoints: ["http"] }],
    ]);
  });
});

describe("an empty routing table (issue 9 #1)", () => {
  const settingsWithProxy = {
    ...anInput([]).settings,
    fallbackProxy: { url: "http://10.9.9.9:8081", secret: "s3cret" },
  };

  it("renders {} with no routes, which Traefik applies (removing every route), in JSON and YAML", () => {
    const result = renderDynamicConfig({ ...anInput([], [aReplica()]), settings: settingsWithProxy });
    expect(result).toEqual({ config: {}, warnings: [], hasSecrets: false });
    expect(toJson(result.config)).toBe("{}\n");
    expect(toPrettyJson(result.config)).toBe("{}\n");
    expect(toYaml(result.config)).toBe("{}\n");
    expect(traefikSchemaErrors(result.config, { allowEmpty: true })).toEqual([]);
    // Without allowEmpty the check says what Traefik will do with it: that is the point of serving it.
    expect(traefikSchemaErrors(result.config)).toEqual([expect.stringMatching(/^warn: \/: no routers/)]);
  });

  it("renders {} when every row is skipped, and keeps the warnings", () => {
    const bad = aRoute({ id: "bad", pathPrefix: "/x`)" });
    const { config, warnings } = renderDynamicConfig(anInput([bad]));
    expect(config).toEqual({});
    expect(warnings.map((w) => w.id)).toEqual(["bad"]);
  });

  it("renders {} with certificates but no routes, and does not count their keys as served secrets", () => {
    const cert = {
      id: "crt_1",
      certPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      keyPem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
      sans: ["a.example.com"],
    };
    const result = renderDynamicConfig({ ...anInput([]), certificates: [cert] });
    expect(result.config).toEqual({});
    expect(result.hasSecrets).toBe(false);
  });

  it("never emits an empty middlewares map, chain, tls section or headers map", () => {
    const plain = aRoute({ id: "plain" });
    const { config } = render([plain], [aReplica()]);
    expect(routerFor(config, plain).middlewares).toBeUndefined(); // no chain at all, rather than []
    expect(config.tls).toBeUndefined();
    expect(emptyElements(config)).toEqual([]);
    // Stored settings that switch nothing on render no middleware for the deployment.
    const input = { ...anInput([plain], [aReplica()]), middlewares: new Map([["dep_a", {}]]) };
    const quiet = renderInput(input).config;
    expect(routerFor(quiet, plain).middlewares).toBeUndefined();
    expect(Object.keys(quiet.http.middlewares ?? {})).toEqual([REDIRECT_TO_HTTP]);
  });
});

describe("hasSecrets (issue 10 #10)", () => {
  const hash = "alice:$2y$04$abcdefghijklmnopqrstuu5Wq1wJXCJkdpHn5cXlrFyzqDsMV3mVu";
  const route = aRoute();
  const withMiddlewares = (mw: unknown) =>
    renderDynamicConfig({ ...anInput([route], [aReplica()]), middlewares: new Map([["dep_a", mw]]) });

  it("is false for a config without secret-bearing fields", () => {
    expect(render([route], [aReplica()]).hasSecrets).toBe(false);
    expect(withMiddlewares({ compress: {} }).hasSecrets).toBe(false);
  });

  it.each([
    ["basic-auth hashes", { basic_auth: { users: [hash] } }],
    ["custom request header values", { headers: { request: { "X-Api-Key": "sk_live_123" } } }],
    ["custom response header values", { headers: { response: { "X-Token": "t0k3n" } } }],
  ])("is true for %s", (_what, mw) => {
    const result = withMiddlewares(mw);
    expect(result.warnings).toEqual([]);
    expect(result.hasSecrets).toBe(true);
  });
});

describe("path prefixes in the form Traefik compares (issue 9 #5)", () => {
  it.each([
    ["/cafA", "/cafA"],
    ["/caf%41", "/cafA"],
    ["/x%2fy", "/x%2Fy"],
    ["/x%2Fy", "/x%2Fy"],
    ["/a%7eb", "/a~b"],
    ["/%25", "/%25"],
    ["/a%3bb", "/a%3Bb"],
  ])("%s is compared by Traefik as %s", (stored, compared) => {
    expect(traefikPathPrefix(stored)).toEqual({ value: compared });
    expect(checkPathPrefix(compared)).toBeUndefined();
  });

  it.each(["/caf%41", "/x%2fy", "/a%7eb"])("render refuses %s (it could never match) and keeps the others", (p) => {
    expect(checkPathPrefix(p)).toMatch(/must be written as Traefik compares it/);
    const bad = aRoute({ id: "bad", domain: "b.example.com", pathPrefix: p });
    const good = aRoute({ id: "good" });
    const { config, warnings } = render([bad, good]);
    expect(warnings).toEqual([{ kind: "route", id: "bad", reason: expect.stringMatching(/Traefik compares/) }]);
    expect(Object.keys(config.http.services)).toEqual([deploymentServiceName(good.deploymentId)]);
  });

  it.each(["/a%20b", "/a%22", "/%7B", "/a%5cb", "/%2E%2E/x"])("%s cannot be normalized and is refused", (p) => {
    expect(checkPathPrefix(p)).toBeDefined();
  });

  it("routes a request path as Traefik does: decodes all but upper-case reserved escapes", () => {
    expect(routingPath("/caf%41/x")).toBe("/cafA/x");
    expect(routingPath("/x%2fy")).toBe("/x/y");
    expect(routingPath("/x%2Fy")).toBe("/x%2Fy");
    expect(routingPath("/caf%C3%A9")).toBe("/café");
    expect(routingPath("/bad%4")).toBeUndefined();
  });
});
