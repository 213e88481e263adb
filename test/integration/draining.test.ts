import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { and, asc, eq, sql } from "drizzle-orm";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { events } from "../../schema/tables.js";
import { runDrainSweep } from "../../src/health/drain.js";
import { silentLogger } from "../../src/lib/logger.js";
import { NO_REPLICA_URL } from "../../src/provider/settings.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { type Running, startServer } from "../../src/server.js";
import { expectInvalid, expectProblem, type LocationJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { fakeClock } from "../helpers/replica.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const PORT = 8080;

describe.each(DRIVERS)("draining a replica through the API on %s", (driver) => {
  const clock = fakeClock();
  const srv = useApiServer(driver, {}, { start: { clock } });
  const { api } = srv;
  const at = (id: string, loc: string) => `/api/v1/deployments/${id}/locations/${loc}`;
  const drain = (id: string, loc: string, body: Record<string, unknown> = {}) =>
    api.post<LocationJson>(`${at(id, loc)}/drain`, body);
  const setHealth = async (health: string, ...ids: string[]) => {
    for (const id of ids) {
      await srv.db.execute(
        sql`update deployment_locations set health_status = ${health}, consecutive_successes = 3 where id = ${id}`,
      );
    }
  };
  /** A deployment on its own domain with healthy replicas on 10.0.0.<n>; returns its service name (the deployment's). */
  const routedWith = async (id: string, replicas: Record<string, number>, track?: Record<string, string>) => {
    await srv.seedDeployment(id, {
      domain: `${id.replace("dep_", "")}.example.com`,
      target_port: PORT,
    });
    for (const [loc, n] of Object.entries(replicas)) {
      await srv.seedLocation(id, loc, { address: `10.0.0.${n}`, ...(track?.[loc] ? { track: track[loc] } : {}) });
      await setHealth("healthy", loc);
    }
    return deploymentServiceName(id);
  };
  /** Server URLs of a service in the served config (checked against Traefik's schema and semantics). */
  const urlsOf = async (service: string) =>
    ((await api.traefikConfig()).config.http.services[service]?.loadBalancer?.servers ?? []).map((s) => s.url);
  const eventsOf = (type: string, subject: string) =>
    srv.db
      .select({ data: events.data })
      .from(events)
      .where(and(eq(events.type, type), eq(events.subject, subject)))
      .orderBy(asc(events.id));
  const inSeconds = (s: number) => new Date(clock.now().getTime() + s * 1000).toISOString();

  it("a draining replica leaves /traefik/config with the drain request, and GET shows it draining until its end", async () => {
    const service = await routedWith("dep_d1", { d1_a: 1, d1_b: 2 });
    await waitFor(async () => (await urlsOf(service)).length === 2);
    const until = inSeconds(30);
    const r = await drain("dep_d1", "d1_a", { seconds: 30 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: "d1_a", draining: true, drain_until: until, drained: false });
    expect(await urlsOf(service)).toEqual([`http://10.0.0.2:${PORT}`]);
    const list = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_d1/locations");
    expect(list.body.items.map((l) => [l.id, l.draining, l.drain_until, l.drained])).toEqual([
      ["d1_a", true, until, false],
      ["d1_b", false, null, false],
    ]);
    const started = await eventsOf("replica.draining", "d1_a");
    expect(started.map((e) => e.data)).toEqual([
      {
        drain_until: until,
        seconds: 30,
        forced: false,
        extended: false,
        address: "10.0.0.1",
        port: null,
        track: "stable",
      },
    ]);
    // The audit row says what changed.
    const audit = await api.get<{ items: { operation: string; changes: unknown[] }[] }>(
      "/api/v1/audit?deployment_id=dep_d1&limit=500",
    );
    const row = audit.body.items.find((i) => i.operation.endsWith("/drain"));
    expect(row).toMatchObject({
      operation: "POST /api/v1/deployments/{id}/locations/{location_id}/drain",
      changes: [{ field: "replicas[d1_a].drain_until", before: null, after: until }],
    });
  });

  it("refuses to drain the last healthy replica of its track (409 LAST_HEALTHY_REPLICA) unless force: true", async () => {
    const service = await routedWith("dep_last", { last_a: 1, last_b: 2, last_c: 3 }, { last_c: "canary" });
    await setHealth("unhealthy", "last_b");
    await waitFor(async () => (await urlsOf(service)).length === 1);
    const refused = await drain("dep_last", "last_a", { seconds: 30 });
    const p = expectProblem(refused, 409, "LAST_HEALTHY_REPLICA");
    expect(p).toMatchObject({ location_id: "last_a", track: "stable" });
    expect(p.detail).toContain("force: true");
    expect(await urlsOf(service)).toEqual([`http://10.0.0.1:${PORT}`]); // nothing changed
    // A replica that serves nothing (unhealthy) drains freely; a healthy canary does not stand in for `stable`.
    expect((await drain("dep_last", "last_b")).status).toBe(200);
    const forced = await drain("dep_last", "last_a", { seconds: 10, force: true });
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ draining: true, drain_until: inSeconds(10) });
    expect(await urlsOf(service)).toEqual([NO_REPLICA_URL]);
    expect((await eventsOf("replica.draining", "last_a")).map((e) => e.data.forced)).toEqual([true]);
    // Draining replicas do not count: of two healthy ones, the second is refused once the first drains.
    const two = await routedWith("dep_two", { two_a: 1, two_b: 2 });
    await waitFor(async () => (await urlsOf(two)).length === 2);
    expect((await drain("dep_two", "two_a")).status).toBe(200);
    expectProblem(await drain("dep_two", "two_b"), 409, "LAST_HEALTHY_REPLICA");
    expect(await urlsOf(two)).toEqual([`http://10.0.0.2:${PORT}`]);
  });

  it("after the drain period the sweep marks the replica drained and writes replica.drained once, even with two instances sweeping", async () => {
    const service = await routedWith("dep_sweep", { sweep_a: 1, sweep_b: 2 });
    await waitFor(async () => (await urlsOf(service)).length === 2);
    const until = inSeconds(5);
    expect((await drain("dep_sweep", "sweep_a", { seconds: 5 })).status).toBe(200);
    const deps = { handle: srv.handle, clock, logger: silentLogger };
    await runDrainSweep(deps);
    expect(await eventsOf("replica.drained", "sweep_a")).toEqual([]);
    clock.advance(5);
    // Two instances sharing the database (and the background sweep of the running server) race for it.
    await Promise.all([runDrainSweep(deps), runDrainSweep(deps)]);
    await runDrainSweep(deps);
    const drained = await eventsOf("replica.drained", "sweep_a");
    expect(drained.map((e) => e.data)).toEqual([
      { drain_started_at: expect.any(String), drain_until: until, address: "10.0.0.1", port: null },
    ]);
    const list = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_sweep/locations");
    expect(list.body.items.map((l) => [l.id, l.draining, l.drain_until, l.drained])).toEqual([
      ["sweep_a", false, until, true],
      ["sweep_b", false, null, false],
    ]);
    expect(await urlsOf(service)).toEqual([`http://10.0.0.2:${PORT}`]);
    // The event is listed like every other one.
    const listed = await api.get<{ items: { type: string; subject: string }[] }>("/api/v1/events?limit=1000");
    expect(listed.body.items.filter((e) => e.subject === "sweep_a").map((e) => e.type)).toEqual(
      expect.arrayContaining(["replica.draining", "replica.drained"]),
    );
  });

  it("a heartbeat PUT keeps the drain; a move to a new address ends it", async () => {
    const service = await routedWith("dep_hb", { hb_a: 1, hb_b: 2 });
    await waitFor(async () => (await urlsOf(service)).length === 2);
    const until = inSeconds(60);
    expect((await drain("dep_hb", "hb_a", { seconds: 60 })).status).toBe(200);
    const beat = await api.put<LocationJson>(at("dep_hb", "hb_a"), { address: "10.0.0.1", cpu_usage: 20 });
    expect(beat.status).toBe(200);
    expect(beat.body).toMatchObject({ draining: true, drain_until: until, drained: false, cpu_usage: 20 });
    const restated = await api.put<LocationJson>(at("dep_hb", "hb_a"), { address: "10.0.0.1", status: "running" });
    expect(restated.body).toMatchObject({ draining: true, drain_until: until, health_status: "healthy" });
    expect(await urlsOf(service)).toEqual([`http://10.0.0.2:${PORT}`]);
    // A replacement container registered under the same id at a new address is a new endpoint: no drain.
    const moved = await api.put<LocationJson>(at("dep_hb", "hb_a"), { address: "10.0.0.9" });
    expect(moved.body).toMatchObject({ draining: false, drain_until: null, drained: false, health_status: "unknown" });
    await setHealth("healthy", "hb_a");
    await waitFor(async () => (await urlsOf(service)).includes(`http://10.0.0.9:${PORT}`));
  });

  it("draining again sets a new end from now, and DELETE …/drain routes the replica again", async () => {
    const service = await routedWith("dep_again", { again_a: 1, again_b: 2 });
    await waitFor(async () => (await urlsOf(service)).length === 2);
    expect((await drain("dep_again", "again_a", { seconds: 60 })).status).toBe(200);
    clock.advance(10);
    const shorter = await drain("dep_again", "again_a", { seconds: 5 });
    expect(shorter.body).toMatchObject({ draining: true, drain_until: inSeconds(5) });
    expect((await eventsOf("replica.draining", "again_a")).map((e) => e.data.extended)).toEqual([false, true]);
    const back = await api.delete(`${at("dep_again", "again_a")}/drain`);
    expect(back.status).toBe(200);
    expect(back.body).toMatchObject({ id: "again_a", draining: false, drain_until: null, drained: false });
    expect(await urlsOf(service)).toEqual([`http://10.0.0.1:${PORT}`, `http://10.0.0.2:${PORT}`]);
    const again = await api.delete(`${at("dep_again", "again_a")}/drain`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(back.body);
    // Draining with an empty body takes the default period (30 s).
    expect((await drain("dep_again", "again_a")).body).toMatchObject({ drain_until: inSeconds(30) });
  });

  it("answers 400 naming the field for a bad body, 404 for an unknown deployment or replica", async () => {
    await srv.seedDeployment("dep_bad");
    await srv.seedLocation("dep_bad", "bad_a", { address: "10.0.0.1" });
    for (const seconds of [0, 3601, 1.5, -1, "30", null]) {
      expectInvalid(await drain("dep_bad", "bad_a", { seconds }), "body.seconds");
    }
    expectInvalid(await drain("dep_bad", "bad_a", { force: "yes" }), "body.force");
    expectInvalid(await drain("dep_bad", "bad_a", { seconds: 30, until: "soon" }), "body");
    expectInvalid(await api.post(`${at("dep_bad", "-bad")}/drain`, {}), "path.location_id");
    expectProblem(await drain("dep_nobody", "bad_a"), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await drain("dep_bad", "nobody_1"), 404, "LOCATION_NOT_FOUND");
    expectProblem(await api.delete(`${at("dep_bad", "nobody_1")}/drain`), 404, "LOCATION_NOT_FOUND");
    const list = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_bad/locations");
    expect(list.body.items.map((l) => l.draining)).toEqual([false]);
  });
});

/** A loopback replica answering its name; `/slow` answers only once `release()` is called. */
interface GatedReplica {
  port: number;
  /** Resolves when a `/slow` request has arrived. */
  slowArrived: Promise<void>;
  release(): void;
  close(): Promise<void>;
}

async function startGatedReplica(name: string): Promise<GatedReplica> {
  let arrived!: () => void;
  const slowArrived = new Promise<void>((r) => {
    arrived = r;
  });
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const server: Server = createServer((req, res) => {
    if (req.url === "/slow") {
      arrived();
      void gate.then(() => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(`${name} slow`);
      });
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    slowArrived,
    release,
    close: () =>
      new Promise<void>((resolve) => {
        release();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe.each(DRIVERS)("draining through the embedded fallback proxy (least-cpu) on %s", (driver) => {
  let tdb: TestDb;
  let app: Running;
  const replicas: GatedReplica[] = [];
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${app.url}/api/v1${path}`, {
      method,
      headers: admin,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    app = await startServer(testConfig({ FALLBACK_ENABLED: "true", PROXY_PORT: "0", PROXY_REFRESH_MS: "60000" }), {
      handle: tdb.handle,
      logger: silentLogger,
    });
    replicas.push(await startGatedReplica("a"), await startGatedReplica("b"), await startGatedReplica("c"));
    await call("POST", "/deployments", { id: "dep_pd", name: "pd" });
    await call("PUT", "/deployments/dep_pd/routing", {
      domain: "pd.example.com",
      target_port: 1,
      load_balancer_algo: "least-cpu",
    });
    const [a, b, c] = replicas;
    // a has the lowest CPU of the stable replicas; c (lower still) is a canary: least-cpu has no split, so
    // only `stable` replicas are in the proxy's table.
    await call("PUT", "/deployments/dep_pd/locations/pd_a", { address: "127.0.0.1", port: a?.port, cpu_usage: 10 });
    await call("PUT", "/deployments/dep_pd/locations/pd_b", { address: "127.0.0.1", port: b?.port, cpu_usage: 80 });
    await call("PUT", "/deployments/dep_pd/locations/pd_c", {
      address: "127.0.0.1",
      port: c?.port,
      cpu_usage: 0,
      track: "canary",
    });
    await tdb.handle.db.execute(
      sql`update deployment_locations set health_status = 'healthy' where deployment_id = 'dep_pd'`,
    );
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all(replicas.map((r) => r.close()));
    await tdb?.close();
  });

  it("a slow request in flight to a draining replica completes with 200 while new requests go to the other one", async () => {
    const res = await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } });
    const cfg = (await res.json()) as DynamicConfig;
    expect(traefikSchemaErrors(cfg)).toEqual([]);
    const routes = (await (await call("GET", "/deployments/dep_pd/routing")).json()) as { domains: { id: string }[] };
    const name = routeName({ id: routes.domains[0]?.id ?? "", deploymentId: "dep_pd" });
    const serviceUrl = cfg.http.services[cfg.http.routers[name]?.service ?? ""]?.loadBalancer?.servers[0]?.url;
    expect(serviceUrl).toBe(app.proxyUrl);
    const mwName = cfg.http.routers[name]?.middlewares?.at(-1) ?? "";
    const headers = {
      ...(cfg.http.middlewares?.[mwName]?.headers?.customRequestHeaders as Record<string, string>),
      host: "pd.example.com",
    };
    const hit = async () => {
      const r = await request(`${serviceUrl}/`, { headers });
      return r.statusCode === 200 ? await r.body.text() : `status ${r.statusCode}`;
    };
    await waitFor(async () => (await hit()) === "a"); // CPU 10 beats 80; the canary (CPU 0) is not in the table
    const [a] = replicas;
    if (!a) {
      throw new Error("replicas missing");
    }
    const slow = request(`${serviceUrl}/slow`, { headers });
    await a.slowArrived; // in flight on replica a

    const drained = await call("POST", "/deployments/dep_pd/locations/pd_a/drain", { seconds: 30 });
    expect(drained.status).toBe(200);
    expect(await drained.json()).toMatchObject({ draining: true });
    // The proxy reloads on the change feed's NOTIFY (its refresh timer is a minute here).
    await waitFor(async () => (await hit()) === "b");
    for (let i = 0; i < 5; i++) {
      expect(await hit()).toBe("b");
    }
    a.release();
    const done = await slow;
    expect(done.statusCode).toBe(200);
    expect(await done.body.text()).toBe("a slow");

    const after = await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } });
    expect(traefikSchemaErrors(await after.json())).toEqual([]);
  });
});
