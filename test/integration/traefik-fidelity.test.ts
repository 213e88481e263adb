import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { routingPath } from "../../src/render/rules.js";
import type { DynamicConfig, Router } from "../../src/render/types.js";
import { type ApiClient, expectInvalid, type Reply } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { PROVIDER_TOKEN } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

// Issue 9 #1, #3, #5 and issue 10 #10, through the API and the served document.

interface Resolution {
  matched: boolean;
  outcome: number;
  serves?: boolean;
  router?: string;
  redirect_to?: string | null;
  deployment_id?: string;
}

/**
 * A small model of Traefik's HTTP routing (traefik v3.7.9 pkg/muxer/http/mux.go): the routers of the request's
 * entry point whose rule matches the routing path, highest priority first. Only the matchers we render are
 * understood (Host, HostRegexp, PathPrefix joined by &&); anything else fails the test.
 */
function traefikWinner(config: DynamicConfig, entryPoint: string, host: string, path: string) {
  const routed = routingPath(path) ?? "";
  const matching: [string, Router][] = [];
  for (const [name, r] of Object.entries(config.http.routers)) {
    if (!r.entryPoints.includes(entryPoint)) {
      continue;
    }
    const ok = r.rule.split(" && ").every((leaf) => {
      const m = /^(Host|HostRegexp|PathPrefix)\(`([^`]*)`\)$/.exec(leaf);
      if (!m?.[2]) {
        throw new Error(`rule not understood by the model: ${r.rule}`);
      }
      const arg = m[2];
      return m[1] === "Host"
        ? host === arg
        : m[1] === "HostRegexp"
          ? new RegExp(arg).test(host)
          : routed.startsWith(arg);
    });
    if (ok) {
      matching.push([name, r]);
    }
  }
  matching.sort((a, b) => b[1].priority - a[1].priority);
  const [first, second] = matching;
  if (first && second && first[1].priority === second[1].priority) {
    throw new Error(`ambiguous: ${first[0]} and ${second[0]} share priority ${first[1].priority}`);
  }
  if (!first) {
    return undefined;
  }
  const [name, router] = first;
  const redirect = (router.middlewares ?? [])
    .map((m) => config.http.middlewares?.[m]?.redirectScheme?.scheme)
    .find((s) => s !== undefined);
  return { name, service: router.service, redirect };
}

/** GET /traefik/config once the re-render a write scheduled is done (stats waits for it, like a poll). */
const servedBy =
  (api: ApiClient) =>
  async (format: "json" | "yaml" = "json"): Promise<Reply> => {
    await api.get("/api/v1/routing/stats");
    const r = await api.get(`/traefik/config?format=${format}`, { token: PROVIDER_TOKEN });
    expect(r.status).toBe(200);
    return r;
  };

describe.each(DRIVERS)("Traefik fidelity through the API on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;

  describe("alone in its database", () => {
    // Deleting the last deployment needs a database with no other: a server of its own.
    const { api } = useApiServer(driver);
    const served = servedBy(api);

    it("deleting the last deployment removes it from Traefik (the served body becomes {})", async () => {
      expect((await api.post("/api/v1/deployments", { id: "dep_last", name: "last" })).status).toBe(201);
      const put = await api.put("/api/v1/deployments/dep_last/routing", {
        domain: "last.example.com",
        target_port: 80,
      });
      expect(put.status).toBe(200);
      const before = await served();
      expect(traefikSchemaErrors(before.body)).toEqual([]);
      expect(Object.keys((before.body as unknown as DynamicConfig).http.routers).length).toBeGreaterThan(0);

      expect((await api.delete("/api/v1/deployments/dep_last")).status).toBe(204);
      const after = await served();
      // Before: {"http":{"routers":{},"services":{}}}, which Traefik rejects whole, keeping the deleted route live.
      expect(after.text).toBe("{}\n");
      expect(traefikSchemaErrors(after.text, { allowEmpty: true })).toEqual([]);
      const yaml = await served("yaml");
      expect(yaml.text).toBe("{}\n");
      expect(parseYaml(yaml.text)).toEqual({});
    });
  });

  it("stores path prefixes the way Traefik compares them, and refuses what cannot match", async () => {
    expect((await api.post("/api/v1/deployments", { id: "dep_path", name: "path" })).status).toBe(201);
    const add = (path_prefix: string) =>
      api.post<{ route: { path_prefix: string } }>("/api/v1/deployments/dep_path/domains", {
        domain: "path.example.com",
        path_prefix,
        target_port: 80,
        ssl_enabled: false,
      });
    const cafe = await add("/caf%41");
    expect(cafe.status).toBe(201);
    expect(cafe.body.route.path_prefix).toBe("/cafA");
    const slash = await add("/x%2fy");
    expect(slash.status).toBe(201);
    expect(slash.body.route.path_prefix).toBe("/x%2Fy");
    const space = expectInvalid(await add("/a%20b"), "body.path_prefix");
    expect(space.errors?.[0]?.message).toMatch(/Traefik compares decoded/);

    const resolve = await api.get<Resolution>("/api/v1/routing/resolve?host=path.example.com&path=/caf%2541/menu");
    expect(resolve.body).toMatchObject({ matched: true, deployment_id: "dep_path", serves: true });
    const { config } = await api.traefikConfig();
    expect(Object.values(config.http.routers).map((r) => r.rule)).toContain(
      "Host(`path.example.com`) && PathPrefix(`/cafA`)",
    );
    expect((await api.delete("/api/v1/deployments/dep_path")).status).toBe(204);
  });

  it("answers every scheme, host and path with the route resolve names, never another deployment", async () => {
    const create = async (id: string, routing: Record<string, unknown>) => {
      expect((await api.post("/api/v1/deployments", { id, name: id })).status).toBe(201);
      expect((await api.put(`/api/v1/deployments/${id}/routing`, { target_port: 80, ...routing })).status).toBe(200);
    };
    await create("dep_wild", { domain: "*.apps.example.com", ssl_enabled: true });
    await create("dep_a", { domain: "a.apps.example.com", ssl_enabled: false });
    await create("dep_shop", { domain: "shop.example.com", ssl_enabled: true });
    const api2 = await api.post("/api/v1/deployments/dep_shop/domains", {
      domain: "shop.example.com",
      path_prefix: "/api",
      ssl_enabled: false,
    });
    expect(api2.status).toBe(201);

    const { config } = await api.traefikConfig(); // schema + semantics, including the HTTPS fall-through hazard
    const hosts = ["a.apps.example.com", "b.apps.example.com", "apps.example.com", "shop.example.com", "x.example.com"];
    const paths = ["/", "/api", "/api/v1", "/apix", "/other"];
    let checked = 0;
    for (const host of hosts) {
      for (const path of paths) {
        const onHttp = traefikWinner(config, "web", host, path);
        for (const scheme of ["http", "https"] as const) {
          const want = traefikWinner(config, scheme === "https" ? "websecure" : "web", host, path);
          const r = await api.get<Resolution>(`/api/v1/routing/resolve?host=${host}&path=${path}&scheme=${scheme}`);
          expect(r.status).toBe(200);
          const where = `${scheme}://${host}${path}`;
          if (!want) {
            expect({ where, matched: r.body.matched, outcome: r.body.outcome }).toEqual({
              where,
              matched: false,
              outcome: 404,
            });
            continue;
          }
          // Same service on both schemes: HTTPS never falls through to another deployment.
          expect({ where, service: want.service }).toEqual({ where, service: onHttp?.service });
          expect({ where, router: r.body.router, serves: r.body.serves }).toEqual({
            where,
            router: want.name,
            serves: want.redirect === undefined,
          });
          if (want.redirect) {
            expect(r.body.redirect_to).toBe(`${want.redirect}://${host}${path}`);
            expect(r.body.outcome).toBe(want.redirect === "https" ? 301 : 302);
          }
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
    // The cases of issue 9 #3, spelled out.
    const a = await api.get<Resolution>("/api/v1/routing/resolve?host=a.apps.example.com&scheme=https");
    expect(a.body).toMatchObject({ deployment_id: "dep_a", serves: false, redirect_to: "http://a.apps.example.com/" });
    const shopApi = await api.get<Resolution>("/api/v1/routing/resolve?host=shop.example.com&path=/api&scheme=https");
    expect(shopApi.body).toMatchObject({ serves: false, redirect_to: "http://shop.example.com/api" });
    expect((await api.get("/api/v1/routing/resolve?host=a.example.com&scheme=ftp")).status).toBe(400);
  });
});

describe.each(DRIVERS)("GET /traefik/config without PROVIDER_TOKEN on %s", (driver) => {
  const srv = useApiServer(driver, { PROVIDER_TOKEN: "" });
  const { api } = srv;
  beforeAll(async () => {
    await srv.seedDeployment("dep_s", { domain: "s.example.com", target_port: 80 });
  });

  const anonymous = async () => {
    await api.get("/api/v1/routing/stats"); // waits for the pending re-render
    return api.get("/traefik/config", { token: null });
  };

  it.each([
    ["basic auth", { basic_auth: { users: [{ username: "carol", password: "carol-password-1" }] } }],
    ["custom request headers", { headers: { request: { "X-Api-Key": "sk_live_0123456789" } } }],
    ["custom response headers", { headers: { response: { "X-Internal-Token": "t0k3n-0123456789" } } }],
  ])("does not serve a config with %s to an anonymous client", async (_what, middlewares) => {
    expect((await api.put("/api/v1/deployments/dep_s/middlewares", {})).status).toBe(200);
    const open = await anonymous();
    expect(open.status).toBe(200);
    expect(traefikSchemaErrors(open.body)).toEqual([]);

    expect((await api.put("/api/v1/deployments/dep_s/middlewares", middlewares)).status).toBe(200);
    const closed = await anonymous();
    expect(closed.status).toBe(401);
    expect(closed.text).not.toMatch(/sk_live|t0k3n|carol/);
  });
});
