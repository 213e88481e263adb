import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { NO_REPLICA_URL } from "../../src/provider/settings.js";
import { deploymentServiceName } from "../../src/render/names.js";
import { expectInvalid, expectProblem, type LocationJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const PORT = 8080;

describe.each(DRIVERS)("/api/v1/deployments/:id/locations on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  const setHealth = (id: string, health: string) =>
    srv.db.execute(
      sql`update deployment_locations set health_status = ${health}, consecutive_successes = 3 where id = ${id}`,
    );
  /** A deployment routed on its own domain; returns its service name (the deployment's, which its routes share). */
  const routed = async (id: string) => {
    await srv.seedDeployment(id, {
      domain: `${id.replace("dep_", "")}.example.com`,
      target_port: PORT,
    });
    return deploymentServiceName(id);
  };
  const serversOf = async (service: string) =>
    (await api.traefikConfig()).config.http.services[service]?.loadBalancer?.servers;

  it("lists no replicas for a fresh deployment", async () => {
    const service = await routed("dep_fresh");
    const r = await api.get("/api/v1/deployments/dep_fresh/locations");
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: { items: [] } });
    expect(await serversOf(service)).toEqual([{ url: NO_REPLICA_URL, weight: 0 }]);
  });

  it("PUT registers a replica (201), then updates it in place (200)", async () => {
    await routed("dep_loc");
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
      track: "stable",
      region: null,
      draining: false,
      drain_until: null,
      drained: false,
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
    const service = await routed("dep_route");
    await srv.seedLocation("dep_route", "route_1", { address: "10.0.0.1" });
    await setHealth("route_1", "healthy");
    const expected = [{ url: `http://10.0.0.1:${PORT}` }];
    await waitFor(async () => JSON.stringify(await serversOf(service)) === JSON.stringify(expected));
    const same = await api.put<LocationJson>("/api/v1/deployments/dep_route/locations/route_1", {
      address: "10.0.0.1",
      status: "running",
    });
    expect(same.body).toMatchObject({ health_status: "healthy", consecutive_successes: 3 });
    expect(await serversOf(service)).toEqual(expected);
  });

  it("an upsert without port keeps the stored port and the replica's health", async () => {
    await srv.seedDeployment("dep_keep");
    await api.put<LocationJson>("/api/v1/deployments/dep_keep/locations/web_keep", {
      address: "10.0.0.7",
      port: 31007,
    });
    await setHealth("web_keep", "healthy");
    const again = await api.put<LocationJson>("/api/v1/deployments/dep_keep/locations/web_keep", {
      address: "10.0.0.7",
      status: "running",
    });
    expect(again.body).toMatchObject({ port: 31007, health_status: "healthy" });
    await api.delete("/api/v1/deployments/dep_keep/locations/web_keep");
  });

  it("a new address resets health to unknown and takes the replica out of rotation at once", async () => {
    const service = await routed("dep_move");
    await srv.seedLocation("dep_move", "move_1", { address: "10.0.0.1" });
    await setHealth("move_1", "healthy");
    await waitFor(async () => (await serversOf(service))?.[0]?.url === `http://10.0.0.1:${PORT}`);
    const moved = await api.put<LocationJson>("/api/v1/deployments/dep_move/locations/move_1", {
      address: "10.0.0.2",
    });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({
      address: "10.0.0.2",
      health_status: "unknown",
      consecutive_successes: 0,
      consecutive_failures: 0,
    });
    expect(await serversOf(service)).toEqual([{ url: NO_REPLICA_URL, weight: 0 }]);
    // A new port counts as a move too, and a per-replica port wins over the route's target_port.
    await setHealth("move_1", "healthy");
    await waitFor(async () => (await serversOf(service))?.[0]?.url === `http://10.0.0.2:${PORT}`);
    const ported = await api.put<LocationJson>("/api/v1/deployments/dep_move/locations/move_1", {
      address: "10.0.0.2",
      port: 31000,
    });
    expect(ported.body).toMatchObject({ port: 31000, health_status: "unknown" });
    await setHealth("move_1", "healthy");
    await waitFor(async () => (await serversOf(service))?.[0]?.url === "http://10.0.0.2:31000");
    // Stopping a replica takes it out of rotation at once.
    const stopped = await api.put<LocationJson>("/api/v1/deployments/dep_move/locations/move_1", {
      address: "10.0.0.2",
      port: 31000,
      status: "stopped",
    });
    expect(stopped.body).toMatchObject({ status: "stopped", health_status: "healthy", port: 31000 });
    expect(await serversOf(service)).toEqual([{ url: NO_REPLICA_URL, weight: 0 }]);
  });

  it("answers 409 LOCATION_CONFLICT for a location id another deployment owns, and changes nothing", async () => {
    await srv.seedDeployment("dep_owner");
    await srv.seedDeployment("dep_mine");
    await srv.seedLocation("dep_mine", "mine_1", { address: "10.0.0.1" });
    const rival = await api.put<LocationJson>("/api/v1/deployments/dep_owner/locations/shared_1", {
      address: "10.1.0.1",
    });
    expect(rival.status).toBe(201);
    const r = await api.put("/api/v1/deployments/dep_mine/locations/shared_1", { address: "10.0.0.9" });
    expect(expectProblem(r, 409, "LOCATION_CONFLICT")).toMatchObject({ location_id: "shared_1" });
    const list = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_owner/locations");
    expect(list.body.items).toEqual([rival.body]);
    const mine = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_mine/locations");
    expect(mine.body.items.map((l) => l.id)).toEqual(["mine_1"]);
    // Deleting it through the wrong deployment is a 404 too.
    expectProblem(await api.delete("/api/v1/deployments/dep_mine/locations/shared_1"), 404, "LOCATION_NOT_FOUND");
  });

  it("accepts IPv4, IPv6 and DNS addresses; rejects host:port, URLs and bad ports", async () => {
    await srv.seedDeployment("dep_addr");
    const path = "/api/v1/deployments/dep_addr/locations/addr_1";
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
      await api.put("/api/v1/deployments/dep_addr/locations/-bad", { address: "10.0.0.1" }),
      "path.location_id",
    );
  });

  it("DELETE removes a replica (204) and then answers 404 LOCATION_NOT_FOUND", async () => {
    await srv.seedDeployment("dep_del");
    await srv.seedLocation("dep_del", "keep_1", { address: "10.0.0.1" });
    await srv.seedLocation("dep_del", "gone_1", { address: "10.0.0.2" });
    const del = await api.delete("/api/v1/deployments/dep_del/locations/gone_1");
    expect({ status: del.status, text: del.text }).toEqual({ status: 204, text: "" });
    const list = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_del/locations");
    expect(list.body.items.map((l) => l.id)).toEqual(["keep_1"]);
    expectProblem(await api.delete("/api/v1/deployments/dep_del/locations/gone_1"), 404, "LOCATION_NOT_FOUND");
    expectProblem(await api.delete("/api/v1/deployments/dep_nobody/locations/gone_1"), 404, "LOCATION_NOT_FOUND");
  });
});
