import { count, sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { deploymentLocations, deploymentRouting, deployments } from "../../schema/tables.js";
import { routeName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { expectInvalid } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { PROVIDER_TOKEN, waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface PollerJson {
  node: string;
  last_poll_at: string;
  polls: number;
  serving_current: boolean;
  user_agent: string | null;
}
interface StatsJson {
  total_routes: number;
  cached_proxies: number;
  timestamp: string;
  deployments: number;
  replicas: Record<string, number>;
  config: {
    revision: number;
    hash: string;
    bytes: number;
    rendered_at: string;
    render_ms: number;
    stale: boolean;
    skipped_rows: { kind: string; id: string; reason: string }[];
  } | null;
  pollers: PollerJson[];
}
interface Candidate {
  route_id: string;
  deployment_id: string;
  domain: string;
  path_prefix: string;
  priority: number;
}
interface ResolveJson {
  host: string;
  path: string;
  matched: boolean;
  outcome: number;
  deployment_id?: string;
  route_id?: string;
  router?: string;
  rule?: string;
  priority?: number;
  healthy_replicas?: number;
  reason: string;
  candidates: Candidate[];
}

describe.each(DRIVERS)("/api/v1/routing/stats and /api/v1/routing/resolve on %s", (driver) => {
  // A coalescing window longer than a round trip: reads right after a write must still see the write.
  const srv = useApiServer(driver, { RENDER_COALESCE_MS: "250" });
  const { api } = srv;
  /** deployment id → its primary route id */
  const routeOf = new Map<string, string>();

  beforeAll(async () => {
    const routes: [string, string, string][] = [
      ["dep_exact", "api.example.com", "/"],
      ["dep_wild", "*.example.com", "/"],
      ["dep_wildlong", "*.example.com", "/long/path/prefix"],
      ["dep_v1", "api.example.com", "/v1"],
      ["dep_idn", "bücher.de", "/"],
    ];
    for (const [id, domain, path_prefix] of routes) {
      const routing = await srv.seedDeployment(id, { domain, path_prefix, target_port: 80 });
      routeOf.set(id, routing?.domains[0]?.id ?? "");
    }
    await srv.seedLocation("dep_exact", "exact_1", { address: "10.0.0.1" });
    await srv.seedLocation("dep_exact", "exact_2", { address: "10.0.0.2" });
    await srv.seedLocation("dep_v1", "v1_1", { address: "10.0.1.1", status: "starting" });
    await srv.seedLocation("dep_wild", "wild_1", { address: "10.0.2.1" });
    // Health straight in the database, after the API writes (interleaving them made the NOTIFY wait below flaky).
    await srv.db.execute(
      sql`update deployment_locations set health_status = 'healthy' where id in ('exact_1', 'v1_1')`,
    );
    await srv.db.execute(sql`update deployment_locations set health_status = 'unhealthy' where id = 'wild_1'`);
    // A hand-written row the renderer must skip (and report), never serve.
    await srv.db.execute(
      sql`insert into deployment_routing (id, deployment_id, domain, target_port) values ('rt_handmade', 'dep_idn', 'bad domain', 80)`,
    );
    // Both direct writes reach the render through NOTIFY: the healthy replica is served, the bad row reported.
    await waitFor(async () => {
      const { config } = await api.traefikConfig();
      const name = routeName({ id: routeOf.get("dep_exact") ?? "", deploymentId: "dep_exact" });
      const service = config.http.services[config.http.routers[name]?.service ?? ""];
      const served = service?.loadBalancer?.servers[0]?.url === "http://10.0.0.1:80";
      return served && srv.cache.current()?.warnings.some((w) => w.id === "rt_handmade");
    }, 15_000); // renders follow NOTIFY or the 0.2 s change poll; a loaded CI machine can take seconds
  });

  const stats = async () => {
    const r = await api.get<StatsJson>("/api/v1/routing/stats");
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^application\/json/);
    return r.body;
  };
  const poll = (node?: string) =>
    api.traefikConfig({ ...(node ? { "x-traefik-node": node } : {}), "user-agent": "Go-http-client/1.1" });

  it("reports routes, proxies, deployments, replicas, the config revision and who polled", async () => {
    const { config, reply } = await poll("edge-1");
    const body = await stats();
    const db = srv.db;
    const [routes] = await db.select({ n: count() }).from(deploymentRouting);
    const [deps] = await db.select({ n: count() }).from(deployments);
    const replicaRows = await db.select().from(deploymentLocations);
    const replicas = { healthy: 0, unhealthy: 0, unknown: 0, not_running: 0 };
    for (const r of replicaRows) {
      replicas[r.status === "running" ? r.healthStatus : "not_running"]++;
    }
    expect(body).toEqual({
      total_routes: (routes?.n ?? 0) - 1, // the hand-written row is skipped
      cached_proxies: Object.keys(config.http.services).length,
      timestamp: expect.stringMatching(ISO),
      deployments: deps?.n,
      replicas,
      config: {
        revision: Number(reply.headers.get("x-config-revision")),
        hash: reply.headers.get("x-config-hash"),
        bytes: Buffer.byteLength(reply.text),
        rendered_at: reply.headers.get("x-config-rendered-at"),
        render_ms: expect.any(Number),
        stale: false,
        skipped_rows: [{ kind: "route", id: "rt_handmade", reason: expect.stringContaining("domain") }],
      },
      certificates: { total: 0, expiring_soon: [] }, // none uploaded in this file
      freeze: null,
      guard: null,
      pollers: expect.any(Array),
    });
    expect(Math.abs(Date.parse(body.timestamp) - Date.now())).toBeLessThan(10_000);
    expect(replicas).toEqual({ healthy: 1, unhealthy: 1, unknown: 1, not_running: 1 });
    expect(body.pollers.find((p) => p.node === "edge-1")).toEqual({
      node: "edge-1",
      last_poll_at: expect.stringMatching(ISO),
      polls: 1,
      serving_current: true,
      user_agent: "Go-http-client/1.1",
    });
    expect(body.pollers.map((p) => p.node)).toEqual(body.pollers.map((p) => p.node).sort());
  });

  it("tells pollers apart by X-Traefik-Node, falls back to the peer address, and tracks who serves the current config", async () => {
    await poll("edge-2");
    await poll("edge 2; drop table"); // not a sane name: counted under the peer address
    const before = await stats();
    expect(before.pollers.find((p) => p.node === "edge-2")).toMatchObject({ polls: 1, serving_current: true });
    expect(before.pollers.some((p) => p.node.includes(" "))).toBe(false);
    expect(before.pollers.filter((p) => !p.node.startsWith("edge-")).map((p) => p.node)).toEqual([
      expect.stringMatching(/127\.0\.0\.1$/),
    ]);
    // A change makes every poller stale until it polls again.
    await api.put("/api/v1/deployments/dep_exact/routing", { target_port: 8080 }); // moves its healthy server
    const changed = await stats();
    expect(changed.config?.revision).toBe((before.config?.revision ?? 0) + 1);
    expect(changed.pollers.every((p) => !p.serving_current)).toBe(true);
    await poll("edge-1");
    const after = await stats();
    expect(after.pollers.find((p) => p.node === "edge-1")).toMatchObject({ polls: 2, serving_current: true });
    expect(after.pollers.find((p) => p.node === "edge-2")).toMatchObject({ polls: 1, serving_current: false });
  });

  const resolve = async (host: string, path?: string) => {
    // These routes serve https (ssl_enabled defaults to true); over http each answers with a redirect.
    const q = new URLSearchParams({ host, ...(path === undefined ? {} : { path }), scheme: "https" });
    const r = await api.get<ResolveJson>(`/api/v1/routing/resolve?${q}`);
    expect(r.status).toBe(200);
    return r.body;
  };
  /** The rule and priority Traefik actually received for the router the answer names. */
  const served = async (router: string | undefined): Promise<DynamicConfig["http"]["routers"][string] | undefined> =>
    (await api.traefikConfig()).config.http.routers[router ?? ""];

  it("an exact host beats a wildcard, whatever the wildcard's path length", async () => {
    const r = await resolve("api.example.com", "/long/path/prefix/x");
    expect(r).toMatchObject({
      host: "api.example.com",
      path: "/long/path/prefix/x",
      matched: true,
      outcome: 200,
      deployment_id: "dep_exact",
      route_id: routeOf.get("dep_exact"),
      healthy_replicas: 1,
    });
    const router = await served(r.router);
    expect({ rule: r.rule, priority: r.priority }).toEqual({ rule: router?.rule, priority: router?.priority });
    expect(r.candidates.map((c) => c.deployment_id)).toEqual(["dep_exact", "dep_wildlong", "dep_wild"]);
    expect(r.candidates.map((c) => c.priority)).toEqual(r.candidates.map((c) => c.priority).sort((a, b) => b - a));
  });

  it("the longer path prefix wins, and no healthy replica means 503", async () => {
    const r = await resolve("api.example.com", "/v1/users");
    expect(r).toMatchObject({ matched: true, outcome: 503, deployment_id: "dep_v1", healthy_replicas: 0 });
    expect(r.reason).toContain("503");
    const router = await served(r.router);
    expect({ rule: r.rule, priority: r.priority }).toEqual({ rule: router?.rule, priority: router?.priority });
    expect(r.candidates.map((c) => c.deployment_id)).toEqual(["dep_v1", "dep_exact", "dep_wild"]);
    // A path without its leading slash means the same thing.
    expect(await resolve("api.example.com", "v1")).toMatchObject({ path: "/v1", deployment_id: "dep_v1" });
  });

  it("a wildcard covers exactly one label; its unhealthy replica means 503", async () => {
    const r = await resolve("Foo.Example.com", "/");
    expect(r).toMatchObject({
      host: "foo.example.com",
      path: "/",
      matched: true,
      outcome: 503,
      deployment_id: "dep_wild",
      healthy_replicas: 0,
    });
    const router = await served(r.router);
    expect(router?.rule).toBe(r.rule);
    expect(await resolve("a.b.example.com")).toMatchObject({ matched: false, outcome: 404, candidates: [] });
  });

  it("an unknown host does not match: 404 with a reason and no candidates", async () => {
    expect(await resolve("nobody.test", "/x")).toEqual({
      host: "nobody.test",
      path: "/x",
      scheme: "https",
      matched: false,
      outcome: 404,
      reason: expect.stringContaining("nobody.test"),
      candidates: [],
    });
    const known = await resolve("idn.example.org");
    expect(known).toMatchObject({ matched: false, outcome: 404 });
  });

  it("normalizes the host: case, port, trailing dot and IDN", async () => {
    const plain = await resolve("api.example.com");
    for (const host of ["API.Example.COM:8443", "api.example.com.", "api.example.com:80"]) {
      expect(await resolve(host)).toEqual({ ...plain, reason: plain.reason });
    }
    const idn = await resolve("Bücher.de", "/");
    expect(idn).toMatchObject({
      host: "xn--bcher-kva.de",
      matched: true,
      deployment_id: "dep_idn",
      route_id: routeOf.get("dep_idn"),
      rule: "Host(`xn--bcher-kva.de`)",
    });
    expect(await resolve("xn--bcher-kva.de")).toMatchObject({ deployment_id: "dep_idn" });
  });

  it("validates the query", async () => {
    expectInvalid(await api.get("/api/v1/routing/resolve"), "query.host");
    expectInvalid(await api.get("/api/v1/routing/resolve?host="), "query.host");
    expectInvalid(await api.get("/api/v1/routing/resolve?host=a.com&verbose=1"), "query");
    expectInvalid(await api.get(`/api/v1/routing/resolve?host=${"a".repeat(1001)}`), "query.host");
    // Hostile hosts are answered, never echoed into a rule.
    for (const host of ["a.com`) || Host(`b.com", "<script>", "%00", "a.com\r\nX: y"]) {
      const r = await resolve(host);
      expect({ matched: r.matched, outcome: r.outcome }).toEqual({ matched: false, outcome: 404 });
    }
  });

  it("needs a token with the read scope", async () => {
    for (const path of ["/api/v1/routing/stats", "/api/v1/routing/resolve?host=a.com"]) {
      expect((await api.get(path, { token: null })).status).toBe(401);
      expect((await api.get(path, { token: PROVIDER_TOKEN })).status).toBe(403); // valid, without the read scope
    }
  });
});
