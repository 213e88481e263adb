import { count, eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { deploymentLocations, deploymentRouting, deployments } from "../../schema/tables.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import { expectInvalid, expectProblem, type Reply, type RouteJson, type RoutingJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface DeploymentJson {
  id: string;
  name: string;
  created_at: string;
  updated_at: string;
}
interface PageJson {
  items: DeploymentJson[];
  next_cursor: string | null;
}

describe.each(DRIVERS)("/api/v1/deployments on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;

  const rowsOf = async (table: typeof deploymentRouting | typeof deploymentLocations, id: string) => {
    const [row] = await srv.db.select({ n: count() }).from(table).where(eq(table.deploymentId, id));
    return row?.n;
  };

  it("creates a deployment with a given id: 201, Location and the stored row", async () => {
    const before = Date.now();
    const r = await api.post<DeploymentJson>("/api/v1/deployments", { id: "dep_given", name: "Given" });
    expect(r.status).toBe(201);
    expect(r.contentType).toMatch(/^application\/json/);
    expect(r.headers.get("location")).toBe("/api/v1/deployments/dep_given");
    expect(r.body).toEqual({
      id: "dep_given",
      name: "Given",
      created_at: expect.stringMatching(ISO),
      updated_at: r.body.created_at,
    });
    expect(Date.parse(r.body.created_at)).toBeGreaterThanOrEqual(before - 5_000);
    const got = await api.get("/api/v1/deployments/dep_given");
    expect({ status: got.status, body: got.body }).toEqual({ status: 200, body: r.body });
  });

  it("generates a dep_… id when none is given, and trims the name", async () => {
    const r = await api.post<DeploymentJson>("/api/v1/deployments", { name: "  spaced  " });
    expect(r.status).toBe(201);
    expect(r.body.id).toMatch(/^dep_[0-9a-z]{12}$/);
    expect(r.body.name).toBe("spaced");
    expect(r.headers.get("location")).toBe(`/api/v1/deployments/${r.body.id}`);
    const [row] = await srv.db.select().from(deployments).where(eq(deployments.id, r.body.id));
    expect(row?.name).toBe("spaced");
  });

  it("answers 409 DEPLOYMENT_EXISTS for a taken id", async () => {
    await api.post("/api/v1/deployments", { id: "dep_twice", name: "first" });
    const r = await api.post("/api/v1/deployments", { id: "dep_twice", name: "second" });
    expect(expectProblem(r, 409, "DEPLOYMENT_EXISTS")).toMatchObject({ deployment_id: "dep_twice" });
    const [row] = await srv.db.select().from(deployments).where(eq(deployments.id, "dep_twice"));
    expect(row?.name).toBe("first");
  });

  it("rejects bad bodies with errors[] naming each field", async () => {
    expectInvalid(await api.post("/api/v1/deployments", {}), "body.name");
    expectInvalid(await api.post("/api/v1/deployments", { name: "   " }), "body.name");
    expectInvalid(await api.post("/api/v1/deployments", { name: "a\u0000b" }), "body.name");
    expectInvalid(await api.post("/api/v1/deployments", { name: "x".repeat(201) }), "body.name");
    expectInvalid(await api.post("/api/v1/deployments", { id: "Dep-Upper", name: "x" }), "body.id");
    expectInvalid(await api.post("/api/v1/deployments", { id: "dep__double", name: "x" }), "body.id");
    expectInvalid(await api.post("/api/v1/deployments", { id: "d".repeat(65), name: "x" }), "body.id");
    expectInvalid(await api.post("/api/v1/deployments", { id: 42, name: ["x"] }), "body.id", "body.name");
    const extra = expectInvalid(await api.post("/api/v1/deployments", { name: "x", owner: "me" }), "body");
    expect(extra.errors?.[0]?.message).toContain("owner");
    expectInvalid(await api.post("/api/v1/deployments", ["name"]), "body");
    expectInvalid(await api.post("/api/v1/deployments", null), "body");
  });

  it("pages GET /deployments by id with limit/after and next_cursor, covering every row exactly once", async () => {
    const ids = Array.from({ length: 7 }, (_, i) => `dep_page${i}`);
    for (const id of ids.toReversed()) {
      expect((await api.post("/api/v1/deployments", { id, name: id })).status).toBe(201);
    }
    const all = await api.get<PageJson>("/api/v1/deployments?limit=500");
    expect(all.status).toBe(200);
    expect(all.body.next_cursor).toBeNull();
    const [total] = await srv.db.select({ n: count() }).from(deployments);
    expect(all.body.items).toHaveLength(total?.n ?? -1);
    const everyId = all.body.items.map((d) => d.id);
    expect(everyId).toEqual([...everyId].sort());
    expect(everyId).toEqual(expect.arrayContaining(ids));

    const seen: string[] = [];
    let cursor: string | null = null;
    const limit = 2;
    for (let page = 0; page <= everyId.length; page++) {
      const query: string = cursor === null ? `limit=${limit}` : `limit=${limit}&after=${encodeURIComponent(cursor)}`;
      const r: Reply<PageJson> = await api.get<PageJson>(`/api/v1/deployments?${query}`);
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(limit);
      seen.push(...r.body.items.map((d) => d.id));
      cursor = r.body.next_cursor;
      if (cursor === null) {
        break;
      }
      expect(cursor).toBe(r.body.items.at(-1)?.id);
    }
    expect(cursor).toBeNull();
    expect(seen).toEqual(everyId);
    // Default limit is 50; an exact multiple of the limit still ends with null, not an empty extra page.
    const exact = await api.get<PageJson>(`/api/v1/deployments?limit=${everyId.length}`);
    expect(exact.body).toEqual({ items: all.body.items, next_cursor: null });
  });

  it("rejects bad paging queries", async () => {
    expectInvalid(await api.get("/api/v1/deployments?limit=0"), "query.limit");
    expectInvalid(await api.get("/api/v1/deployments?limit=501"), "query.limit");
    expectInvalid(await api.get("/api/v1/deployments?limit=1.5"), "query.limit");
    expectInvalid(await api.get("/api/v1/deployments?limit=ten"), "query.limit");
    expectInvalid(await api.get(`/api/v1/deployments?after=${"z".repeat(65)}`), "query.after");
    expectInvalid(await api.get("/api/v1/deployments?offset=3"), "query");
  });

  it("answers 404 DEPLOYMENT_NOT_FOUND for unknown ids and 400 for malformed ones", async () => {
    for (const [method, path] of [
      ["GET", "/api/v1/deployments/dep_nobody"],
      ["DELETE", "/api/v1/deployments/dep_nobody"],
      ["GET", "/api/v1/deployments/dep_nobody/routing"],
      ["GET", "/api/v1/deployments/dep_nobody/domains"],
      ["GET", "/api/v1/deployments/dep_nobody/locations"],
      ["DELETE", "/api/v1/deployments/dep_nobody/domains/myapp.com"],
    ] as const) {
      const p = expectProblem(await api.send(method, path), 404, "DEPLOYMENT_NOT_FOUND");
      expect(p.instance).toBe(path);
      expect(p.detail).toContain("dep_nobody");
    }
    for (const [path, json] of [
      ["/api/v1/deployments/dep_nobody/routing", { domain: "nobody.example.com", target_port: 80 }],
      ["/api/v1/deployments/dep_nobody/locations/loc_1", { address: "10.0.0.1" }],
    ] as const) {
      expectProblem(await api.put(path, json), 404, "DEPLOYMENT_NOT_FOUND");
    }
    expectProblem(
      await api.post("/api/v1/deployments/dep_nobody/domains", { domain: "nobody.example.com", target_port: 80 }),
      404,
      "DEPLOYMENT_NOT_FOUND",
    );
    expectInvalid(await api.get("/api/v1/deployments/Not%20An%20Id"), "path.id");
    expectInvalid(await api.delete("/api/v1/deployments/DEP_X"), "path.id");
  });

  it("DELETE removes the deployment, cascades to routes and replicas, and drops it from /traefik/config at once", async () => {
    const id = "dep_doomed";
    expect((await api.post("/api/v1/deployments", { id, name: "doomed" })).status).toBe(201);
    const routing = await api.put<RoutingJson>(`/api/v1/deployments/${id}/routing`, {
      domain: "doomed.example.com",
      target_port: 8080,
    });
    expect(routing.status).toBe(200);
    const extra = await api.post<{ route: RouteJson }>(`/api/v1/deployments/${id}/domains`, {
      domain: "www.doomed.example.com",
    });
    expect(extra.status).toBe(201);
    expect((await api.put(`/api/v1/deployments/${id}/locations/doomed_1`, { address: "10.9.0.1" })).status).toBe(201);
    await srv.db.execute(sql`update deployment_locations set health_status = 'healthy' where id = 'doomed_1'`);

    const names = [routing.body.domains[0], extra.body.route].map((r) =>
      routeName({ id: r?.id ?? "", deploymentId: id }),
    );
    const service = deploymentServiceName(id);
    const withIt = await waitFor(async () => {
      const { config } = await api.traefikConfig();
      return config.http.services[service]?.loadBalancer?.servers[0]?.url === "http://10.9.0.1:8080"
        ? config
        : undefined;
    });
    for (const name of names) {
      expect(withIt.http.routers[name]?.service).toBe(service); // both domains, one service
    }

    const del = await api.delete(`/api/v1/deployments/${id}`);
    expect({ status: del.status, text: del.text }).toEqual({ status: 204, text: "" });
    // Same instance: the next poll already reflects the write (no waiting). `{}` if it was the last deployment.
    const config = await api.traefikDocument();
    for (const name of names) {
      expect(config.http?.routers[name]).toBeUndefined();
      expect(config.http?.routers[`${name}--to-https`]).toBeUndefined();
    }
    expect(config.http?.services[service]).toBeUndefined();
    expect(JSON.stringify(config)).not.toContain("doomed");
    expect(await rowsOf(deploymentRouting, id)).toBe(0);
    expect(await rowsOf(deploymentLocations, id)).toBe(0);
    expectProblem(await api.get(`/api/v1/deployments/${id}`), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await api.delete(`/api/v1/deployments/${id}`), 404, "DEPLOYMENT_NOT_FOUND");
    // Its domain is free again for someone else.
    await api.post("/api/v1/deployments", { id: "dep_heir", name: "heir" });
    const heir = await api.post("/api/v1/deployments/dep_heir/domains", {
      domain: "doomed.example.com",
      target_port: 80,
    });
    expect(heir.status).toBe(201);
  });
});
