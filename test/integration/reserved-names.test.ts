import { describe, expect, it } from "vitest";
import type { RouteJson, RoutingJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { DRIVERS } from "../helpers/db.js";

const YAML = { "content-type": "application/yaml" };

describe.each(DRIVERS)("routes on reserved names (.localhost, .test, .internal, .local) on %s", (driver) => {
  const srv = useApiServer(driver, {}, { inProcess: true });
  const { api } = srv;
  const sslOf = async (id: string) => (await api.get<RoutingJson>(`/api/v1/deployments/${id}/routing`)).body;
  const addDomain = async (id: string, body: Record<string, unknown>) => {
    const r = await api.post<{ route: RouteJson }>(`/api/v1/deployments/${id}/domains`, body);
    expect(r.status).toBe(201);
    return r.body.route.ssl_enabled;
  };

  it("a local try-out gets plain HTTP: no TLS router, so Traefik never asks Let's Encrypt", async () => {
    await srv.seedDeployment("dep_local", { domain: "shop.localhost", target_port: 3000 });
    expect((await sslOf("dep_local")).ssl_enabled).toBe(false);
    const { config } = await api.traefikConfig(); // also checked against Traefik's schema
    const routers = Object.values(config.http?.routers ?? {}).filter((r) => r.rule.includes("shop.localhost"));
    expect(routers.length).toBeGreaterThan(0);
    // Only an https→http redirect may carry `tls` (Traefik's default certificate): no resolver, so no ACME order.
    expect(routers.filter((r) => r.tls?.certResolver !== undefined)).toEqual([]);
    expect(routers.some((r) => r.tls === undefined && r.entryPoints?.includes("web"))).toBe(true);

    expect(await addDomain("dep_local", { domain: "shop.test" })).toBe(false);
    // The primary's plain HTTP came from its reserved name: a public name does not inherit it.
    expect(await addDomain("dep_local", { domain: "shop.example.com" })).toBe(true);
  });

  it("what the request says wins, and a domain moving between kinds takes the new kind's default", async () => {
    await srv.seedDeployment("dep_intra", { domain: "app.internal", target_port: 3000, ssl_enabled: true });
    expect((await sslOf("dep_intra")).ssl_enabled).toBe(true);
    expect(await addDomain("dep_intra", { domain: "api.internal" })).toBe(true); // inherited: a name of its kind
    expect(await addDomain("dep_intra", { domain: "printer.local", ssl_enabled: true })).toBe(true);

    await srv.seedDeployment("dep_move", { domain: "move.localhost", target_port: 3000 });
    await api.put("/api/v1/deployments/dep_move/routing", { domain: "move.example.com" });
    expect((await sslOf("dep_move")).ssl_enabled).toBe(true);
    await api.put("/api/v1/deployments/dep_move/routing", { domain: "move.test" });
    expect((await sslOf("dep_move")).ssl_enabled).toBe(false);
    // Chosen explicitly (differs from the name's default): a later rename keeps it.
    await api.put("/api/v1/deployments/dep_move/routing", { ssl_enabled: true });
    await api.put("/api/v1/deployments/dep_move/routing", { domain: "move2.test" });
    expect((await sslOf("dep_move")).ssl_enabled).toBe(true);
  });

  it("a state file that omits ssl_enabled gets the same defaults, and its dump applies back as no changes", async () => {
    const file = `version: 1
deployments:
  - id: dep_state
    name: state
    routing:
      target_port: 8080
      domains:
        - domain: state.localhost
        - domain: state.example.com
`;
    const applied = await api.send("POST", "/api/v1/state/apply", { raw: file, headers: YAML });
    expect(applied.status).toBe(200);
    const routes = await api.get<{ items: RouteJson[] }>("/api/v1/deployments/dep_state/domains");
    expect(Object.fromEntries(routes.body.items.map((r) => [r.domain, r.ssl_enabled]))).toEqual({
      "state.localhost": false,
      "state.example.com": true,
    });
    const dumped = (await api.get("/api/v1/state?format=yaml")).text;
    const again = await api.send<{ changes: unknown[] }>("POST", "/api/v1/state/diff", { raw: dumped, headers: YAML });
    expect(again.body.changes).toEqual([]);
  });
});
