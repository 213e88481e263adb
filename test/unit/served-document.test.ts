import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { DocumentState } from "../../src/provider/served-document.js";
import { fastParts } from "../../src/render/fast-fragment.js";
import { fragmentOf, genericFragmentOf } from "../../src/render/fragments.js";
import { deploymentsOf, renderContext, renderDynamicConfig } from "../../src/render/render.js";
import { toJson } from "../../src/render/serialize.js";
import type { RenderSettings, ReplicaInput, RouteInput, TlsCertificateInput } from "../../src/render/types.js";
import { prng } from "../fixtures/hostile-inputs.js";
import { aReplica, aRoute, settings as baseSettings } from "../fixtures/rows.js";
import { makeCert } from "../helpers/certs.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

// The incremental document must serve exactly what the reference render serves: after every change, the joined
// bytes equal toJson(renderDynamicConfig(rows)), the gzip members inflate to them, and the hash equals the hash of
// a document built from scratch (so it changes exactly when the bytes do).

const pick = <T>(rnd: () => number, items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;

/** Ids chosen to stress name order: prefixes of each other, digits only, and names next to the shared ones. */
const IDS = [
  "a",
  "a_b",
  "a1",
  "ab",
  "b",
  "42",
  "7",
  "obiente",
  "obiente_redirect_to_http",
  "obiente_redirect_to_https",
  "z_z_z",
  "dep_1",
  "dep_10",
  "dep_2",
];

interface Deployment {
  routes: RouteInput[];
  replicas: ReplicaInput[];
  middlewares?: unknown;
  traffic?: unknown;
}

type Platform = Map<string, Deployment>;

function randomDeployment(rnd: () => number, id: string, n: number): Deployment {
  const protocol = pick(rnd, ["http", "http", "https", "h2c"] as const);
  const algo = pick(rnd, ["round-robin", "ip-hash", "least-conn"] as const);
  const port = pick(rnd, [3000, 8080]);
  const routes: RouteInput[] = [];
  const paths = ["/", "/api", "/v2"].filter((_, i) => i === 0 || rnd() < 0.4);
  for (const [i, pathPrefix] of paths.entries()) {
    const wildcard = rnd() < 0.15;
    routes.push(
      aRoute({
        id: `rt_${id}_${n}_${i}`,
        deploymentId: id,
        domain: wildcard
          ? `*.w${n}${id.replaceAll("_", "")}.example.com`
          : `${id.replaceAll("_", "-")}-${n}.example.com`,
        sslCertResolver: wildcard ? "letsencrypt-dns" : "letsencrypt", // wildcards need DNS-01
        pathPrefix,
        protocol,
        loadBalancerAlgo: algo,
        targetPort: rnd() < 0.05 ? port + 1 : port, // rows disagreeing on the port: a second service
        sslEnabled: rnd() < 0.6,
      }),
    );
  }
  if (rnd() < 0.05) {
    routes.push(aRoute({ id: `rt_${id}_bad`, deploymentId: id, domain: "bad domain", pathPrefix: "/" })); // a warning
  }
  const replicas: ReplicaInput[] = [];
  for (let r = 0; r < 1 + Math.floor(rnd() * 3); r++) {
    replicas.push({
      ...aReplica({
        id: `loc_${id}_${n}_${r}`,
        deploymentId: id,
        address: `10.${n % 250}.${r}.${1 + Math.floor(rnd() * 200)}`,
        healthStatus: rnd() < 0.7 ? "healthy" : "unhealthy",
      }),
      track: rnd() < 0.8 ? "stable" : "canary",
      region: pick(rnd, ["eu", "us", null]),
    });
  }
  const d: Deployment = { routes, replicas };
  const roll = rnd();
  if (roll < 0.2) {
    d.middlewares = { strip_prefix: true, rate_limit: { average: 10 + n, burst: 5 } };
  } else if (roll < 0.25) {
    d.middlewares = { basic_auth: { users: ["not a valid entry"] } }; // invalid: the routes are left out
  }
  if (algo !== "least-conn") {
    const t = rnd();
    if (t < 0.2) {
      d.traffic = { split: { weights: { stable: 90, canary: 10 }, ...(rnd() < 0.5 ? { sticky: {} } : {}) } };
    } else if (t < 0.3) {
      d.traffic = {
        geo: { header: "CF-IPCountry", regions: { eu: ["DE"], us: ["US"] }, failover: { eu: ["us"] }, default: "eu" },
      };
    } else if (t < 0.4) {
      d.traffic = { resilience: { retry: { attempts: 2, initial_interval_ms: 50 } } };
    } else if (t < 0.43) {
      d.traffic = { split: { weights: "not weights" } }; // invalid: the routes are left out
    }
  }
  return d;
}

function inputOf(platform: Platform, settings: RenderSettings, certificates: TlsCertificateInput[]) {
  const all = [...platform.values()];
  const middlewares = new Map<string, unknown>();
  const traffic = new Map<string, unknown>();
  for (const [id, d] of platform) {
    if (d.middlewares !== undefined) {
      middlewares.set(id, d.middlewares);
    }
    if (d.traffic !== undefined) {
      traffic.set(id, d.traffic);
    }
  }
  return {
    routes: all.flatMap((d) => d.routes),
    replicas: all.flatMap((d) => d.replicas),
    middlewares,
    traffic,
    certificates,
    settings,
  };
}

/** A random change to one deployment: health flips, a new route, a port, settings, or the deployment goes. */
function mutate(rnd: () => number, platform: Platform, id: string, n: number): void {
  const d = platform.get(id);
  const roll = rnd();
  if (!d || roll < 0.15) {
    platform.set(id, randomDeployment(rnd, id, n));
    return;
  }
  if (roll < 0.25) {
    platform.delete(id);
  } else if (roll < 0.55) {
    for (const r of d.replicas) {
      if (rnd() < 0.5) {
        r.healthStatus = r.healthStatus === "healthy" ? "unhealthy" : "healthy";
      }
    }
  } else if (roll < 0.65) {
    d.routes = d.routes.map((r) => ({ ...r, targetPort: r.targetPort + 1 }));
  } else if (roll < 0.75) {
    d.routes = d.routes.slice(0, Math.max(0, d.routes.length - 1));
  } else if (roll < 0.85) {
    d.routes = d.routes.map((r) => ({ ...r, sslEnabled: !r.sslEnabled }));
  } else if (roll < 0.92) {
    d.middlewares = d.middlewares === undefined ? { strip_prefix: true } : undefined;
  } else {
    d.replicas = d.replicas.filter(() => rnd() < 0.5);
  }
}

/** Where two documents part, with some context ("" when equal): a 40 KB diff says little. */
function firstDifference(got: string, want: string): string {
  if (got === want) {
    return "";
  }
  let i = 0;
  while (got[i] === want[i]) {
    i++;
  }
  return `at ${i}: got …${got.slice(i - 120, i + 120)}… want …${want.slice(i - 120, i + 120)}…`;
}

/**
 * A deployment of the common shape (no stored settings, valid rows), with the variations that shape's text path
 * writes by hand: TLS on/off, wildcards with and without the apex, path prefixes, IPv6 and DNS replica addresses,
 * ports null or set, duplicate replica URLs, stopped, canary and unhealthy replicas, health overrides, several
 * routes; now and then something outside the shape (a bad row, rows disagreeing on the port, backend TLS).
 */
function plainDeployment(rnd: () => number, id: string, n: number): Deployment {
  const protocol = pick(rnd, ["http", "http", "http", "h2c", "https"] as const);
  const algo = pick(rnd, ["round-robin", "round-robin", "ip-hash", "least-conn"] as const);
  const port = pick(rnd, [3000, 8080, 80]);
  const health =
    rnd() < 0.2
      ? {
          healthPath: pick(rnd, ["/healthz", "/ready?x=1", "/{{bad}}"]),
          healthIntervalSeconds: pick(rnd, [null, 5]),
          healthTimeoutSeconds: pick(rnd, [null, 2]),
          healthMode: pick(rnd, [null, "http", "grpc"] as const),
          healthExpectedStatus: pick(rnd, [null, "204", "2xx"]),
        }
      : {};
  const routes: RouteInput[] = [];
  const count = rnd() < 0.8 ? 1 : 2 + Math.floor(rnd() * 2);
  for (let i = 0; i < count; i++) {
    const wildcard = rnd() < 0.2;
    routes.push(
      aRoute({
        id: `rt_${n}_${i}_${Math.floor(rnd() * 50)}`, // random ids: rows are not in name order
        deploymentId: id,
        domain: wildcard ? `*.w${n}-${i}.example.com` : pick(rnd, [`app${n}-${i}.example.com`, `x${i}.example.org`]),
        sslCertResolver: wildcard ? "letsencrypt-dns" : pick(rnd, ["letsencrypt", "le.staging_2"]),
        tlsIncludeApex: wildcard && rnd() < 0.5,
        pathPrefix: pick(rnd, ["/", "/", "/api", "/v2/items", "/a%20b"]),
        protocol,
        loadBalancerAlgo: algo,
        targetPort: rnd() < 0.03 ? port + 1 : port,
        sslEnabled: rnd() < 0.6,
        ...(protocol === "https" && rnd() < 0.3
          ? {
              backendTls: {
                serverName: rnd() < 0.5 ? "internal.example" : null,
                caPem: null,
                insecureSkipVerify: false,
              },
            }
          : {}),
        ...health,
      }),
    );
  }
  if (rnd() < 0.03) {
    routes.push(aRoute({ id: `rt_${n}_bad`, deploymentId: id, domain: "bad domain" }));
  }
  const replicas: ReplicaInput[] = [];
  const allDown = rnd() < 0.15;
  for (let r = 0; r < Math.floor(rnd() * 4); r++) {
    const address = pick(rnd, [`10.${n % 250}.0.${1 + (r % 2)}`, `fd00::${n % 250}:${r % 2}`, `app-${r % 2}.internal`]);
    replicas.push({
      ...aReplica({
        id: `loc_${n}_${r}`,
        deploymentId: id,
        address: rnd() < 0.02 ? "169.254.169.254" : address, // metadata address: a warning
        port: pick(rnd, [null, 20_000, 20_001]),
        status: rnd() < 0.9 ? "running" : "stopped",
        healthStatus: allDown || rnd() < 0.1 ? "unhealthy" : "healthy",
      }),
      ...(rnd() < 0.1 ? { track: "canary" } : {}),
    });
  }
  return { routes, replicas };
}

const FALLBACK = { url: "http://10.9.9.9:8081", secret: "a-fallback-proxy-secret-0123456789" };

describe("incremental document", () => {
  it.each([
    [1, 2],
    [2, 3],
    [3, 1],
    [4, 5],
    [5, 2],
    [6, 64],
  ])(
    "serves the reference bytes after every change of a random change sequence (seed %i, a block per ~%i deployments)",
    (seed, blockEvery) => {
      const rnd = prng(seed);
      const settings: RenderSettings = {
        ...baseSettings,
        fallbackProxy: FALLBACK,
        ...(seed % 2 === 0 ? { traefikHealthCheck: { path: "/health", intervalSeconds: 10, timeoutSeconds: 3 } } : {}),
      };
      const certificates = seed % 3 === 0 ? [{ id: "crt_1", ...makeCert({ sans: ["*.example.com"] }) }] : [];
      const platform: Platform = new Map();
      for (const [n, id] of IDS.entries()) {
        if (rnd() < 0.7) {
          platform.set(id, randomDeployment(rnd, id, n));
        }
      }
      const ctx = renderContext(settings, certificates);
      const fresh = () =>
        DocumentState.build(ctx, deploymentsOf(inputOf(platform, settings, certificates)), blockEvery);
      const doc = fresh();
      let prev = { json: "", hash: "" };
      for (let step = 0; step < 60; step++) {
        const touched = new Set<string>();
        for (let k = 0; k < 1 + Math.floor(rnd() * 3); k++) {
          const id = pick(rnd, IDS);
          mutate(rnd, platform, id, step * 10 + k);
          touched.add(id);
        }
        const input = inputOf(platform, settings, certificates);
        doc.apply(
          touched,
          deploymentsOf({
            ...input,
            routes: input.routes.filter((r) => touched.has(r.deploymentId)),
            replicas: input.replicas.filter((r) => touched.has(r.deploymentId)),
          }),
        );
        const got = doc.assemble();
        const reference = renderDynamicConfig(input);
        const want = toJson(reference.config);
        const json = got.json().toString("utf8");
        expect(firstDifference(json, want), `step ${step}, after changing ${[...touched]}`).toBe("");
        expect(gunzipSync(got.gzip()).toString("utf8")).toBe(want);
        expect(got.hash).toBe(fresh().assemble().hash);
        expect(got.hash === prev.hash).toBe(json === prev.json);
        expect(got.warnings).toEqual(reference.warnings);
        expect(got.hasSecrets).toBe(reference.hasSecrets);
        expect(got.routers).toBe(Object.keys(reference.config.http?.routers ?? {}).length);
        expect(got.services).toBe(Object.keys(reference.config.http?.services ?? {}).length);
        expect(doc.conflict).toBe(false);
        prev = { json, hash: got.hash };
      }
      expect(traefikSchemaErrors(JSON.parse(prev.json))).toEqual([]);
    },
  );

  it.each([1, 2, 3, 4, 5, 6, 7, 8])(
    "serves the reference bytes for a platform of plain deployments and after changes to them (seed %i)",
    (seed) => {
      const rnd = prng(1000 + seed);
      const settings: RenderSettings = {
        ...baseSettings,
        ...(seed % 2 === 0 ? { traefikHealthCheck: { path: "/health", intervalSeconds: 10, timeoutSeconds: 3 } } : {}),
        ...(seed % 4 === 1
          ? { traefikHealthCheck: { path: "/up", intervalSeconds: 7, timeoutSeconds: 2, expectedStatus: "204" } }
          : {}),
        ...(seed % 3 === 0
          ? { entryPoints: { web: "http-in", websecure: "https-in" }, noReplicaUrl: "http://[::1]:9" }
          : {}),
        ...(seed % 5 === 0 ? { fallbackProxy: FALLBACK } : {}),
      };
      const certificates = seed % 3 === 1 ? [{ id: "crt_1", ...makeCert({ sans: ["*.example.org"] }) }] : [];
      const platform: Platform = new Map();
      const ids = Array.from({ length: 120 }, (_, i) => (i % 17 === 0 ? `${i}` : `dep_${i}`));
      for (const [n, id] of ids.entries()) {
        platform.set(id, plainDeployment(rnd, id, n));
      }
      const ctx = renderContext(settings, certificates);
      const deployments = () => deploymentsOf(inputOf(platform, settings, certificates));
      let fast = 0;
      for (const dep of deployments()) {
        const key = `k_${dep.id}`;
        expect(fragmentOf(dep, key, ctx), dep.id).toEqual(genericFragmentOf(dep, key, ctx));
        fast += fastParts(dep, ctx) ? 1 : 0;
      }
      expect(fast).toBeGreaterThan(ids.length / 3); // the text path is what this test exercises
      const doc = DocumentState.build(ctx, deployments(), 8);
      for (let step = 0; step < 20; step++) {
        if (step > 0) {
          const touched = new Set<string>();
          for (let k = 0; k < 1 + Math.floor(rnd() * 5); k++) {
            const id = pick(rnd, ids);
            if (rnd() < 0.5) {
              platform.set(id, plainDeployment(rnd, id, 1000 + step * 10 + k));
            } else {
              mutate(rnd, platform, id, 1000 + step * 10 + k);
            }
            touched.add(id);
          }
          doc.apply(
            touched,
            deployments().filter((d) => touched.has(d.id)),
          );
        }
        const input = inputOf(platform, settings, certificates);
        const reference = renderDynamicConfig(input);
        const want = toJson(reference.config);
        expect(firstDifference(doc.assemble().json().toString("utf8"), want), `step ${step}`).toBe("");
        expect(doc.assemble().warnings).toEqual(reference.warnings);
        expect(doc.assemble().hasSecrets).toBe(reference.hasSecrets);
      }
    },
  );

  it("serves `{}` when the last routed deployment goes, and the full document again when it comes back", () => {
    const ctx = renderContext(baseSettings, []);
    const dep = { id: "dep_a", routes: [aRoute()], replicas: [aReplica()] };
    const doc = DocumentState.build(ctx, [dep]);
    const full = doc.assemble().json().toString();
    doc.apply(["dep_a"], []);
    expect(doc.assemble().json().toString()).toBe("{}\n");
    doc.apply(["dep_a"], [dep]);
    expect(doc.assemble().json().toString()).toBe(full);
  });
});
