import { describe, expect, it } from "vitest";
import { canonical } from "../../src/render/canonical.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { toJson } from "../../src/render/serialize.js";
import type { RenderInput, RenderSettings, ReplicaInput, RouteInput } from "../../src/render/types.js";
import { prng } from "../fixtures/hostile-inputs.js";
import { aReplica, aRoute, settings, shuffled } from "../fixtures/rows.js";
import { makeCert } from "../helpers/certs.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

// Every traffic-management feature at once, on many deployments drawn at random: whatever mix a platform ends up
// with, the document must be one Traefik accepts (schema + Traefik v3.7.9's semantics), canonical, and the same
// bytes for the same rows in any order.

const CA = makeCert({ sans: ["backend.internal"], cn: "backend CA" }).certPem;
const HEALTH: RenderSettings["traefikHealthCheck"] = { path: "/health", intervalSeconds: 10, timeoutSeconds: 3 };

const pick = <T>(rnd: () => number, items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;

function platform(seed: number): RenderInput & { settings: RenderSettings } {
  const rnd = prng(seed);
  const routes: RouteInput[] = [];
  const replicas: ReplicaInput[] = [];
  const traffic = new Map<string, unknown>();
  for (let d = 0; d < 40; d++) {
    const dep = `dep_${d}`;
    const protocol = pick(rnd, ["http", "https", "h2c"] as const);
    const algo = pick(rnd, ["round-robin", "ip-hash", "round-robin", "least-conn"] as const);
    for (const [i, path] of ["/", "/api"].entries()) {
      if (i === 1 && rnd() < 0.5) {
        continue;
      }
      const wildcard = rnd() < 0.2;
      routes.push(
        aRoute({
          id: `rt_${d}_${i}`,
          deploymentId: dep,
          domain: wildcard ? `*.apps${d}.example.com` : `app${d}.example.com`,
          sslCertResolver: wildcard ? "letsencrypt-dns" : "letsencrypt", // wildcards need DNS-01
          pathPrefix: path,
          protocol,
          loadBalancerAlgo: algo,
          sslEnabled: rnd() < 0.7,
          backendTls:
            protocol === "https" && rnd() < 0.5
              ? { serverName: "backend.internal", caPem: CA, insecureSkipVerify: false }
              : null,
        }),
      );
    }
    for (let r = 0; r < 4; r++) {
      replicas.push({
        ...aReplica({
          id: `loc_${d}_${r}`,
          deploymentId: dep,
          address: `10.${d}.0.${r + 1}`,
          healthStatus: rnd() < 0.75 ? "healthy" : "unhealthy",
        }),
        track: r === 3 ? "canary" : "stable",
        region: pick(rnd, ["eu", "us", null]),
      });
    }
    const leastConn = algo === "least-conn";
    const kind = leastConn ? "none" : pick(rnd, ["none", "split", "geo"] as const);
    const split =
      kind === "split"
        ? {
            weights: { stable: 90, canary: pick(rnd, [0, 10, 50]) },
            ...(rnd() < 0.5 ? { sticky: { secure: rnd() < 0.5 } } : {}),
            ...(rnd() < 0.5 ? { rules: [{ match: { header: "X-Variant", value: "b" }, track: "canary" }] } : {}),
            ...(rnd() < 0.3 ? { mirror: { track: "canary", percent: 10 } } : {}),
          }
        : null;
    const geo =
      kind === "geo"
        ? { header: "CF-IPCountry", regions: { eu: ["DE", "FR"], us: ["US"] }, failover: { eu: ["us"] }, default: "eu" }
        : null;
    const resilience =
      rnd() < 0.5
        ? {
            retry: { attempts: 3, initial_interval_ms: 100 },
            ...(rnd() < 0.5 ? { circuit_breaker: { expression: "NetworkErrorRatio() > 0.3" } } : {}),
            ...(rnd() < 0.5 ? { max_in_flight: { amount: 50, per: "host" } } : {}),
            ...(rnd() < 0.5 ? { timeouts: { dial_ms: 2000, response_header_ms: 30_000 } } : {}),
            ...(rnd() < 0.5 ? { passive_health: { failure_window_seconds: 10, max_failed_attempts: 3 } } : {}),
          }
        : null;
    traffic.set(dep, { split, geo, resilience });
  }
  return {
    routes,
    replicas,
    traffic,
    settings: {
      ...settings,
      fallbackProxy: { url: "http://10.9.9.9:8081", secret: "a-fallback-proxy-secret-0123456789" },
      ...(seed % 2 === 0 ? { traefikHealthCheck: HEALTH } : {}),
    },
  };
}

describe("every traffic-management feature on one platform", () => {
  it.each([1, 2, 3, 4, 5, 6])(
    "renders a document Traefik accepts, canonical and order-independent (seed %i)",
    (seed) => {
      const input = platform(seed);
      const { config, warnings } = renderDynamicConfig(input);
      expect(warnings.filter((w) => w.kind === "route")).toEqual([]); // every generated row is valid
      expect(traefikSchemaErrors(config)).toEqual([]);
      const bytes = toJson(config);
      expect(bytes).toBe(toJson(canonical(config)));
      const again = renderDynamicConfig({
        ...input,
        routes: shuffled(input.routes, seed),
        replicas: shuffled(input.replicas, seed + 1),
        traffic: new Map(shuffled([...(input.traffic ?? new Map())], seed + 2)),
      });
      expect(toJson(again.config)).toBe(bytes);
      // The mix really holds every kind of service and middleware the features render.
      const services = Object.values(config.http?.services ?? {});
      const kinds = new Set(services.flatMap((s) => Object.keys(s)));
      expect([...kinds].sort()).toEqual(expect.arrayContaining(["loadBalancer", "weighted"]));
    },
  );
});
