import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/lib/logger.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { type Running, startServer } from "../../src/server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { fakeClock, startReplica, type TestReplica } from "../helpers/replica.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
const manual = () => () => {}; // no cron: the test drives rounds

describe.each(DRIVERS)("health checking on %s", (driver) => {
  let tdb: TestDb;
  let app: Running;
  let clock: ReturnType<typeof fakeClock>;
  const replicas: TestReplica[] = [];
  let dep = 0;

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${app.url}/api/v1${path}`, {
      method,
      headers: admin,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const config = async (): Promise<DynamicConfig> => {
    const res = await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } });
    const cfg = (await res.json()) as DynamicConfig;
    expect(traefikSchemaErrors(cfg)).toEqual([]);
    return cfg;
  };
  const servers = async (deploymentId: string) => {
    const cfg = await config();
    const entry = Object.entries(cfg.http.services).find(([name]) =>
      name.startsWith(`${deploymentId.replaceAll("_", "-")}--`),
    );
    return entry?.[1].loadBalancer.servers ?? [];
  };
  const health = async (deploymentId: string, id: string) => {
    const res = await call("GET", `/deployments/${deploymentId}/locations`);
    const body = (await res.json()) as {
      items: { id: string; health_status: string; last_error: string | null; cpu_usage: number | null }[];
    };
    return body.items.find((l) => l.id === id);
  };
  /** A deployment with one route and one registered replica that has passed its immediate first probe. */
  const setup = async () => {
    const id = `dep_h${++dep}`;
    const r = await startReplica(id);
    replicas.push(r);
    expect((await call("POST", "/deployments", { id, name: id })).status).toBe(201);
    expect(
      (
        await call("PUT", `/deployments/${id}/routing`, {
          domain: `${id.replace("_", "-")}.example.com`,
          target_port: r.port,
          ssl_enabled: false,
        })
      ).status,
    ).toBe(200);
    expect(
      (await call("PUT", `/deployments/${id}/locations/${id}_r1`, { address: "127.0.0.1", port: r.port })).status,
    ).toBe(201);
    await waitFor(async () => (await health(id, `${id}_r1`))?.health_status === "healthy");
    return { id, loc: `${id}_r1`, r };
  };
  const round = async (seconds = 30) => {
    clock.advance(seconds);
    return app.checker.runRound();
  };

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    clock = fakeClock();
    app = await startServer(testConfig({ HEALTH_ENABLED: "true", HEALTH_TIMEOUT_SECONDS: "0.5", HEALTH_RISE: "3" }), {
      handle: tdb.handle,
      logger: silentLogger,
      clock,
      schedule: manual,
    });
  });
  afterEach(() => {
    for (const r of replicas) {
      r.mode = "ok";
    }
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all(replicas.map((r) => r.close()));
    await tdb?.close();
  });

  it("probes a registered replica at once and routes it after the first success", async () => {
    const { id, r } = await setup();
    expect(r.healthHits).toBe(1);
    expect(await servers(id)).toEqual([{ url: `http://127.0.0.1:${r.port}` }]);
  });

  it("removes a replica on one failure and routes it again only after the 3rd consecutive success", async () => {
    const { id, loc, r } = await setup();
    r.mode = "fail";
    await round();
    expect((await health(id, loc))?.health_status).toBe("unhealthy");
    expect((await health(id, loc))?.last_error).toBe("HTTP 500");
    const down = await servers(id);
    expect(down.every((s) => s.weight === 0)).toBe(true); // router kept, Traefik answers 503
    r.mode = "ok";
    await round();
    await round();
    expect((await health(id, loc))?.health_status).toBe("unhealthy");
    expect((await servers(id)).every((s) => s.weight === 0)).toBe(true);
    await round();
    expect((await health(id, loc))?.health_status).toBe("healthy");
    expect(await servers(id)).toEqual([{ url: `http://127.0.0.1:${r.port}` }]);
  });

  it("does not probe a replica again before its interval", async () => {
    const { r } = await setup();
    const before = r.healthHits;
    await round(10);
    expect(r.healthHits).toBe(before);
    await round(20);
    expect(r.healthHits).toBe(before + 1);
  });

  it("counts a timeout as a failure", async () => {
    const { id, loc, r } = await setup();
    r.mode = "slow";
    await round();
    const l = await health(id, loc);
    expect(l?.health_status).toBe("unhealthy");
    expect(l?.last_error).toBe("timeout after 500 ms");
  });

  it("counts a refused connection as a failure", async () => {
    const { id, loc, r } = await setup();
    await r.close();
    await round();
    const l = await health(id, loc);
    expect(l?.health_status).toBe("unhealthy");
    expect(l?.last_error).toMatch(/^connection failed: ECONNREFUSED$/);
  });

  it("takes a replica out at once on a passive failure report, collapsing duplicates within 1 s", async () => {
    const { id, loc } = await setup();
    const first = await call("POST", `/deployments/${id}/locations/${loc}/failures`, {
      reason: "HTTP 502 from upstream",
    });
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({
      location_id: loc,
      health_status: "unhealthy",
      collapsed: false,
      transition: true,
    });
    expect((await servers(id)).every((s) => s.weight === 0)).toBe(true);
    const dup = await call("POST", `/deployments/${id}/locations/${loc}/failures`, {});
    expect(await dup.json()).toMatchObject({ collapsed: true, transition: false });
    const events = (await (await call("GET", `/deployments/${id}/locations/${loc}/events`)).json()) as {
      items: unknown[];
    };
    expect(events.items).toEqual([
      {
        location_id: loc,
        from: "healthy",
        to: "unhealthy",
        at: clock.now().toISOString(),
        reason: "reported: HTTP 502 from upstream",
        source: "report",
      },
      {
        location_id: loc,
        from: "unknown",
        to: "healthy",
        at: expect.any(String),
        reason: "first successful check",
        source: "probe",
      },
    ]);
  });

  it("reads CPU from a JSON /health body without changing the config bytes", async () => {
    const { id, loc, r } = await setup();
    const before = (
      await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } })
    ).headers.get("x-config-hash");
    r.cpu = 42.5;
    await round();
    expect((await health(id, loc))?.cpu_usage).toBe(42.5);
    const after = (
      await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } })
    ).headers.get("x-config-hash");
    expect(after).toBe(before);
  });

  it("uses per-deployment path and expected status", async () => {
    const { id, loc } = await setup();
    const res = await call("PUT", `/deployments/${id}/health-check`, { path: "/health/deep", expected_status: "204" });
    expect(await res.json()).toMatchObject({
      path: "/health/deep",
      expected_status: "204",
      overrides: ["path", "expected_status"],
    });
    await round();
    const l = await health(id, loc);
    expect(l?.health_status).toBe("unhealthy");
    expect(l?.last_error).toBe("HTTP 200");
    const bad = await call("PUT", `/deployments/${id}/health-check`, { expected_status: "2xx) || 1" });
    expect(bad.status).toBe(400);
  });
});

describe.skipIf(!process.env.DATABASE_URL)("two instances sharing one PostgreSQL", () => {
  it("probe each replica once per round between them, and take over a dead instance's share", async () => {
    const { openDb } = await import("../../src/db/client.js");
    const { claimDueReplicas } = await import("../../src/db/repo/health.js");
    const tdb = await makeTestDb("postgres");
    const clock = fakeClock();
    const cfg = testConfig({ HEALTH_ENABLED: "true", HEALTH_TIMEOUT_SECONDS: "1", CONFIG_REFRESH_SECONDS: "60" });
    const handles = [
      await openDb({ DATABASE_URL: tdb.url, DATA_DIR: "" }),
      await openDb({ DATABASE_URL: tdb.url, DATA_DIR: "" }),
    ];
    const [a, b] = await Promise.all(
      handles.map((handle, i) =>
        startServer({ ...cfg, INSTANCE_ID: `inst-${i}` }, { handle, logger: silentLogger, clock, schedule: manual }),
      ),
    );
    const replicas = await Promise.all(Array.from({ length: 6 }, (_, i) => startReplica(`r${i}`)));
    try {
      if (!a || !b) {
        throw new Error("instances did not start");
      }
      const db = tdb.handle.db;
      const { deployments, deploymentRouting, deploymentLocations } = await import("../../schema/tables.js");
      await db.insert(deployments).values({ id: "dep_multi", name: "multi" });
      await db
        .insert(deploymentRouting)
        .values({ id: "rt_multi", deploymentId: "dep_multi", domain: "multi.example.com", targetPort: 1 });
      await db.insert(deploymentLocations).values(
        replicas.flatMap((r, i) =>
          Array.from({ length: 10 }, (_, k) => ({
            id: `loc_${i}_${k}`,
            deploymentId: "dep_multi",
            address: "127.0.0.1",
            port: r.port,
          })),
        ),
      );
      const hits = () => replicas.reduce((n, r) => n + r.healthHits, 0);
      for (let roundNo = 1; roundNo <= 3; roundNo++) {
        clock.advance(30);
        const [ra, rb] = await Promise.all([a.checker.runRound(), b.checker.runRound()]);
        expect((ra?.probed ?? 0) + (rb?.probed ?? 0)).toBe(60);
        expect(hits()).toBe(60 * roundNo); // each of the 60 replica rows probed exactly once per round
      }
      // Instance A "dies" right after claiming everything that is due: its leases block B until they expire.
      clock.advance(30);
      const lease = new Date(clock.now().getTime() + 7000);
      const stolen = await claimDueReplicas((handles[0] as (typeof handles)[number]).db, {
        owner: "inst-0",
        now: clock.now(),
        leaseUntil: lease,
        limit: 1000,
      });
      expect(stolen).toHaveLength(60);
      expect((await b.checker.runRound()).probed).toBe(0);
      clock.advance(8); // past the lease, well within one 30 s interval
      expect((await b.checker.runRound()).probed).toBe(60);
      expect(hits()).toBe(240);
    } finally {
      await Promise.all([a?.close(), b?.close()]);
      await Promise.all(handles.map((h) => h.close()));
      await Promise.all(replicas.map((r) => r.close()));
      await tdb.close();
    }
  });
});
