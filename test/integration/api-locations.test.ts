import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { routeName } from "../../src/render/names.js";
import { NO_REPLICA_URL, type Running, startServer } from "../../src/server.js";
import { testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import {
  type ApiClient,
  expectInvalid,
  expectProblem,
  httpClient,
  type LocationJson,
  type RoutingJson,
  recordingLogger,
} from "./api-harness.js";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const PORT = 8080;

describe.each(DRIVERS)("/api/v1/deployments/:id/locations on %s", (driver) => {
  let tdb: TestDb;
  let server: Running;
  let api: ApiClient;
  let service: string;
  const logger = recordingLogger();

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    server = await startServer(testConfig(), { handle: tdb.handle, logger });
    api = httpClient(server.url);
    for (const id of ["dep_loc", "dep_rival"]) {
      expect((await api.post("/api/v1/deployments", { id, name: id })).status).toBe(201);
    }
    const r = await api.put<RoutingJson>("/api/v1/deployments/dep_loc/routing", {
      domain: "loc.example.com",
      target_port: PORT,
    });
    service = routeName({ id: r.body.domains[0]?.id ?? "", deploymentId: "dep_loc" });
  });
  afterAll(async () => {
    await server?.close();
    await tdb?.close();
  });
  afterEach(() => {
    expect(api.faults).toEqual([]);
    expect(logger.errors).toEqual([]);
  });

  const setHealth = (id: string, health: string) =>
    tdb.handle.db.execute(
      sql`update deployment_locations set health_status = ${health}, consecutive_successes = 3 where id = ${id}`,
    );
  const serversNow = async () => (await api.traefikConfig()).config.http.services[service]?.loadBalancer.servers;

  it("lists no replicas for a fresh deployment", async () => {
    const r = await api.get("/api/v1/deployments/dep_loc/locations");
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: { items: [] } });
    expect(await serversNow()).toEqual([{ url: NO_REPLICA_URL, weight: 0 }]);
  });

  it("PUT registers a replica (201), then updates it in place (200)", async () => {
    const body = {
      node_id: "node-1",
      node_hostname: "node-1.internal",
      address: "10.0.0.1",
      container_id: "c0ffee",
      cpu_usage: 12.5,
    };
    const created = await api.put<LocationJson>("/api/v1/deployments/dep_loc/locations/web_1", body);
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: "web_1",
      deployment_id: "dep_loc",
      node_id: "node-1",
      node_hostname: "node-1.internal",
      address: "10.0.0.1",
      port: null,
      container_id: "c0ffee",
      status: "running",
      health_status: "unknown",
      cpu_usage: 12.5,
      consecutive_successes: 0,
      consecutive_failures: 0,
      last_check_at: null,
      last_error: null,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    const again = await api.put<LocationJson>("/api/v1/deployments/dep_loc/locations/web_1", {
      address: "10.0.0.1",
      cpu_usage: 40,
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({
      ...created.body,
      cpu_usage: 40,
      updated_at: expect.stringMatching(ISO),
    });
    const list = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_loc/locations");
    expect(list.body).toEqual({ items: [again.body] });
  });

  it("routes to a replica once it is healthy, and keeps health when the address is unchanged", async () => {
    await setHealth("web_1", "healthy");
    const expected = [{ url: `http://10.0.0.1:${PORT}` }];
    await waitFor(async () => JSON.stringify(await serversNow()) === JSON.stringify(expected));
    const same = await api.put<LocationJson>("/api/v1/deployments/dep_loc/locations/web_1", {
      address: "10.0.0.1",
      status: "running",
    });
    expect(same.body).toMatchObject({ health_status: "healthy", consecutive_successes: 3 });
    expect(await serversNow()).toEqual(expected);
  });

  it("an upsert without port keeps the stored port and the replica's health", async () => {
    await api.put<LocationJson>("/api/v1/deployments/dep_loc/locations/web_keep", { address: "10.0.0.7", port: 31007 });
    await setHealth("web_keep", "healthy");
    const again = await api.put<LocationJson>("/api/v1/deployments/dep_loc/locations/web_keep", {
      address: "10.0.0.7",
      status: "running",
    });
    expect(again.body).toMatchObject({ port: 31007, health_status: "healthy" });
    await api.delete("/api/v1/deployments/dep_loc/locations/web_keep");
  });

  it("a new address resets health to unknown and takes the replica out of rotation at once", async () => {
    const moved = await api.put<LocationJson>("/api/v1/deployments/dep_loc/locations/web_1", {
      address: "10.0.0.2",
    });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({
      address: "10.0.0.2",
      health_status: "unknown",
      consecutive_successes: 0,
      consecutive_failures: 0,
    });
    expect(await serversNow()).toEqual([{ url: NO_REPLICA_URL, weight: 0 }]);
    // A new port counts as a move too, and a per-replica port wins over the route's target_port.
    await setHealth("web_1", "healthy");
    await waitFor(async () => (await serversNow())?.[0]?.url === `http://10.0.0.2:${PORT}`);
    const ported = await api.put<LocationJson>("/api/v1/deployments/dep_loc/locations/web_1", {
      address: "10.0.0.2",
      port: 31000,
    });
    expect(ported.body).toMatchObject({ port: 31000, health_status: "unknown" });
    await setHealth("web_1", "healthy");
    await waitFor(async () => (await serversNow())?.[0]?.url === "http://10.0.0.2:31000");
    // Stopping a replica takes it out of rotation at once.
    const stopped = await api.put<LocationJson>("/api/v1/deployments/dep_loc/locations/web_1", {
      address: "10.0.0.2",
      port: 31000,
      status: "stopped",
    });
    expect(stopped.body).toMatchObject({ status: "stopped", health_status: "healthy", port: 31000 });
    expect(await serversNow()).toEqual([{ url: NO_REPLICA_URL, weight: 0 }]);
  });

  it("answers 409 LOCATION_CONFLICT for a location id another deployment owns, and changes nothing", async () => {
    const rival = await api.put<LocationJson>("/api/v1/deployments/dep_rival/locations/shared_1", {
      address: "10.1.0.1",
    });
    expect(rival.status).toBe(201);
    const r = await api.put("/api/v1/deployments/dep_loc/locations/shared_1", { address: "10.0.0.9" });
    expect(expectProblem(r, 409, "LOCATION_CONFLICT")).toMatchObject({ location_id: "shared_1" });
    const list = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_rival/locations");
    expect(list.body.items).toEqual([rival.body]);
    const mine = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_loc/locations");
    expect(mine.body.items.map((l) => l.id)).toEqual(["web_1"]);
    // Deleting it through the wrong deployment is a 404 too.
    expectProblem(await api.delete("/api/v1/deployments/dep_loc/locations/shared_1"), 404, "LOCATION_NOT_FOUND");
  });

  it("accepts IPv4, IPv6 and DNS addresses; rejects host:port, URLs and bad ports", async () => {
    const path = "/api/v1/deployments/dep_rival/locations/addr_1";
    for (const address of ["fd00::1", "web-1.internal", "192.168.1.20", "svc_1.local"]) {
      const r = await api.put<LocationJson>(path, { address });
      expect({ address, status: r.status < 300, stored: r.body.address }).toEqual({
        address,
        status: true,
        stored: address,
      });
    }
    for (const address of ["10.0.0.1:80", "[fd00::1]", "http://web-1", "web 1", "", "-web.internal", "a..b"]) {
      expectInvalid(await api.put(path, { address }), "body.address");
    }
    for (const port of [0, 65536, 1.5, -1, "80"]) {
      expectInvalid(await api.put(path, { address: "10.0.0.1", port }), "body.port");
    }
    expectInvalid(await api.put(path, {}), "body.address");
    expectInvalid(await api.put(path, { address: "10.0.0.1", status: "sleeping" }), "body.status");
    expectInvalid(await api.put(path, { address: "10.0.0.1", cpu_usage: 101 }), "body.cpu_usage");
    expectInvalid(await api.put(path, { address: "10.0.0.1", health_status: "healthy" }), "body");
    expectInvalid(await api.put(path, { address: "10.0.0.1", node_id: "a\nb" }), "body.node_id");
    expectInvalid(
      await api.put("/api/v1/deployments/dep_rival/locations/-bad", { address: "10.0.0.1" }),
      "path.location_id",
    );
  });

  it("DELETE removes a replica (204) and then answers 404 LOCATION_NOT_FOUND", async () => {
    const del = await api.delete("/api/v1/deployments/dep_rival/locations/addr_1");
    expect({ status: del.status, text: del.text }).toEqual({ status: 204, text: "" });
    const list = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_rival/locations");
    expect(list.body.items.map((l) => l.id)).toEqual(["shared_1"]);
    expectProblem(await api.delete("/api/v1/deployments/dep_rival/locations/addr_1"), 404, "LOCATION_NOT_FOUND");
    expectProblem(await api.delete("/api/v1/deployments/dep_nobody/locations/addr_1"), 404, "LOCATION_NOT_FOUND");
  });
});
