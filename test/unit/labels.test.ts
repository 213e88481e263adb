import bcrypt from "bcryptjs";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { type DeploymentLabels, type LabelRoute, labelsFor } from "../../src/export/labels.js";
import { composeLabels } from "../../src/export/labels-compose.js";
import { leastCpuMiddlewareName, routeName } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import type {
  DynamicConfig,
  RenderInput,
  RenderSettings,
  ReplicaInput,
  RouteInput,
  TlsCertificateInput,
} from "../../src/render/types.js";
import { aReplica, aRoute, routed, settings, shuffled } from "../fixtures/rows.js";
import { makeCert } from "../helpers/certs.js";
import { decodeDockerLabels } from "../helpers/paerser.js";
import { STATIC_CONFIG, traefikSchemaErrors } from "../helpers/traefik-schema.js";

// A fixed salt keeps the golden files stable; `$2y$` is the form Traefik documents.
const hash = (pw: string) => bcrypt.hashSync(pw, "$2a$04$abcdefghijklmnopqrstuu").replace(/^\$2a\$/, "$2y$");
const ALICE = `alice:${hash("alice-password")}`;
const BOB = `bob:${hash("bob-password")}`;

/** The container address the decoder gives every replica container (Docker's addServer). */
const CONTAINER_IP = "10.0.0.7";
const HEALTH: RenderSettings["traefikHealthCheck"] = { path: "/healthz", intervalSeconds: 10, timeoutSeconds: 3 };
const PROXY = { url: "http://10.9.9.9:8081", secret: "s3cret-fallback-proxy-value-0123456789" };
// Real certificates (openssl): Traefik's schema check loads them. Neither ever reaches a label.
const CA_PEM = makeCert({ sans: ["backend.internal"] }).certPem;
const SHOP = makeCert({ sans: ["shop.example.net"] });
const UPLOADED: TlsCertificateInput = { id: "cert_1", certPem: SHOP.certPem, keyPem: SHOP.keyPem, sans: SHOP.sans };
const TRUSTED_PROXIES = ["10.9.0.0/24"];

/** The shipped static config with `forwardedHeaders.trustedIPs` on every entry point (TRUSTED_PROXY_CIDRS). */
function staticTrusting(cidrs: readonly string[]): unknown {
  const s = structuredClone(STATIC_CONFIG) as { entryPoints: Record<string, Record<string, unknown>> };
  for (const ep of Object.values(s.entryPoints)) {
    ep.forwardedHeaders = { trustedIPs: [...cidrs] };
  }
  return s;
}

interface Scenario {
  deploymentId: string;
  routes: Partial<RouteInput>[];
  middlewares?: unknown;
  settings?: Partial<RenderSettings>;
  certificates?: TlsCertificateInput[];
  /** The Traefik static config the rendered config is checked against (default: the shipped one). */
  staticConfig?: unknown;
}

const SCENARIOS: Record<string, Scenario> = {
  "plain-http": { deploymentId: "dep_plain", routes: [{ domain: "plain.example.com" }] },
  "https-resolver": {
    deploymentId: "dep_tls",
    routes: [{ domain: "secure.example.com", sslEnabled: true, sslCertResolver: "letsencrypt" }],
    settings: { traefikHealthCheck: HEALTH },
  },
  "wildcard-apex": {
    deploymentId: "dep_wild",
    routes: [{ domain: "*.example.org", sslEnabled: true, sslCertResolver: "letsencrypt-dns", tlsIncludeApex: true }],
  },
  "path-prefix-strip": {
    deploymentId: "dep_api",
    routes: [
      { id: "rt_root", domain: "api.example.com", sslEnabled: true },
      { id: "rt_v1", domain: "api.example.com", pathPrefix: "/v1", sslEnabled: true },
    ],
    middlewares: { strip_prefix: true },
  },
  middlewares: {
    deploymentId: "dep_mw",
    routes: [{ domain: "www.example.com", sslEnabled: true }],
    middlewares: {
      redirect_www: "to-apex",
      ip_allow_list: { source_range: ["192.0.2.0/24", "10.0.0.0/8", "2001:db8::/32"], ip_depth: 1 },
      rate_limit: { average: 100, burst: 50, period_seconds: 60 },
      basic_auth: { users: [BOB, ALICE], realm: "staff only" },
      headers: {
        request: { "X-Api-Key": `k"e'y $HOME \${X} # not: a comment \\ %`, "X-Empty-Removes": "" },
        response: { "Cache-Control": "no-store" },
        security_preset: true,
      },
      compress: { encodings: ["zstd", "br", "gzip"], min_response_body_bytes: 1024 },
    },
    settings: { trustedProxyCidrs: TRUSTED_PROXIES },
    staticConfig: staticTrusting(TRUSTED_PROXIES),
  },
  h2c: {
    deploymentId: "dep_grpc",
    routes: [{ domain: "grpc.example.com", protocol: "h2c", targetPort: 50051, sslEnabled: true }],
    settings: { traefikHealthCheck: HEALTH },
  },
  "https-backend": {
    deploymentId: "dep_tlsback",
    routes: [
      {
        domain: "backend.example.com",
        protocol: "https",
        targetPort: 8443,
        sslEnabled: true,
        backendTls: { serverName: "backend.internal", caPem: CA_PEM, insecureSkipVerify: false },
      },
    ],
    settings: { traefikHealthCheck: HEALTH },
  },
  "least-conn": {
    deploymentId: "dep_lc",
    routes: [{ domain: "busy.example.com", loadBalancerAlgo: "least-conn" }],
    settings: { fallbackProxy: PROXY },
  },
  "ip-hash": {
    deploymentId: "dep_sticky",
    routes: [{ domain: "sticky.example.com", loadBalancerAlgo: "ip-hash", sslEnabled: true }],
    settings: { traefikHealthCheck: HEALTH },
  },
  "uploaded-certificate": {
    deploymentId: "dep_shop",
    routes: [{ domain: "shop.example.net", sslEnabled: true }],
    certificates: [UPLOADED],
  },
};

/** The scenario's deployment next to another one, so the labels must pick only their own objects. */
function inputOf(s: Scenario): { input: RenderInput; routes: RouteInput[] } {
  const routes = s.routes.map((r, i) => aRoute({ id: `rt_${i}`, ...r, deploymentId: s.deploymentId }));
  const other = aRoute({ id: "rt_other", deploymentId: "dep_other", domain: "other.example.com", sslEnabled: true });
  const replicas: ReplicaInput[] = [
    aReplica({ id: "loc_1", deploymentId: s.deploymentId, address: CONTAINER_IP }),
    aReplica({ id: "loc_other", deploymentId: "dep_other", address: "10.0.0.99" }),
  ];
  const middlewares = new Map<string, unknown>([["dep_other", { compress: {} }]]);
  if (s.middlewares) {
    middlewares.set(s.deploymentId, s.middlewares);
  }
  const input = {
    routes: [...routes, other],
    replicas,
    middlewares,
    certificates: s.certificates ?? [],
    settings: { ...settings, ...s.settings },
  };
  return { input, routes };
}

function labelsOf(s: Scenario): { labels: DeploymentLabels; config: DynamicConfig; routes: RouteInput[] } {
  const { input, routes } = inputOf(s);
  const { config } = routed(renderDynamicConfig(input));
  return { labels: labelsFor({ config, deploymentId: s.deploymentId, routes }), config, routes };
}

describe("Docker labels", () => {
  for (const [name, s] of Object.entries(SCENARIOS)) {
    it(`golden output: ${name}`, async () => {
      const { input } = inputOf(s);
      const { config } = routed(renderDynamicConfig(input));
      expect(traefikSchemaErrors(config, { staticConfig: s.staticConfig })).toEqual([]);
      const labels = labelsFor({ config, deploymentId: s.deploymentId, routes: input.routes });
      await expect(composeLabels(s.deploymentId, labels)).toMatchFileSnapshot(`../fixtures/golden/labels-${name}.txt`);
    });

    it(`decoding the labels as Traefik does gives the rendered objects: ${name}`, () => {
      const { labels, config, routes } = labelsOf(s);
      expect(labels.labels["traefik.enable"]).toBe("true");
      const decoded = decodeDockerLabels(labels.labels, CONTAINER_IP);
      const expected = expectedFromRender(config, routes, labels);
      expect(decoded).toEqual(expected);
    });

    it(`shuffled rows give the same labels: ${name}`, () => {
      const { input } = inputOf(s);
      const first = composeLabels(s.deploymentId, labelsOf(s).labels);
      for (const seed of [1, 2, 3]) {
        const again: RenderInput = {
          ...input,
          routes: shuffled(input.routes, seed),
          replicas: shuffled(input.replicas, seed),
        };
        const { config } = routed(renderDynamicConfig(again));
        const routes = shuffled(again.routes, seed + 10);
        expect(composeLabels(s.deploymentId, labelsFor({ config, deploymentId: s.deploymentId, routes }))).toBe(first);
      }
    });
  }

  it("never puts the fallback proxy's secret or address in a label", () => {
    const { labels } = labelsOf(SCENARIOS["least-conn"] as Scenario);
    const text = JSON.stringify(labels);
    expect(text).not.toContain(PROXY.secret);
    expect(text).not.toContain("10.9.9.9");
    expect(text).not.toContain("least-cpu");
    expect(labels.notExpressible.map((n) => n.what)).toContain("least-conn balancing");
  });

  it("compose output escapes hostile values and parses back to the exact labels", () => {
    const hostile = [
      `a "double" and 'single' quote`,
      `$HOME \${PATH} $$ $`,
      "line one\nline two\r\n",
      "{{ env `SECRET` }}",
      "# not a comment: {a: b} [c] &anchor *alias !tag | > %",
      "  leading and trailing  ",
      "\\backslash\\ \t tab",
      "unicode é ☃ \u2028 sep",
    ];
    const config: DynamicConfig = {
      http: {
        routers: {
          "dep-x--rt-1": {
            entryPoints: ["web"],
            middlewares: ["dep-x--headers"],
            priority: 1,
            rule: "Host(`x.example.com`)",
            service: "dep-x--rt-1",
          },
        },
        services: {
          "dep-x--rt-1": { loadBalancer: { passHostHeader: true, servers: [{ url: "http://10.0.0.1:80" }] } },
        },
        middlewares: {
          "dep-x--headers": {
            headers: { customRequestHeaders: Object.fromEntries(hostile.map((v, i) => [`X-H${i}`, v])) },
          },
        },
      },
    };
    const result = labelsFor({
      config,
      deploymentId: "dep_x",
      routes: [{ id: "rt_1", deploymentId: "dep_x", targetPort: 80, protocol: "http" }],
    });
    const yaml = composeLabels("dep_x", result);
    const parsed = parseYaml(yaml) as { labels: string[] };
    // What compose hands Docker: `$$` → `$` (its interpolation), then the first `=` splits key and value.
    const back = Object.fromEntries(
      parsed.labels.map((item) => {
        const label = item.replaceAll("$$", "$");
        const eq = label.indexOf("=");
        return [label.slice(0, eq), label.slice(eq + 1)];
      }),
    );
    expect(back).toEqual(result.labels);
    for (const [i, v] of hostile.entries()) {
      expect(back[`traefik.http.middlewares.dep-x--headers.headers.customrequestheaders.X-H${i}`]).toBe(v);
    }
    // A single `$` never reaches compose unescaped: every `$` in the file is part of a `$$` pair.
    for (const item of parsed.labels) {
      expect(item.replaceAll("$$", "")).not.toContain("$");
    }
  });

  it("a list element Traefik would split or trim is referenced from the file provider instead", () => {
    const { input } = inputOf({
      deploymentId: "dep_comma",
      routes: [{ domain: "c.example.com", pathPrefix: "/a,b" }],
      middlewares: { strip_prefix: true },
    });
    const { config } = routed(renderDynamicConfig(input));
    const stripName = `${routeName({ id: "rt_0", deploymentId: "dep_comma" })}--strip-prefix`;
    expect(config.http.middlewares?.[stripName]).toEqual({ stripPrefix: { prefixes: ["/a,b"] } });
    const result = labelsFor({ config, deploymentId: "dep_comma", routes: input.routes });
    expect(result.labels["traefik.http.routers.dep-comma--rt-0.middlewares"]).toBe(`${stripName}@file`);
    expect(Object.keys(result.labels).some((k) => k.includes("stripprefix"))).toBe(false);
    expect(result.notExpressible.find((n) => n.what === `middleware ${stripName}`)?.why).toMatch(/splits label lists/);
  });

  it("says which traffic-management routers and services labels leave out (split: weighted; geo: region routers)", () => {
    const route = aRoute({ deploymentId: "dep_t", domain: "t.example.com" });
    const replicas = [
      aReplica({ id: "r_s", deploymentId: "dep_t", address: "10.0.0.1" }),
      { ...aReplica({ id: "r_c", deploymentId: "dep_t", address: "10.0.0.2" }), track: "canary", region: "eu" },
      { ...aReplica({ id: "r_e", deploymentId: "dep_t", address: "10.0.0.3" }), region: "eu" },
    ];
    const labelRoute: LabelRoute = { id: route.id, deploymentId: "dep_t", targetPort: 3000, protocol: "http" };
    const split = {
      weights: { stable: 90, canary: 10 },
      rules: [{ match: { header: "X-V", value: "b" }, track: "canary" }],
    };
    const geo = { header: "CF-IPCountry", regions: { eu: ["DE"] }, default: "eu" };
    const notesFor = (traffic: unknown) => {
      const { config } = renderDynamicConfig({
        routes: [route],
        replicas,
        settings,
        traffic: new Map([["dep_t", traffic]]),
      });
      return labelsFor({ config, deploymentId: "dep_t", routes: [labelRoute] }).notExpressible.map((n) => n.what);
    };
    const base = routeName(route);
    const service = renderDynamicConfig({ routes: [route], replicas, settings }).config.http?.routers[base]?.service;
    expect(notesFor({ split })).toEqual(
      expect.arrayContaining([`service of ${service}`, `traffic routers of ${base}`]),
    );
    expect(notesFor({ geo })).toEqual(expect.arrayContaining([`traffic routers of ${base}`]));
    expect(notesFor({})).not.toEqual(expect.arrayContaining([`traffic routers of ${base}`]));
  });

  it("a deployment with nothing routed gets traefik.enable=false (no default router), and says why", () => {
    const { input } = inputOf(SCENARIOS["plain-http"] as Scenario);
    const { config, warnings } = renderDynamicConfig({
      ...input,
      routes: [...input.routes, aRoute({ id: "rt_bad", deploymentId: "dep_empty", domain: "-bad-.example.com" })],
    });
    const badRoute: LabelRoute = { id: "rt_bad", deploymentId: "dep_empty", targetPort: 3000, protocol: "http" };
    const none = labelsFor({ config, deploymentId: "dep_none", routes: [] });
    expect(none).toEqual({ labels: { "traefik.enable": "false" }, notExpressible: [] });
    const skipped = labelsFor({ config, deploymentId: "dep_empty", routes: [badRoute], warnings });
    expect(skipped.labels).toEqual({ "traefik.enable": "false" });
    expect(skipped.notExpressible).toEqual([
      { what: "route rt_bad", why: expect.stringMatching(/^not in the served config: /) },
    ]);
  });
});

/**
 * The deployment's objects in the rendered config, with the changes the labels declare in `notExpressible`:
 * least-conn goes straight to the container (no proxy, no secret middleware), servers transports and middlewares
 * that labels cannot hold are referenced `@file`, and each service has the Docker provider's one container server.
 */
function expectedFromRender(config: DynamicConfig, routes: RouteInput[], labels: DeploymentLabels) {
  const notes = new Set(labels.notExpressible.map((n) => n.what));
  const fileRef = (name: string) => (notes.has(`middleware ${name}`) ? `${name}@file` : name);
  const out = {
    routers: {} as Record<string, unknown>,
    services: {} as Record<string, unknown>,
    middlewares: {} as Record<string, unknown>,
  };
  for (const route of routes) {
    const base = routeName(route);
    const proxyMw = leastCpuMiddlewareName(base);
    for (const [name, router] of Object.entries(config.http.routers)) {
      if (name !== base && !name.startsWith(`${base}--`)) {
        continue;
      }
      const chain = (router.middlewares ?? []).filter((m) => m !== proxyMw);
      const { middlewares: _m, ...rest } = router;
      out.routers[name] = chain.length > 0 ? { ...rest, middlewares: chain.map(fileRef) } : rest;
      for (const m of chain) {
        const def = config.http.middlewares?.[m];
        if (def && !notes.has(`middleware ${m}`)) {
          out.middlewares[m] = def;
        }
      }
    }
    // The routers of a deployment share its service: it is defined once, with the container's one server.
    const serviceName = config.http.routers[base]?.service ?? "";
    const lb = config.http.services[serviceName]?.loadBalancer;
    if (!lb) {
      throw new Error(`no service ${serviceName} for ${base}`);
    }
    if ((config.http.routers[base]?.middlewares ?? []).includes(proxyMw)) {
      expect(notes.has("least-conn balancing")).toBe(true);
    }
    const { serversTransport, ...lbRest } = lb;
    if (serversTransport) {
      expect(notes.has(`serversTransport ${serversTransport}`)).toBe(true);
    }
    out.services[serviceName] = {
      loadBalancer: {
        ...lbRest,
        servers: [{ url: `${route.protocol}://${CONTAINER_IP}:${route.targetPort}` }],
        ...(serversTransport ? { serversTransport: `${serversTransport}@file` } : {}),
      },
    };
  }
  return out;
}
