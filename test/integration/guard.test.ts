import { inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentRouting, deployments } from "../../schema/tables.js";
import { type Running, startServer } from "../../src/server.js";
import { type ApiClient, expectProblem, httpClient, recordingLogger } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { massDelete, type RevisionJson, revisions, seedPlatform, served } from "../helpers/revisions.js";

/** The environment's admin token is named ADMIN_TOKEN in revisions, freezes and audit rows. */
const ACTOR = "ADMIN_TOKEN";

interface GuardJson {
  held_revision: number;
  served_revision: number | null;
  removed_routers: number;
  served_routers: number;
  removed_percent: number;
  max_removed_percent: number;
  removed_router_names: string[];
}

const guardOf = async (api: ApiClient) =>
  (await api.get<{ guard: GuardJson | null }>("/api/v1/routing/stats")).body.guard;

describe.each(DRIVERS)("the mass-change guard on %s", (driver) => {
  const srv = useApiServer(driver);
  let ids: string[] = [];

  beforeAll(async () => {
    ids = await seedPlatform(srv.api, "dep_g", 12); // 24 routers: one serving + one redirect twin per route
  });

  it("is not tripped when every replica of every deployment fails: only servers change", async () => {
    const { api, db } = srv;
    await db.execute(sql`update deployment_locations set health_status = 'healthy'`);
    const up = await waitFor(async () => {
      const s = await served(api);
      return s.text.includes("10.9.0.12:8080") && s;
    });
    await db.execute(sql`update deployment_locations set health_status = 'unhealthy'`);
    const down = await waitFor(async () => {
      const s = await served(api);
      return !s.text.includes("10.9.0.") && s;
    });
    expect(down.hash).not.toBe(up.hash); // (its number may be an old one: these bytes were served while seeding)
    expect(down.routers).toEqual(up.routers);
    expect(await guardOf(api)).toBeNull();
    expect((await revisions(api)).items.filter((r) => r.held)).toEqual([]);
  });

  it("holds a render that deletes 80% of the deployments: Traefik keeps the old bytes until confirmed", async () => {
    const { api, db } = srv;
    const before = await served(api);
    await massDelete(db, ids.slice(2));
    const guard = await waitFor(async () => (await guardOf(api)) ?? undefined);
    expect(guard).toMatchObject({
      served_revision: before.revision,
      removed_routers: 20,
      served_routers: 24,
      removed_percent: 83.3,
      max_removed_percent: 50,
    });
    expect(guard.removed_router_names).toHaveLength(20);
    for (let i = 0; i < 3; i++) {
      expect(await served(api)).toMatchObject({ revision: before.revision, hash: before.hash, text: before.text });
    }
    // Bytes seen before keep their number: these are the bytes of an early revision (two deployments, no healthy
    // replica), so the held revision may be older than the one served.
    const held = (await revisions(api)).items.find((r) => r.revision === guard.held_revision) as RevisionJson;
    expect(held).toMatchObject({ held: true, served_now: false, confirmed_at: null });
    expect(held.summary.byKind.routers?.removed).toEqual(guard.removed_router_names);

    const wrong = expectProblem(
      await api.post(`/api/v1/routing/revisions/${before.revision}/confirm`, undefined),
      409,
      "REVISION_NOT_HELD",
    );
    expect(wrong.held_revision).toBe(guard.held_revision);
    expect(wrong.detail).toContain(`revision ${guard.held_revision} is`);
    expectProblem(await api.post("/api/v1/routing/revisions/999999/confirm", undefined), 404, "REVISION_NOT_FOUND");

    const confirmed = await api.post<RevisionJson>(
      `/api/v1/routing/revisions/${guard.held_revision}/confirm`,
      undefined,
    );
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ revision: guard.held_revision, confirmed_by: ACTOR, served_now: true });
    const after = await served(api);
    expect(after.revision).toBe(guard.held_revision);
    expect(after.routers).toHaveLength(4);
    expect(await guardOf(api)).toBeNull();
    expectProblem(
      await api.post(`/api/v1/routing/revisions/${guard.held_revision}/confirm`, undefined),
      409,
      "REVISION_NOT_HELD",
    );
  });

  it("serves a later render that falls under the limit relative to what is served", async () => {
    const { api, db } = srv;
    const more = await seedPlatform(api, "dep_h", 10); // 2 + 10 deployments served
    const before = await served(api);
    expect(before.routers).toHaveLength(24);
    const backup = await Promise.all([
      db.select().from(deployments).where(inArray(deployments.id, more)),
      db.select().from(deploymentRouting).where(inArray(deploymentRouting.deploymentId, more)),
    ]);
    // These bytes are the revision confirmed above: a confirmation is for one hold, so they are held again.
    await massDelete(db, more);
    const guard = await waitFor(async () => (await guardOf(api)) ?? undefined);
    expect((await served(api)).hash).toBe(before.hash);
    // Restored from a backup, 5 of the 10 come back with their routes (router names follow route ids): 10 of 24
    // routers removed (42%) against what is served, under the limit.
    const back = more.slice(0, 5);
    await db.transaction(async (tx) => {
      await tx.insert(deployments).values(backup[0].filter((d) => back.includes(d.id)));
      await tx.insert(deploymentRouting).values(backup[1].filter((r) => back.includes(r.deploymentId)));
    });
    await waitFor(async () => (await served(api)).hash !== before.hash);
    const now = await served(api);
    expect(now.hash).not.toBe(before.hash);
    expect(now.revision).not.toBe(guard.held_revision);
    expect(now.routers).toHaveLength(14);
    expect(await guardOf(api)).toBeNull();
  });
});

describe.each(DRIVERS)("the guard across a restart on %s", (driver) => {
  let tdb: TestDb;
  beforeAll(async () => {
    tdb = await makeTestDb(driver);
  });
  afterAll(async () => {
    await tdb?.close();
  });

  it("holds a mass deletion made while the service was down against the revision served before", async () => {
    const logger = recordingLogger();
    const start = () => startServer(testConfig(), { handle: tdb.handle, logger });
    let s: Running = await start();
    let api = httpClient(s.url);
    const ids = await seedPlatform(api, "dep_r", 12);
    const before = await served(api);
    await s.close();
    await massDelete(tdb.handle.db, ids.slice(2));
    s = await start();
    try {
      api = httpClient(s.url);
      expect(await served(api)).toMatchObject({ revision: before.revision, hash: before.hash, text: before.text });
      const guard = await guardOf(api);
      expect(guard).toMatchObject({ served_revision: before.revision, removed_routers: 20 });
      expect((await api.post(`/api/v1/routing/revisions/${guard?.held_revision}/confirm`, undefined)).status).toBe(200);
      expect((await served(api)).routers).toHaveLength(4);
      expect([...api.faults, ...logger.errors]).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

describe.each(DRIVERS)("the guard and a declarative apply on %s", (driver) => {
  const srv = useApiServer(driver);

  it("holds an apply that prunes 80% of the deployments until it is confirmed", async () => {
    const { api } = srv;
    await seedPlatform(api, "dep_s", 10);
    const before = await waitFor(async () => {
      const s = await served(api);
      return s.routers.length === 20 && s;
    });
    const dumped = await api.get<{ deployments: { id: string }[] }>("/api/v1/state");
    const keep = dumped.body.deployments.slice(-2); // a state never served before: a new revision, caused by the apply
    const applied = await api.post<{ summary_line: string }>("/api/v1/state/apply?prune=true", {
      ...dumped.body,
      deployments: keep,
    });
    expect(applied.status).toBe(200);
    expect(applied.body.summary_line).toMatch(/deleted/);
    const guard = await waitFor(async () => (await guardOf(api)) ?? undefined);
    expect(guard).toMatchObject({ served_revision: before.revision, removed_routers: 16, served_routers: 20 });
    expect(await served(api)).toMatchObject({ revision: before.revision, hash: before.hash });
    const held = (await revisions(api)).items.find((r) => r.revision === guard.held_revision) as RevisionJson;
    expect(held).toMatchObject({ held: true, cause: "apply" });

    expect((await api.post(`/api/v1/routing/revisions/${guard.held_revision}/confirm`, undefined)).status).toBe(200);
    const after = await served(api);
    expect(after.revision).toBe(guard.held_revision);
    expect(after.routers).toHaveLength(4);
  });
});
