import { describe, expect, it } from "vitest";
import { REDIRECT_TO_HTTP, REDIRECT_TO_HTTPS } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import type { HttpConfig } from "../../src/render/types.js";
import { renderedFor } from "../../src/ui/pages/deployments.js";
import { type EventJson, newestEvents } from "../../src/ui/pages/events.js";
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
    expect(own.every((n) => n.split("/")[1]?.startsWith("dep-a--"))).toBe(true);
    expect(Object.keys(a.middlewares ?? {}).sort()).toEqual(
      ["dep-a--rate-limit", "dep-a--rt-2--strip-prefix", REDIRECT_TO_HTTP, REDIRECT_TO_HTTPS].sort(),
    );
    // rt_1 and its plain-HTTP redirect twin, rt_2 and its TLS entry point twin
    expect(Object.keys(a.routers ?? {}).sort()).toEqual(
      ["dep-a--rt-1", "dep-a--rt-1--to-https", "dep-a--rt-2", "dep-a--rt-2--to-http"].sort(),
    );
    expect(Object.keys(a.services ?? {})).toHaveLength(2);
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
    expect(own.every((n) => n.includes("/dep-a-b--"))).toBe(true);
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

describe("newestEvents: the newest page over an oldest-first API", () => {
  /** A fake GET /api/v1/events over ids with gaps (sequences skip on rollback), counting the calls. */
  const fakeApi = (ids: number[]) => {
    const events: EventJson[] = ids.map((id) => ({
      id,
      at: new Date(id * 1000).toISOString(),
      type: id % 7 === 0 ? "guard.held" : "config.revision",
      deployment_id: null,
      subject: null,
      data: {},
    }));
    const ui = {
      calls: 0,
      async api<T>(_method: string, path: string) {
        ui.calls++;
        const q = new URL(path, "http://x").searchParams;
        const after = Number(q.get("after") ?? 0);
        const limit = Number(q.get("limit") ?? 100);
        const type = q.get("type");
        const items = events.filter((e) => e.id > after && (!type || e.type === type)).slice(0, limit);
        return { status: 200, body: { items, next_after: null } as T };
      },
    };
    return ui;
  };

  it("finds the newest events, newest first, in a bounded number of reads", async () => {
    const ids = Array.from({ length: 30_000 }, (_, i) => i * 3 + 5); // 5 … 89 002
    const ui = fakeApi(ids);
    const got = await newestEvents(ui, {}, 50);
    expect(got.items.map((e) => e.id)).toEqual(ids.slice(-50).reverse());
    expect(ui.calls).toBeLessThan(50);
  });

  it("applies the type filter, and copes with few or no events", async () => {
    const ids = Array.from({ length: 3000 }, (_, i) => i + 1);
    const held = await newestEvents(fakeApi(ids), { type: "guard.held" }, 50);
    expect(held.items.map((e) => e.id)).toEqual(
      ids
        .filter((i) => i % 7 === 0)
        .slice(-50)
        .reverse(),
    );
    expect((await newestEvents(fakeApi([42]), {}, 50)).items.map((e) => e.id)).toEqual([42]);
    expect((await newestEvents(fakeApi([]), {}, 50)).items).toEqual([]);
  });

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
