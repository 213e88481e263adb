import { describe, expect, it } from "vitest";
import { deploymentServiceName, REDIRECT_TO_HTTP, REDIRECT_TO_HTTPS } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import type { HttpConfig } from "../../src/render/types.js";
import { renderedFor } from "../../src/ui/pages/deployments.js";
import { newestEvents } from "../../src/ui/pages/events.js";
import { aReplica, aRoute, routed, settings } from "../fixtures/rows.js";

describe("renderedFor: the part of the served config one deployment owns", () => {
  // dep_a and dep_a_b: slugs `dep-a` and `dep-a-b`, one a prefix of the other.
  const routes = [
    aRoute({ id: "rt_1", deploymentId: "dep_a", domain: "a.example.com", sslEnabled: true }),
    aRoute({ id: "rt_2", deploymentId: "dep_a", domain: "a.example.com", pathPrefix: "/api" }),
    aRoute({ id: "rt_3", deploymentId: "dep_a_b", domain: "ab.example.com", sslEnabled: true }),
    aRoute({ id: "rt_4", deploymentId: "dep_b", domain: "b.example.com" }),
  ];
  const { config } = routed(
    renderDynamicConfig({
      routes,
      replicas: [aReplica({ deploymentId: "dep_a" }), aReplica({ id: "loc_2", deploymentId: "dep_a_b" })],
      settings,
      middlewares: new Map<string, unknown>([
        ["dep_a", { rate_limit: { average: 10 }, strip_prefix: true }],
        ["dep_a_b", { rate_limit: { average: 20 }, compress: {} }],
      ]),
    }),
  );
  const http = config.http;
  const names = (part: Partial<HttpConfig>) =>
    Object.entries(part).flatMap(([section, map]) => Object.keys(map ?? {}).map((n) => `${section}/${n}`));

  it("keeps the deployment's own routers, services and middlewares, and the shared ones its routers use", () => {
    const a = renderedFor(http, "dep_a");
    const own = names(a).filter((n) => !n.endsWith(`/${REDIRECT_TO_HTTPS}`) && !n.endsWith(`/${REDIRECT_TO_HTTP}`));
    expect(own.length).toBeGreaterThan(4);
    // Its one service is named after it; everything else starts with `dep-a--`.
    expect(own.every((n) => n === "services/dep-a" || n.split("/")[1]?.startsWith("dep-a--"))).toBe(true);
    expect(Object.keys(a.middlewares ?? {}).sort()).toEqual(
      ["dep-a--rate-limit", "dep-a--rt-2--strip-prefix", REDIRECT_TO_HTTP, REDIRECT_TO_HTTPS].sort(),
    );
    // rt_1 and its plain-HTTP redirect twin, rt_2 and its TLS entry point twin
    expect(Object.keys(a.routers ?? {}).sort()).toEqual(
      ["dep-a--rt-1", "dep-a--rt-1--to-https", "dep-a--rt-2", "dep-a--rt-2--to-http"].sort(),
    );
    // Both routes, all four routers, one service.
    expect(Object.keys(a.services ?? {})).toEqual([deploymentServiceName("dep_a")]);
    for (const r of Object.values(a.routers ?? {})) {
      expect(r.service).toBe(deploymentServiceName("dep_a"));
    }
    // Every middleware a kept router names is in the part shown, so the JSON stands on its own.
    for (const r of Object.values(a.routers ?? {})) {
      for (const m of r.middlewares ?? []) {
        expect(a.middlewares).toHaveProperty([m]);
      }
    }
  });

  it("never mixes in a deployment whose slug extends this one's (dep_a vs dep_a_b)", () => {
    const ab = renderedFor(http, "dep_a_b");
    const own = names(ab).filter((n) => !n.includes("/obiente-"));
    expect(own.length).toBeGreaterThan(3);
    expect(own.every((n) => n === "services/dep-a-b" || n.includes("/dep-a-b--"))).toBe(true);
    expect(names(renderedFor(http, "dep_a")).some((n) => n.includes("dep-a-b"))).toBe(false);
  });

  it("splits the whole config: each router and service belongs to exactly one deployment", () => {
    const parts = ["dep_a", "dep_a_b", "dep_b"].map((d) => renderedFor(http, d));
    const routers = parts.flatMap((p) => Object.keys(p.routers ?? {}));
    const services = parts.flatMap((p) => Object.keys(p.services ?? {}));
    expect(routers.sort()).toEqual(Object.keys(http.routers).sort());
    expect(services.sort()).toEqual(Object.keys(http.services).sort());
    expect(renderedFor(http, "dep_nobody")).toEqual({});
    expect(renderedFor(undefined, "dep_a")).toEqual({});
  });
});

describe("newestEvents: the newest page (GET /api/v1/events?order=desc)", () => {
  it("passes an API refusal on", async () => {
    const ui = {
      api: async <T>() => ({ status: 400, body: { code: "VALIDATION_FAILED" } as T }),
    };
    expect(await newestEvents(ui, { deployment_id: "Bad Id" }, 50)).toEqual({
      status: 400,
      body: { code: "VALIDATION_FAILED" },
      items: [],
    });
  });
});
