import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { deploymentServiceName } from "../../src/render/names.js";
import { expectInvalid, expectProblem, type RoutingJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { DRIVERS } from "../helpers/db.js";

interface LabelsJson {
  deployment_id: string;
  labels: Record<string, string>;
  not_expressible: { what: string; why: string }[];
}

describe.each(DRIVERS)("GET /api/v1/deployments/:id/labels on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;

  it("answers the labels of a seeded deployment, derived from the served config", async () => {
    const routing = (await srv.seedDeployment("dep_web", {
      domain: "web.example.com",
      target_port: 8080,
      ssl_enabled: true,
    })) as RoutingJson;
    expect(
      (
        await api.put("/api/v1/deployments/dep_web/middlewares", {
          headers: { request: { "X-Price": `$5 "quoted" #tag` } },
        })
      ).status,
    ).toBe(200);
    const { config } = await api.traefikConfig();
    const r = await api.get<LabelsJson>("/api/v1/deployments/dep_web/labels");
    expect(r.status).toBe(200);
    expect(r.contentType).toBe("application/json");
    expect(r.headers.get("x-config-hash")).toMatch(/^[0-9a-f]{64}$/);
    const name = `dep-web--${routing.domains[0]?.id.replaceAll("_", "-")}`;
    const router = config.http.routers[name];
    expect(router?.rule).toBe("Host(`web.example.com`)");
    // The labels define the deployment's one service; each router names it.
    const service = deploymentServiceName("dep_web");
    expect(router?.service).toBe(service);
    expect(r.body.deployment_id).toBe("dep_web");
    expect(r.body.labels).toMatchObject({
      "traefik.enable": "true",
      [`traefik.http.routers.${name}.rule`]: router?.rule,
      [`traefik.http.routers.${name}.entrypoints`]: "websecure",
      [`traefik.http.routers.${name}.priority`]: String(router?.priority),
      [`traefik.http.routers.${name}.service`]: service,
      [`traefik.http.routers.${name}.middlewares`]: "dep-web--headers",
      [`traefik.http.routers.${name}.tls.certresolver`]: router?.tls?.certResolver,
      [`traefik.http.routers.${name}--to-https.middlewares`]: "obiente-redirect-to-https",
      [`traefik.http.services.${service}.loadbalancer.server.port`]: "8080",
      [`traefik.http.services.${service}.loadbalancer.server.scheme`]: "http",
      "traefik.http.middlewares.dep-web--headers.headers.customrequestheaders.X-Price": `$5 "quoted" #tag`,
      "traefik.http.middlewares.obiente-redirect-to-https.redirectscheme.scheme": "https",
    });
    expect(Object.keys(r.body.labels)).toEqual(Object.keys(r.body.labels).sort());
    // No replica is healthy here (health checks are off in tests): the placeholder is said, never labelled.
    expect(r.body.not_expressible.map((n) => n.what)).toEqual([`health check of ${service}`, "replica servers"]);
    expect(JSON.stringify(r.body)).not.toContain("127.0.0.1:9");

    const compose = await api.get("/api/v1/deployments/dep_web/labels?format=compose");
    expect(compose.status).toBe(200);
    expect(compose.contentType).toBe("application/yaml; charset=utf-8");
    const items = (parseYaml(compose.text) as { labels: string[] }).labels;
    const back = Object.fromEntries(
      items.map((item) => {
        const label = item.replaceAll("$$", "$"); // compose's interpolation
        const eq = label.indexOf("=");
        return [label.slice(0, eq), label.slice(eq + 1)];
      }),
    );
    expect(back).toEqual(r.body.labels);
    expect(compose.text).toContain("X-Price=$$5");
  });

  it("says traefik.enable=false for a deployment without routes", async () => {
    await srv.seedDeployment("dep_bare");
    const r = await api.get<LabelsJson>("/api/v1/deployments/dep_bare/labels");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ deployment_id: "dep_bare", labels: { "traefik.enable": "false" }, not_expressible: [] });
  });

  it("answers 404 for an unknown deployment", async () => {
    const p = expectProblem(await api.get("/api/v1/deployments/dep_nope/labels"), 404, "DEPLOYMENT_NOT_FOUND");
    expect(p.detail).toContain("dep_nope");
  });

  it("answers 400 for a format it does not know", async () => {
    await srv.seedDeployment("dep_fmt");
    expectInvalid(await api.get("/api/v1/deployments/dep_fmt/labels?format=toml"), "query.format");
  });

  it("answers 401 without the admin token", async () => {
    expectProblem(await api.get("/api/v1/deployments/dep_web/labels", { token: null }), 401, "UNAUTHORIZED");
  });
});
