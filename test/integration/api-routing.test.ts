import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { deploymentRouting } from "../../schema/tables.js";
import { deploymentServiceName, redirectRouterName, routeName } from "../../src/render/names.js";
import { priorityFor, ruleFor } from "../../src/render/rules.js";
import { expectInvalid, expectProblem, type RouteJson, type RoutingJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { DRIVERS } from "../helpers/db.js";
import { staticConfigWith } from "../helpers/traefik-schema.js";

const RESOLVER = "le-staging";
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe.each(DRIVERS)("GET/PUT /api/v1/deployments/:id/routing on %s", (driver) => {
  // Entry points and resolvers under other names than the shipped traefik.yml: checked against a static config
  // that declares them.
  const srv = useApiServer(
    driver,
    { DEFAULT_CERT_RESOLVER: RESOLVER, ENTRYPOINT_WEB: "http", ENTRYPOINT_WEBSECURE: "https" },
    { staticConfig: staticConfigWith({ entryPoints: ["http", "https"], resolvers: [RESOLVER, "custom-ca"] }) },
  );
  const { api } = srv;

  const newDeployment = async (id: string) => {
    expect((await api.post("/api/v1/deployments", { id, name: id })).status).toBe(201);
  };
  const storedRoutes = (id: string) =>
    srv.db.select().from(deploymentRouting).where(eq(deploymentRouting.deploymentId, id));

  it("shows an empty routing for a deployment without routes", async () => {
    await newDeployment("dep_empty");
    const r = await api.get("/api/v1/deployments/dep_empty/routing");
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^application\/json/);
    expect(r.body).toEqual({
      deployment_id: "dep_empty",
      domain: null,
      path_prefix: null,
      target_port: null,
      protocol: null,
      load_balancer_algo: null,
      ssl_enabled: null,
      ssl_cert_resolver: null,
      domains: [],
    });
  });

  it("needs a domain (and a port) to create the first route", async () => {
    await newDeployment("dep_first");
    expectInvalid(await api.put("/api/v1/deployments/dep_first/routing", { target_port: 3000 }), "body.domain");
    expectInvalid(await api.put("/api/v1/deployments/dep_first/routing", {}), "body.domain");
    expectInvalid(
      await api.put("/api/v1/deployments/dep_first/routing", { domain: "first.example.com" }),
      "body.target_port",
    );
    expect(await storedRoutes("dep_first")).toEqual([]);
  });

  it("creates the primary route with defaults and serves it at once", async () => {
    await newDeployment("dep_main");
    const r = await api.put<RoutingJson>("/api/v1/deployments/dep_main/routing", {
      domain: "myapp.com",
      target_port: 3000,
    });
    expect(r.status).toBe(200);
    const [row] = await storedRoutes("dep_main");
    expect(row).toBeDefined();
    const route: RouteJson = {
      id: row?.id ?? "",
      deployment_id: "dep_main",
      domain: "myapp.com",
      path_prefix: "/",
      target_port: 3000,
      protocol: "http",
      load_balancer_algo: "round-robin",
      ssl_enabled: true,
      ssl_cert_resolver: RESOLVER,
      tls_include_apex: false,
      is_primary: true,
      verification: { status: "verified", verified_at: null },
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    };
    expect(row?.id).toMatch(/^rt_[0-9a-z]{12}$/);
    expect(r.body).toEqual({
      deployment_id: "dep_main",
      domain: "myapp.com",
      path_prefix: "/",
      target_port: 3000,
      protocol: "http",
      load_balancer_algo: "round-robin",
      ssl_enabled: true,
      ssl_cert_resolver: RESOLVER,
      domains: [route],
    });
    expect((await api.get("/api/v1/deployments/dep_main/routing")).body).toEqual(r.body);

    const { config: cfg } = await api.traefikConfig();
    const name = routeName({ id: row?.id ?? "", deploymentId: "dep_main" });
    expect(cfg.http.routers[name]).toEqual({
      rule: ruleFor("myapp.com", "/"),
      priority: priorityFor("myapp.com", "/"),
      service: deploymentServiceName("dep_main"),
      entryPoints: [srv.config.ENTRYPOINT_WEBSECURE],
      tls: { certResolver: RESOLVER },
    });
    expect(cfg.http.routers[redirectRouterName(name)]).toMatchObject({ entryPoints: [srv.config.ENTRYPOINT_WEB] });
    expect(cfg.http.routers[name]?.rule).toBe("Host(`myapp.com`)");
  });

  it("applies a partial update and leaves every other field as it was", async () => {
    await srv.seedDeployment("dep_partial", { domain: "oldapp.com", target_port: 3000 });
    const before = (await api.get<RoutingJson>("/api/v1/deployments/dep_partial/routing")).body;
    const r = await api.put<RoutingJson>("/api/v1/deployments/dep_partial/routing", {
      domain: "newdomain.com",
      load_balancer_algo: "least-conn",
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      ...before,
      domain: "newdomain.com",
      load_balancer_algo: "least-conn",
      domains: [
        {
          ...before.domains[0],
          domain: "newdomain.com",
          load_balancer_algo: "least-conn",
          updated_at: expect.stringMatching(ISO),
        },
      ],
    });
    const { config: cfg } = await api.traefikConfig();
    const rules = Object.values(cfg.http.routers).map((x) => x.rule);
    expect(rules).toContain(ruleFor("newdomain.com", "/"));
    expect(rules).not.toContain(ruleFor("oldapp.com", "/"));
    // The old domain is free for another deployment now.
    await newDeployment("dep_taker");
    expect(
      (await api.post("/api/v1/deployments/dep_taker/domains", { domain: "oldapp.com", target_port: 80 })).status,
    ).toBe(201);
  });

  it("keeps a custom certificate resolver when only the domain changes", async () => {
    await newDeployment("dep_resolver");
    const created = await api.put<RoutingJson>("/api/v1/deployments/dep_resolver/routing", {
      domain: "resolver.example.com",
      target_port: 8080,
      ssl_cert_resolver: "custom-ca",
    });
    expect(created.body.ssl_cert_resolver).toBe("custom-ca");
    const moved = await api.put<RoutingJson>("/api/v1/deployments/dep_resolver/routing", {
      domain: "resolver2.example.com",
    });
    expect(moved.status).toBe(200);
    expect({ domain: moved.body.domain, ssl_cert_resolver: moved.body.ssl_cert_resolver }).toEqual({
      domain: "resolver2.example.com",
      ssl_cert_resolver: "custom-ca",
    });
  });

  it("stores the least-cpu alias as least-conn", async () => {
    await srv.seedDeployment("dep_lc", { domain: "lc.example.com", target_port: 3000 });
    const r = await api.put<RoutingJson>("/api/v1/deployments/dep_lc/routing", { load_balancer_algo: "least-cpu" });
    expect(r.status).toBe(200);
    expect(r.body.load_balancer_algo).toBe("least-conn");
    const rows = await storedRoutes("dep_lc");
    expect(rows.map((x) => x.loadBalancerAlgo)).toEqual(["least-conn"]);
    expectInvalid(
      await api.put("/api/v1/deployments/dep_lc/routing", { load_balancer_algo: "random" }),
      "body.load_balancer_algo",
    );
  });

  it("applies port, protocol and algorithm to every route, path and TLS only to the primary", async () => {
    await newDeployment("dep_multi");
    await api.put("/api/v1/deployments/dep_multi/routing", { domain: "multi.example.com", target_port: 3000 });
    const extra = await api.post<{ route: RouteJson }>("/api/v1/deployments/dep_multi/domains", {
      domain: "multi.example.org",
    });
    expect(extra.status).toBe(201);
    const r = await api.put<RoutingJson>("/api/v1/deployments/dep_multi/routing", {
      target_port: 4000,
      protocol: "h2c",
      load_balancer_algo: "ip-hash",
      path_prefix: "/app",
      ssl_enabled: false,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      domain: "multi.example.com",
      path_prefix: "/app",
      target_port: 4000,
      protocol: "h2c",
      load_balancer_algo: "ip-hash",
      ssl_enabled: false,
    });
    const other = r.body.domains.find((d) => d.id === extra.body.route.id);
    expect(other).toMatchObject({
      domain: "multi.example.org",
      path_prefix: "/",
      target_port: 4000,
      protocol: "h2c",
      load_balancer_algo: "ip-hash",
      ssl_enabled: true,
      is_primary: false,
    });
    const { config: cfg } = await api.traefikConfig();
    const primaryName = routeName({ id: r.body.domains[0]?.id ?? "", deploymentId: "dep_multi" });
    expect(cfg.http.routers[primaryName]).toEqual({
      rule: ruleFor("multi.example.com", "/app"),
      priority: priorityFor("multi.example.com", "/app"),
      service: deploymentServiceName("dep_multi"),
      entryPoints: [srv.config.ENTRYPOINT_WEB],
    });
    expect(cfg.http.routers[redirectRouterName(primaryName)]).toBeUndefined();
    // Both routes (one TLS, one not) share the deployment's one service: one hash ring, h2c to port 4000.
    const otherName = routeName({ id: extra.body.route.id, deploymentId: "dep_multi" });
    expect(cfg.http.routers[otherName]?.service).toBe(deploymentServiceName("dep_multi"));
    expect(Object.keys(cfg.http.services).filter((n) => n.startsWith("dep-multi"))).toEqual([
      deploymentServiceName("dep_multi"),
    ]);
    expect(cfg.http.services[deploymentServiceName("dep_multi")]?.loadBalancer?.strategy).toBe("hrw");
  });

  it("answers 409 DOMAIN_CONFLICT naming the owner when the primary would take someone's domain", async () => {
    await srv.seedDeployment("dep_owner", { domain: "owned.example.com", target_port: 3000 });
    await newDeployment("dep_thief");
    await api.put("/api/v1/deployments/dep_thief/routing", { domain: "thief.example.com", target_port: 80 });
    const r = await api.put("/api/v1/deployments/dep_thief/routing", { domain: "owned.example.com" });
    const p = expectProblem(r, 409, "DOMAIN_CONFLICT");
    expect(p).toMatchObject({ owner_deployment_id: "dep_owner", domain: "owned.example.com", path_prefix: "/" });
    expect(p.detail).toContain("dep_owner");
    // A first route that conflicts also names the owner and stores nothing.
    await newDeployment("dep_thief2");
    const first = await api.put("/api/v1/deployments/dep_thief2/routing", {
      domain: "owned.example.com",
      target_port: 80,
    });
    expect(expectProblem(first, 409, "DOMAIN_CONFLICT")).toMatchObject({ owner_deployment_id: "dep_owner" });
    expect(await storedRoutes("dep_thief2")).toEqual([]);
    expect((await api.get<RoutingJson>("/api/v1/deployments/dep_thief/routing")).body.domain).toBe("thief.example.com");
  });

  it("validates every field of the body", async () => {
    await srv.seedDeployment("dep_valid", { domain: "valid.example.com", target_port: 3000 });
    const path = "/api/v1/deployments/dep_valid/routing";
    expectInvalid(await api.put(path, { domain: "bad_domain.com" }), "body.domain");
    expectInvalid(await api.put(path, { path_prefix: "api" }), "body.path_prefix");
    expectInvalid(await api.put(path, { target_port: 0 }), "body.target_port");
    expectInvalid(await api.put(path, { target_port: "80" }), "body.target_port");
    expectInvalid(await api.put(path, { protocol: "ftp" }), "body.protocol");
    expectInvalid(await api.put(path, { ssl_enabled: "yes" }), "body.ssl_enabled");
    expectInvalid(await api.put(path, { ssl_cert_resolver: "a b" }), "body.ssl_cert_resolver");
    expectInvalid(await api.put(path, { domain: "ok.example.com", hostname: "x" }), "body");
    expectInvalid(await api.put(path, { target_port: 70000, protocol: "tcp" }), "body.target_port", "body.protocol");
    expect((await api.get<RoutingJson>(path)).body.domain).toBe("valid.example.com");
  });
});
