import { describe, expect, it } from "vitest";
import { FULL_CHAIN_ORDER } from "../../src/render/middlewares.js";
import { deploymentServiceName, REDIRECT_TO_HTTP, routeName } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { resilienceFor } from "../../src/render/resilience.js";
import { StoredResilience } from "../../src/render/resilience-config.js";
import { toJson } from "../../src/render/serialize.js";
import type { BackendTls, RenderSettings, RouteInput } from "../../src/render/types.js";
import { aReplica, aRoute, routed, settings, shuffled } from "../fixtures/rows.js";
import { makeCert } from "../helpers/certs.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

/** Schema and semantics problems of a rendered document, for the oldest Traefik it must run on. */
const traefikErrors = (config: unknown, minVersion: "3.6.0" | "3.7.0" = "3.6.0") =>
  traefikSchemaErrors(config, { minVersion });
const traefik37Errors = (config: unknown) => traefikErrors(config, "3.7.0");

const CA = makeCert({ sans: ["backend-ca.internal"], cn: "backend test CA" }).certPem;
const tls = (over: Partial<BackendTls> = {}): BackendTls => ({
  serverName: null,
  caPem: null,
  insecureSkipVerify: false,
  ...over,
});

/** As the API stores it: parsed by StoredResilience (expression normalized, defaults filled in). */
const stored = (raw: unknown) => StoredResilience.parse(raw);
/** dep_a's one service (every route of the deployment points at it). */
const DEP_A = deploymentServiceName("dep_a");

const ALL = {
  retry: { attempts: 3, initial_interval_ms: 100 },
  circuit_breaker: {
    expression: "NetworkErrorRatio()>0.3||ResponseCodeRatio(500,600,0,600)>0.25",
    check_period_ms: 500,
    fallback_duration_ms: 30_000,
    recovery_duration_ms: 1500,
    response_code: 503,
  },
  max_in_flight: { amount: 100, per: "client_ip" },
  timeouts: { dial_ms: 5000, response_header_ms: 30_000, idle_conn_ms: 60_000 },
  passive_health: { failure_window_seconds: 20, max_failed_attempts: 3 },
};

function render(
  routes: RouteInput[],
  resilience: unknown,
  opts: { over?: Partial<RenderSettings>; middlewares?: unknown } = {},
) {
  return renderDynamicConfig({
    routes,
    replicas: [aReplica(), aReplica({ id: "loc_2", address: "10.0.0.2" })],
    settings: { ...settings, ...opts.over },
    traffic: new Map([["dep_a", { split: null, geo: null, resilience }]]),
    ...(opts.middlewares ? { middlewares: new Map([["dep_a", opts.middlewares]]) } : {}),
  });
}

describe("resilience settings rendered for Traefik 3.6 (the default)", () => {
  it("renders retry, circuit breaker, in-flight limit, forwarding timeouts and passive health", () => {
    const result = routed(render([aRoute()], stored(ALL)));
    expect(result.warnings).toEqual([]);
    expect(traefikErrors(result.config)).toEqual([]);
    const { http } = result.config;
    expect(http.middlewares).toEqual({
      [REDIRECT_TO_HTTP]: expect.anything(), // the https→http twin of the plain-http route, not ours
      "dep-a--circuit-breaker": {
        circuitBreaker: {
          checkPeriod: "500ms",
          expression: "NetworkErrorRatio() > 0.3 || ResponseCodeRatio(500, 600, 0, 600) > 0.25",
          fallbackDuration: "30s",
          recoveryDuration: "1500ms",
          responseCode: 503,
        },
      },
      "dep-a--in-flight": { inFlightReq: { amount: 100, sourceCriterion: { ipStrategy: { depth: 0 } } } },
      "dep-a--retry": { retry: { attempts: 3, initialInterval: "100ms" } },
    });
    expect(http.routers["dep-a--rt-1"]?.middlewares).toEqual([
      "dep-a--in-flight",
      "dep-a--circuit-breaker",
      "dep-a--retry",
    ]);
    expect(http.serversTransports).toEqual({
      "dep-a--backend": {
        forwardingTimeouts: { dialTimeout: "5s", idleConnTimeout: "60s", responseHeaderTimeout: "30s" },
      },
    });
    expect(http.services[DEP_A]?.loadBalancer).toEqual({
      passHostHeader: true,
      passiveHealthCheck: { failureWindow: "20s", maxFailedAttempts: 3 },
      servers: [{ url: "http://10.0.0.1:3000" }, { url: "http://10.0.0.2:3000" }],
      serversTransport: "dep-a--backend",
    });
    expect(toJson(result.config)).toBe(toJson(JSON.parse(toJson(result.config)))); // stable bytes
  });

  it("puts the in-flight limit after the rate limit and circuit breaker then retry innermost", () => {
    const middlewares = {
      ip_allow_list: { source_range: ["10.0.0.0/8"] },
      rate_limit: { average: 10, burst: 1, period_seconds: 1 },
      basic_auth: { users: ["bob:{SHA}fEqNCco3Yq9h5ZUglD3CZJT4lBs="], remove_header: true },
      compress: { enabled: true },
    };
    const result = routed(render([aRoute()], stored(ALL), { middlewares }));
    expect(traefikErrors(result.config)).toEqual([]);
    const chain = result.config.http.routers["dep-a--rt-1"]?.middlewares ?? [];
    expect(chain).toEqual([
      "dep-a--ip-allow-list",
      "dep-a--rate-limit",
      "dep-a--in-flight",
      "dep-a--basic-auth",
      "dep-a--compress",
      "dep-a--circuit-breaker",
      "dep-a--retry",
    ]);
    const kinds = chain.map((n) => FULL_CHAIN_ORDER.findIndex((k) => n.endsWith(`--${k}`)));
    expect(kinds).toEqual([...kinds].sort((a, b) => a - b));
  });

  it("leaves retry status and timeout out for Traefik 3.6 and says so", () => {
    const cfg = stored({ retry: { attempts: 2, status: ["502-504"], timeout_ms: 2000 } });
    const parts = resilienceFor(aRoute(), cfg, settings);
    expect(parts?.defs).toEqual([["dep-a--retry", { retry: { attempts: 2 } }]]);
    expect(parts?.ignored).toEqual([
      expect.stringMatching(/^retry\.status not rendered: it needs Traefik ≥ 3\.7/),
      expect.stringMatching(/^retry\.timeout_ms not rendered/),
    ]);
    const result = routed(render([aRoute()], cfg));
    expect(traefikErrors(result.config)).toEqual([]);
    // The operator hears it once per deployment, as for an ignored middleware setting.
    expect(result.warnings.filter((w) => w.kind === "middleware")).toEqual([
      {
        kind: "middleware",
        id: "dep_a",
        reason: expect.stringMatching(/^retry\.status not rendered.*; retry\.timeout_ms/),
      },
    ]);
  });

  it("counts in-flight requests per host, or per client IP from X-Forwarded-For only behind trusted proxies", () => {
    const perHost = resilienceFor(aRoute(), stored({ max_in_flight: { amount: 5 } }), settings);
    expect(perHost?.defs).toEqual([
      ["dep-a--in-flight", { inFlightReq: { amount: 5, sourceCriterion: { requestHost: true } } }],
    ]);
    const depth = stored({ max_in_flight: { amount: 5, per: "client_ip", ip_depth: 2 } });
    const trusted = resilienceFor(aRoute(), depth, { ...settings, trustedProxyCidrs: ["10.9.0.0/24"] });
    expect(trusted?.defs[0]?.[1].inFlightReq?.sourceCriterion).toEqual({ ipStrategy: { depth: 2 } });
    const untrusted = resilienceFor(aRoute(), depth, settings);
    expect(untrusted?.defs[0]?.[1].inFlightReq?.sourceCriterion).toEqual({ ipStrategy: { depth: 0 } });
    expect(untrusted?.ignored).toEqual([expect.stringMatching(/TRUSTED_PROXY_CIDRS is empty/)]);
  });

  it("renders nothing for empty settings", () => {
    expect(resilienceFor(aRoute(), stored({}), settings)).toBeUndefined();
    expect(resilienceFor(aRoute(), undefined, settings)).toBeUndefined();
  });

  it("is the same document whatever the row order", () => {
    const routes = [aRoute(), aRoute({ id: "rt_2", pathPrefix: "/api" }), aRoute({ id: "rt_3", pathPrefix: "/b" })];
    const first = toJson(render(routes, stored(ALL)).config);
    for (const seed of [1, 2, 3]) {
      expect(toJson(render(shuffled(routes, seed), stored(ALL)).config)).toBe(first);
    }
  });
});

describe("resilience settings rendered for Traefik 3.7", () => {
  const v37 = { traefikVersion: "3.7" as const };

  it("retries idempotent requests on the given status codes, within a timeout", () => {
    const cfg = stored({
      retry: { attempts: 4, initial_interval_ms: 250, status: ["502", "503-504"], timeout_ms: 10_000 },
    });
    const result = routed(render([aRoute()], cfg, { over: v37 }));
    expect(result.warnings).toEqual([]);
    expect(traefik37Errors(result.config)).toEqual([]);
    expect(result.config.http.middlewares?.["dep-a--retry"]).toEqual({
      retry: { attempts: 4, initialInterval: "250ms", status: ["502", "503-504"], timeout: "10s" },
    });
    expect(resilienceFor(aRoute(), cfg, { ...settings, ...v37 })?.ignored).toBeUndefined();
    // The same document would be refused by Traefik 3.6: that is why the default leaves these fields out.
    expect(traefikErrors(result.config).join("\n")).toMatch(/unknown to Traefik < v3\.7\.0/);
  });

  it("renders every part schema-valid and semantics-clean", () => {
    const result = routed(render([aRoute()], stored(ALL), { over: v37 }));
    expect(traefik37Errors(result.config)).toEqual([]);
  });
});

describe("forwarding timeouts and https backend TLS share one transport per deployment", () => {
  const https = aRoute({ protocol: "https", backendTls: tls({ serverName: "api.internal", caPem: CA }) });

  it("merges the timeouts into the https verification transport, keeping its name", () => {
    const result = routed(render([https], stored({ timeouts: { dial_ms: 2500 } })));
    expect(traefikErrors(result.config)).toEqual([]);
    expect(result.config.http.serversTransports).toEqual({
      "dep-a--backend-tls": {
        forwardingTimeouts: { dialTimeout: "2500ms" },
        rootCAs: [CA],
        serverName: "api.internal",
      },
    });
    expect(result.config.http.services[DEP_A]?.loadBalancer?.serversTransport).toBe("dep-a--backend-tls");
  });

  it("gives a plain-http route of the same deployment the timeouts alone, under its own name", () => {
    const plain = aRoute({ id: "rt_2", pathPrefix: "/plain" });
    const result = routed(render([https, plain], stored({ timeouts: { response_header_ms: 15_000 } })));
    expect(traefikErrors(result.config)).toEqual([]);
    expect(result.config.http.serversTransports).toEqual({
      "dep-a--backend": { forwardingTimeouts: { responseHeaderTimeout: "15s" } },
      "dep-a--backend-tls": {
        forwardingTimeouts: { responseHeaderTimeout: "15s" },
        rootCAs: [CA],
        serverName: "api.internal",
      },
    });
    // Rows disagreeing on the protocol (hand-edited: the API keeps it deployment-wide) get a service each.
    const { routers, services } = result.config.http;
    const plainService = routers[routeName(plain)]?.service ?? "";
    expect(plainService).not.toBe(routers[routeName(https)]?.service);
    expect(services[plainService]?.loadBalancer?.serversTransport).toBe("dep-a--backend");
  });

  it("keeps a TLS-only transport exactly as before when there are no timeouts", () => {
    const without = toJson(routed(render([https], null)).config);
    const withOtherParts = routed(render([https], stored({ retry: { attempts: 2 } }))).config;
    expect(withOtherParts.http.serversTransports).toEqual(JSON.parse(without).http.serversTransports);
    expect(withOtherParts.http.serversTransports).toEqual({
      "dep-a--backend-tls": { rootCAs: [CA], serverName: "api.internal" },
    });
  });
});

describe("least-conn routes (balanced by the fallback proxy)", () => {
  it("get the middlewares but neither the transport nor passive health (the proxy is the only server)", () => {
    const route = aRoute({ loadBalancerAlgo: "least-conn" });
    const over = { fallbackProxy: { url: "http://127.0.0.1:8081", secret: "s".repeat(32) } };
    const result = routed(render([route], stored(ALL), { over }));
    expect(traefikErrors(result.config)).toEqual([]);
    const { http } = result.config;
    expect(http.routers["dep-a--rt-1"]?.middlewares?.slice(0, 3)).toEqual([
      "dep-a--in-flight",
      "dep-a--circuit-breaker",
      "dep-a--retry",
    ]);
    expect(http.serversTransports).toBeUndefined();
    expect(http.services[DEP_A]?.loadBalancer?.servers).toEqual([{ url: "http://127.0.0.1:8081" }]);
    expect(http.services[DEP_A]?.loadBalancer?.passiveHealthCheck).toBeUndefined();
  });
});

describe("stored rows are validated again", () => {
  it.each([
    ["an expression edited by hand", { circuit_breaker: { expression: "rm -rf /" } }],
    ["a status range", { retry: { attempts: 2, status: ["5xx"] } }],
    ["zero attempts", { retry: { attempts: 0 } }],
    ["an in-flight amount of 0", { max_in_flight: { amount: 0 } }],
    ["empty timeouts", { timeouts: {} }],
    ["an unknown part", { buffering: {} }],
  ])("skips the deployment's routes when a row holds %s", (_what, raw) => {
    const result = render([aRoute()], raw);
    expect(result.config).toEqual({});
    expect(result.warnings).toEqual([{ kind: "route", id: "rt_1", reason: "traffic settings are invalid" }]);
  });
});
