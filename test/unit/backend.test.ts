import { describe, expect, it } from "vitest";
import { deploymentServiceName } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { toYaml } from "../../src/render/serialize.js";
import type { BackendTls, RenderSettings, ReplicaInput, RouteInput } from "../../src/render/types.js";
import { aReplica, aRoute, routed, settings, shuffled } from "../fixtures/rows.js";
import { makeCert } from "../helpers/certs.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const CA = makeCert({ sans: ["backend-ca.internal"], cn: "backend test CA" }).certPem;
const HEALTH = { path: "/health", intervalSeconds: 30, timeoutSeconds: 5, expectedStatus: "2xx" };

const tls = (over: Partial<BackendTls> = {}): BackendTls => ({
  serverName: null,
  caPem: null,
  insecureSkipVerify: false,
  ...over,
});

/** dep_a's service: every route of the deployment points at it. */
const DEP_A = deploymentServiceName("dep_a");

function render(
  routes: RouteInput[],
  over: Partial<RenderSettings> = {},
  acceptWarnings: RegExp[] = [],
  replicas: ReplicaInput[] = [aReplica(), aReplica({ id: "loc_2", address: "10.0.0.2" })],
) {
  const result = renderDynamicConfig({ routes, replicas, settings: { ...settings, ...over } });
  expect(traefikSchemaErrors(result.config, { acceptWarnings })).toEqual([]);
  return routed(result);
}

describe("https backends (serversTransport)", () => {
  const https = aRoute({ protocol: "https", backendTls: tls({ serverName: "api.internal", caPem: CA }) });
  const second = { ...https, id: "rt_2", pathPrefix: "/v2" };

  it("dials an https deployment with its own CA and server name, through one transport per deployment", () => {
    const { config, warnings, hasSecrets } = render([https, second]);
    expect(warnings).toEqual([]);
    expect(config.http.serversTransports).toEqual({
      "dep-a--backend-tls": { rootCAs: [CA], serverName: "api.internal" },
    });
    // One service for both routes (one transport, one health check per deployment).
    expect(Object.keys(config.http.services)).toEqual([DEP_A]);
    expect(new Set(Object.values(config.http.routers).map((r) => r.service))).toEqual(new Set([DEP_A]));
    expect(config.http.services[DEP_A]?.loadBalancer).toEqual({
      passHostHeader: true,
      servers: [{ url: "https://10.0.0.1:3000" }, { url: "https://10.0.0.2:3000" }],
      serversTransport: "dep-a--backend-tls",
    });
    expect(hasSecrets).toBe(false); // a CA certificate is public: the config can still be served without a token
  });

  it("skips certificate verification only when the deployment asks for it", () => {
    const insecure = aRoute({ protocol: "https", backendTls: tls({ insecureSkipVerify: true }) });
    // Accepted: the operator opted out of verification explicitly (insecure_skip_verify); the check flags it.
    const { config } = render([insecure], {}, [/insecureSkipVerify: backend certificates are not verified/]);
    expect(config.http.serversTransports).toEqual({ "dep-a--backend-tls": { insecureSkipVerify: true } });
    for (const plain of [aRoute({ protocol: "https", backendTls: tls() }), aRoute({ protocol: "https" })]) {
      const { config: cfg } = render([plain]);
      expect(cfg.http.serversTransports).toBeUndefined(); // system roots, replica address: Traefik's default
      expect(cfg.http.services[DEP_A]?.loadBalancer).toBeDefined();
      expect(cfg.http.services[DEP_A]?.loadBalancer?.serversTransport).toBeUndefined();
    }
  });

  it("ignores backend TLS settings on a route that does not speak TLS to its replicas", () => {
    const { config } = render([aRoute({ protocol: "http", backendTls: tls({ caPem: CA, insecureSkipVerify: true }) })]);
    expect(config.http.serversTransports).toBeUndefined();
  });

  it.each([
    ["a CA that is not PEM", tls({ caPem: "not a certificate" }), "backend TLS CA must be PEM CERTIFICATE blocks"],
    [
      "a private key instead of a CA",
      tls({ caPem: makeCert({ sans: ["k.internal"] }).keyPem }),
      "backend TLS CA must be PEM CERTIFICATE blocks",
    ],
    [
      "a template in the server name",
      tls({ serverName: "{{ env `X` }}" }),
      "backend TLS server name must be a DNS name or an IP address",
    ],
  ])("skips a route whose backend TLS holds %s, keeping the others", (_, bad, reason) => {
    const other = aRoute({ id: "rt_b", deploymentId: "dep_b", domain: "b.example.com" });
    const { config, warnings } = render([aRoute({ protocol: "https", backendTls: bad }), other]);
    expect(warnings).toEqual([{ kind: "route", id: "rt_1", reason }]);
    expect(Object.keys(config.http.services)).toEqual([deploymentServiceName("dep_b")]);
    expect(config.http.serversTransports).toBeUndefined();
  });

  it("renders the same bytes for shuffled rows", () => {
    const b = aRoute({ id: "rt_b", deploymentId: "dep_b", domain: "b.example.com", protocol: "https" });
    const routes = [https, second, { ...b, backendTls: tls({ serverName: "10.1.2.3" }) }];
    const first = toYaml(render(routes).config);
    expect(first).toContain("dep-b--backend-tls");
    for (const seed of [1, 2, 3]) {
      expect(toYaml(render(shuffled(routes, seed)).config)).toBe(first);
    }
  });
});

describe("Traefik's own health check (TRAEFIK_HEALTHCHECK)", () => {
  const h2c = aRoute({ protocol: "h2c" });

  it("checks an h2c (gRPC) deployment with the gRPC health protocol, not an HTTP GET it would answer with 415", () => {
    const { config } = render([h2c], { traefikHealthCheck: HEALTH });
    expect(config.http.services[DEP_A]?.loadBalancer?.healthCheck).toEqual({
      interval: "30s",
      mode: "grpc",
      timeout: "5s",
    });
  });

  it("checks a gRPC-over-TLS deployment (https, health mode grpc) with the gRPC health protocol, as our probe does", () => {
    const { config } = render([aRoute({ protocol: "https", healthMode: "grpc" })], { traefikHealthCheck: HEALTH });
    expect(config.http.services[DEP_A]?.loadBalancer?.healthCheck).toEqual({
      interval: "30s",
      mode: "grpc",
      timeout: "5s",
    });
    // Without a mode an https deployment is an ordinary web server: an HTTP GET.
    const plain = render([aRoute({ protocol: "https" })], { traefikHealthCheck: HEALTH }).config;
    expect(plain.http.services[DEP_A]?.loadBalancer?.healthCheck).toMatchObject({ path: "/health" });
  });

  it("checks an h2c deployment over HTTP/2 when it chose the http health mode", () => {
    // Accepted: the deployment declared that its h2c server is not gRPC (health mode `http`), so a GET is right.
    const accept = [/HTTP-mode check sent over h2c/];
    const { config } = render([{ ...h2c, healthMode: "http" }], { traefikHealthCheck: HEALTH }, accept);
    expect(config.http.services[DEP_A]?.loadBalancer?.healthCheck).toEqual({
      interval: "30s",
      path: "/health",
      timeout: "5s",
    });
  });

  it("carries the deployment's expected status when it is a single code", () => {
    // Expected statuses are the deployment's (deployments.health_expected_status): one deployment each.
    const routes = [
      aRoute({ id: "rt_1", deploymentId: "dep_204", healthExpectedStatus: "204" }),
      aRoute({ id: "rt_1", deploymentId: "dep_range", pathPrefix: "/r", healthExpectedStatus: "200-399" }),
      aRoute({ id: "rt_1", deploymentId: "dep_default", pathPrefix: "/d" }),
    ];
    const replicas = routes.map((r) => aReplica({ id: `loc_${r.deploymentId}`, deploymentId: r.deploymentId }));
    const checks = (expectedStatus: string) => {
      const { config } = render(routes, { traefikHealthCheck: { ...HEALTH, expectedStatus } }, [], replicas);
      return Object.fromEntries(
        Object.entries(config.http.services).map(([n, s]) => [n, s.loadBalancer?.healthCheck?.status]),
      );
    };
    const [dep204, depRange, depDefault] = ["dep_204", "dep_range", "dep_default"].map(deploymentServiceName);
    // A class or range cannot be one int: Traefik then accepts 200–399 (healthcheck.go checkHealthHTTP).
    expect(checks("2xx")).toEqual({
      [dep204 as string]: 204,
      [depDefault as string]: undefined,
      [depRange as string]: undefined,
    });
    // The service-wide default (HEALTH_EXPECTED_STATUS) applies to deployments without their own.
    expect(checks("200")).toEqual({
      [dep204 as string]: 204,
      [depDefault as string]: 200,
      [depRange as string]: undefined,
    });
  });

  it("adds no health check when TRAEFIK_HEALTHCHECK is off", () => {
    const { config } = render([h2c, aRoute({ id: "rt_2", pathPrefix: "/x", healthExpectedStatus: "204" })]);
    for (const s of Object.values(config.http.services)) {
      expect(s.loadBalancer?.healthCheck).toBeUndefined();
    }
  });

  it("checks an https deployment through its own transport (Traefik reuses the service's transport)", () => {
    const https = aRoute({ protocol: "https", backendTls: tls({ caPem: CA }), healthExpectedStatus: "200" });
    const { config } = render([https], { traefikHealthCheck: HEALTH });
    expect(config.http.services[DEP_A]?.loadBalancer).toEqual({
      healthCheck: { interval: "30s", path: "/health", status: 200, timeout: "5s" },
      passHostHeader: true,
      servers: [{ url: "https://10.0.0.1:3000" }, { url: "https://10.0.0.2:3000" }],
      serversTransport: "dep-a--backend-tls",
    });
  });
});
