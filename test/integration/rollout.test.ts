import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentLocations } from "../../schema/tables.js";
import type { DbHandle } from "../../src/db/client.js";
import { openDb } from "../../src/db/client.js";
import { listEvents } from "../../src/db/repo/events.js";
import { recordObservations } from "../../src/db/repo/health.js";
import { getTraffic, setTrafficPart } from "../../src/db/repo/traffic.js";
import type { Logger } from "../../src/lib/logger.js";
import { deploymentServiceName } from "../../src/render/names.js";
import { type Running, startServer } from "../../src/server.js";
import { type ApiClient, expectInvalid, expectProblem, httpClient } from "../helpers/api-client.js";
import { testConfig } from "../helpers/app.js";
import { DRIVERS, type Driver, makeTestDb, type TestDb } from "../helpers/db.js";
import { fakeClock } from "../helpers/replica.js";

// Progressive rollouts end to end: the API starts and steers them, the worker (driven by tick() with an injected
// clock, never by sleeping) advances, aborts and promotes them, all state lives in the database.
// Until the split renderer lands, the served config routes stable replicas only: these tests assert on the stored
// split, the rollout's view and the events, and check that every served config is one Traefik accepts.

/** The background timer never fires during a test: every pass is an explicit tick(). */
const ENV = { ROLLOUT_TICK_MS: "3600000" };
const INTERVAL = 300;

interface RolloutJson {
  state: string;
  step_index: number;
  weight: number;
  next_step_at: string | null;
  health: { replicas: number; healthy: number; healthy_ratio: number | null; failures_last_minute: number };
  history: { action: string; weight: number; reason: string; at: string; actor?: string }[];
}

/** A logger that keeps errors and failed rollout passes (`rollout … failed` warnings). */
function problemLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    debug() {},
    info() {},
    warn: (m, f) => {
      if (/^(rollout|releasing rollout).*failed/.test(m)) {
        lines.push(`warn ${m} ${JSON.stringify(f ?? {})}`);
      }
    },
    error: (m, f) => lines.push(`error ${m} ${JSON.stringify(f ?? {})}`),
  };
}

/** One server with a fake clock on a fresh database; restart() closes it and starts a new one on the same data. */
function useRolloutServer(driver: Driver) {
  const clock = fakeClock();
  const logger = problemLogger();
  let tdb: TestDb | undefined;
  let running: Running | undefined;
  let client: ApiClient | undefined;
  let instance = 0;
  const start = async () => {
    instance += 1;
    const config = testConfig({ ...ENV, INSTANCE_ID: `rollout-${instance}` });
    running = await startServer(config, { handle: (tdb as TestDb).handle, clock, logger });
    client = httpClient(running.url);
  };
  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    await start();
  });
  afterAll(async () => {
    await running?.close();
    await tdb?.close();
  });
  const need = <T>(v: T | undefined): T => {
    if (v === undefined) {
      throw new Error("server not started");
    }
    return v;
  };
  return {
    clock,
    logger,
    get api() {
      return need(client);
    },
    get db() {
      return need(tdb).handle.db;
    },
    get running() {
      return need(running);
    },
    tick: () => need(running).rollouts.tick(),
    async restart() {
      await need(running).close();
      await start();
    },
  };
}

type Srv = ReturnType<typeof useRolloutServer>;

const rolloutPath = (id: string) => `/api/v1/deployments/${id}/rollout`;
const REQUEST = {
  track: "canary",
  steps: [5, 25, 50, 100],
  interval_seconds: INTERVAL,
  abort_when: { healthy_ratio_below: 0.8, failures_per_minute_above: 5 },
};

/** A deployment with a route, two healthy stable replicas and two healthy canary replicas. */
async function seed(srv: Srv, id: string, n: number): Promise<void> {
  const { api } = srv;
  expect((await api.post("/api/v1/deployments", { id, name: id })).status).toBe(201);
  const routing = { domain: `${id.replaceAll("_", "-")}.example.com`, target_port: 8080 };
  expect((await api.put(`/api/v1/deployments/${id}/routing`, routing)).status).toBe(200);
  const replicas = [
    [`${id}_s1`, "stable"],
    [`${id}_s2`, "stable"],
    [`${id}_c1`, "canary"],
    [`${id}_c2`, "canary"],
  ] as const;
  for (const [i, [loc, track]] of replicas.entries()) {
    const body = { address: `10.${n}.0.${i + 1}`, track };
    expect((await api.put(`/api/v1/deployments/${id}/locations/${loc}`, body)).status).toBeLessThan(300);
  }
  await markHealthy(
    srv,
    replicas.map(([loc]) => loc),
  );
}

async function markHealthy(srv: Srv, ids: string[]): Promise<void> {
  const at = srv.clock.now();
  await recordObservations(
    srv.db,
    ids.map((locationId) => ({ locationId, obs: { ok: true, at }, source: "probe" as const })),
    { rise: 1 },
  );
}

const weightsOf = async (srv: Srv, id: string) =>
  ((await getTraffic(srv.db, id)).split as { weights?: Record<string, number> } | null)?.weights;

async function rollout(srv: Srv, id: string): Promise<RolloutJson> {
  const r = await srv.api.get<RolloutJson>(rolloutPath(id));
  expect(r.status).toBe(200);
  return r.body;
}

const eventTypes = async (srv: Srv, id: string) =>
  (await listEvents(srv.db, { deploymentId: id, limit: 1000 }))
    .filter((e) => e.type.startsWith("rollout."))
    .map((e) => `${e.type}:${e.data.weight}`);

/** The served config, rendered from the database as it is now, is one Traefik accepts. */
async function expectServedConfigValid(srv: Srv): Promise<void> {
  srv.running.cache.invalidate();
  await srv.running.cache.ensureFresh();
  await srv.api.traefikDocument(); // checks schema and semantics
}

/** What the deployment's route is served as: its weighted children (track → weight), or its load balancer's servers. */
async function servedPool(srv: Srv, id: string): Promise<Record<string, number> | string[]> {
  srv.running.cache.invalidate();
  await srv.running.cache.ensureFresh();
  const services = (await srv.api.traefikDocument()).http?.services ?? {};
  const service = services[deploymentServiceName(id)]; // every route of the deployment points at it
  if (service?.weighted) {
    return Object.fromEntries(service.weighted.services.map((c) => [c.name.split("--track-")[1] ?? c.name, c.weight]));
  }
  return (service?.loadBalancer?.servers ?? []).map((s) => s.url);
}

async function reportFailure(srv: Srv, id: string, loc: string): Promise<void> {
  const r = await srv.api.post(`/api/v1/deployments/${id}/locations/${loc}/failures`, { reason: "502 from canary" });
  expect(r.status).toBe(202);
  srv.clock.advance(2); // past the 1 s collapse window: the next report counts
}

describe.each(DRIVERS)("progressive rollouts on %s", (driver) => {
  const srv = useRolloutServer(driver);
  let n = 0;
  const fresh = async (name: string) => {
    n += 1;
    const id = `dep_${name}`;
    await seed(srv, id, n);
    return id;
  };

  it("advances the canary step by step on its schedule and promotes it at 100 %", async () => {
    const id = await fresh("steps");
    const started = await srv.api.post<RolloutJson>(rolloutPath(id), REQUEST);
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({
      state: "running",
      step_index: 0,
      weight: 5,
      next_step_at: new Date(srv.clock.now().getTime() + INTERVAL * 1000).toISOString(),
      health: { replicas: 2, healthy: 2, healthy_ratio: 1, failures_last_minute: 0 },
    });
    expect(await weightsOf(srv, id)).toEqual({ stable: 95, canary: 5 });
    expect(await servedPool(srv, id)).toEqual({ canary: 5, stable: 95 }); // Traefik gets the weighted service
    // The rollout owns the weights: a hand-made change of the split would be undone at the next step.
    expect(
      (await srv.api.put(`/api/v1/deployments/${id}/split`, { weights: { stable: 50, canary: 50 } })).body,
    ).toMatchObject({
      status: 409,
      code: "ROLLOUT_ACTIVE",
    });

    srv.clock.advance(INTERVAL - 1);
    await srv.tick();
    expect((await rollout(srv, id)).weight).toBe(5); // not due yet

    for (const weight of [25, 50]) {
      srv.clock.advance(INTERVAL);
      await srv.tick();
      await srv.tick(); // a second pass in the same instant changes nothing
      expect((await rollout(srv, id)).weight).toBe(weight);
      expect(await weightsOf(srv, id)).toEqual({ stable: 100 - weight, canary: weight });
      expect(await servedPool(srv, id)).toEqual({ canary: weight, stable: 100 - weight });
    }

    srv.clock.advance(INTERVAL);
    await srv.tick();
    const done = await rollout(srv, id);
    expect(done).toMatchObject({ state: "promoted", step_index: 3, weight: 100, next_step_at: null });
    expect(done.history.map((h) => `${h.action}:${h.weight}`)).toEqual([
      "started:5",
      "step:25",
      "step:50",
      "promoted:100",
    ]);
    expect(await eventTypes(srv, id)).toEqual([
      "rollout.started:5",
      "rollout.step:25",
      "rollout.step:50",
      "rollout.promoted:100",
    ]);
    // Promotion: the canaries are the stable pool, the former stable replicas drain for 30 s, no split is left.
    expect((await getTraffic(srv.db, id)).split).toBeNull();
    const locations = await srv.api.get<{ items: { id: string; track: string; drain_until?: string | null }[] }>(
      `/api/v1/deployments/${id}/locations`,
    );
    const drainUntil = new Date(srv.clock.now().getTime() + 30_000).toISOString();
    const byId = Object.fromEntries(locations.body.items.map((l) => [l.id, l.track]));
    expect(byId).toEqual({
      [`${id}_c1`]: "stable",
      [`${id}_c2`]: "stable",
      [`${id}_s1`]: "stable",
      [`${id}_s2`]: "stable",
    });
    const rows = await srv.db
      .select({ id: deploymentLocations.id, drainUntil: deploymentLocations.drainUntil })
      .from(deploymentLocations)
      .where(eq(deploymentLocations.deploymentId, id))
      .orderBy(deploymentLocations.id);
    expect(rows.map((r) => ({ id: r.id, drainUntil: r.drainUntil?.toISOString() ?? null }))).toEqual([
      { id: `${id}_c1`, drainUntil: null },
      { id: `${id}_c2`, drainUntil: null },
      { id: `${id}_s1`, drainUntil },
      { id: `${id}_s2`, drainUntil },
    ]);
    // One pool again, of the former canaries only: the draining former stable replicas are out at once.
    expect(await servedPool(srv, id)).toEqual([`http://10.${n}.0.3:8080`, `http://10.${n}.0.4:8080`]);

    srv.clock.advance(INTERVAL);
    await srv.tick();
    expect(await eventTypes(srv, id)).toHaveLength(4); // a finished rollout is left alone
  });

  it("aborts to 0 % on its own when the canary's healthy ratio falls below the threshold", async () => {
    const id = await fresh("ratio");
    expect((await srv.api.post(rolloutPath(id), REQUEST)).status).toBe(201);
    srv.clock.advance(INTERVAL);
    await srv.tick();
    expect((await rollout(srv, id)).weight).toBe(25);

    await reportFailure(srv, id, `${id}_c1`); // 1 of 2 canaries unhealthy: 50 % < 80 %
    await srv.tick();
    const aborted = await rollout(srv, id);
    expect(aborted).toMatchObject({ state: "aborted", weight: 0, next_step_at: null });
    expect(aborted.history.at(-1)).toMatchObject({
      action: "aborted",
      weight: 0,
      reason: "healthy ratio 50% (1 of 2 replicas) is below 80%",
    });
    expect(await weightsOf(srv, id)).toEqual({ stable: 100, canary: 0 });
    expect(await eventTypes(srv, id)).toEqual(["rollout.started:5", "rollout.step:25", "rollout.aborted:0"]);
    expect(await servedPool(srv, id)).toEqual({ stable: 100 }); // the canary child is left out, never weight 0

    srv.clock.advance(INTERVAL);
    await srv.tick();
    expect((await rollout(srv, id)).state).toBe("aborted"); // stays aborted
  });

  it("aborts when the canary's replicas fail more often than the limit per minute", async () => {
    const id = await fresh("rate");
    const body = { ...REQUEST, abort_when: { healthy_ratio_below: 0.4, failures_per_minute_above: 3 } };
    expect((await srv.api.post(rolloutPath(id), body)).status).toBe(201);
    for (let i = 0; i < 3; i++) {
      await reportFailure(srv, id, `${id}_c1`); // c1 fails, c2 stays healthy: the ratio (50 %) is fine
    }
    await srv.tick();
    const still = await rollout(srv, id);
    expect(still).toMatchObject({ state: "running", health: { failures_last_minute: 3, healthy_ratio: 0.5 } });

    await reportFailure(srv, id, `${id}_c1`);
    await srv.tick();
    const aborted = await rollout(srv, id);
    expect(aborted.state).toBe("aborted");
    expect(aborted.history.at(-1)?.reason).toBe("4 failures in the last minute, more than 3");
    expect(await weightsOf(srv, id)).toEqual({ stable: 100, canary: 0 });
  });

  it("pauses at the current weight and resumes a full interval later", async () => {
    const id = await fresh("pause");
    expect((await srv.api.post(rolloutPath(id), REQUEST)).status).toBe(201);
    const paused = await srv.api.post<RolloutJson>(`${rolloutPath(id)}/pause`, undefined);
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ state: "paused", weight: 5, next_step_at: null });
    expectProblem(await srv.api.post(`${rolloutPath(id)}/pause`, undefined), 409, "ROLLOUT_NOT_RUNNING");

    srv.clock.advance(3 * INTERVAL);
    await srv.tick();
    expect((await rollout(srv, id)).weight).toBe(5);

    const resumed = await srv.api.post<RolloutJson>(`${rolloutPath(id)}/resume`, undefined);
    expect(resumed.body).toMatchObject({
      state: "running",
      weight: 5,
      next_step_at: new Date(srv.clock.now().getTime() + INTERVAL * 1000).toISOString(),
    });
    expectProblem(await srv.api.post(`${rolloutPath(id)}/resume`, undefined), 409, "ROLLOUT_NOT_PAUSED");
    await srv.tick();
    expect((await rollout(srv, id)).weight).toBe(5);
    srv.clock.advance(INTERVAL);
    await srv.tick();
    const r = await rollout(srv, id);
    expect(r.weight).toBe(25);
    expect(r.history.map((h) => h.action)).toEqual(["started", "paused", "resumed", "step"]);
    expect(r.history[1]?.actor).toEqual(expect.any(String));
    expect(await eventTypes(srv, id)).toEqual([
      "rollout.started:5",
      "rollout.paused:5",
      "rollout.resumed:5",
      "rollout.step:25",
    ]);
  });

  it("aborts at once on DELETE and can start again afterwards", async () => {
    const id = await fresh("delete");
    expect((await srv.api.post(rolloutPath(id), REQUEST)).status).toBe(201);
    srv.clock.advance(INTERVAL);
    await srv.tick();
    const del = await srv.api.delete(rolloutPath(id));
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ state: "aborted", weight: 0, step_index: 1 });
    expect(await weightsOf(srv, id)).toEqual({ stable: 100, canary: 0 });
    expectProblem(await srv.api.delete(rolloutPath(id)), 409, "ROLLOUT_NOT_ACTIVE");
    expectProblem(await srv.api.post(`${rolloutPath(id)}/resume`, undefined), 409, "ROLLOUT_NOT_PAUSED");
    await expectServedConfigValid(srv);

    const again = await srv.api.post<RolloutJson>(rolloutPath(id), REQUEST);
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ state: "running", weight: 5, step_index: 0 });
    expect(again.body.history.map((h) => h.action)).toEqual(["started"]);
  });

  it("keeps the split's other settings and refuses what it cannot roll out", async () => {
    const id = await fresh("refuse");
    const path = rolloutPath(id);
    expectInvalid(await srv.api.post(path, { ...REQUEST, steps: [50, 25, 100] }), "body.steps[1]");
    expectInvalid(await srv.api.post(path, { ...REQUEST, track: "stable" }), "body.track");
    expectInvalid(await srv.api.post(path, { ...REQUEST, interval_seconds: 5 }), "body.interval_seconds");
    expectInvalid(
      await srv.api.post(path, { ...REQUEST, abort_when: { healthy_ratio_below: 2 } }),
      "body.abort_when.healthy_ratio_below",
    );
    expectProblem(await srv.api.post(rolloutPath("dep_nope"), REQUEST), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await srv.api.get(rolloutPath("dep_nope")), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await srv.api.get(path), 404, "ROLLOUT_NOT_FOUND");
    expectProblem(await srv.api.delete(path), 404, "ROLLOUT_NOT_FOUND");
    expectProblem(await srv.api.post(path, { ...REQUEST, track: "v9" }), 409, "ROLLOUT_TRACK_EMPTY");

    await setTrafficPart(srv.db, id, "split", { weights: { stable: 80, v2: 20 } });
    expectProblem(await srv.api.post(path, REQUEST), 409, "ROLLOUT_SPLIT_CONFLICT");
    await setTrafficPart(srv.db, id, "split", null);
    await setTrafficPart(srv.db, id, "geo", { header: "CF-IPCountry", regions: { eu: ["DE"] }, default: "eu" });
    expectProblem(await srv.api.post(path, REQUEST), 409, "ROLLOUT_UNSUPPORTED");
    await setTrafficPart(srv.db, id, "geo", null);
    const lc = {
      domain: `${id.replaceAll("_", "-")}.example.com`,
      target_port: 8080,
      load_balancer_algo: "least-conn",
    };
    expect((await srv.api.put(`/api/v1/deployments/${id}/routing`, lc)).status).toBe(200);
    expectProblem(await srv.api.post(path, REQUEST), 409, "ROLLOUT_UNSUPPORTED");
    const rr = { ...lc, load_balancer_algo: "round-robin" };
    expect((await srv.api.put(`/api/v1/deployments/${id}/routing`, rr)).status).toBe(200);

    await setTrafficPart(srv.db, id, "split", { weights: { stable: 100 }, sticky: { secure: true } });
    expect((await srv.api.post(path, REQUEST)).status).toBe(201);
    expect((await getTraffic(srv.db, id)).split).toEqual({
      weights: { stable: 95, canary: 5 },
      sticky: { secure: true },
    });
    expectProblem(await srv.api.post(path, REQUEST), 409, "ROLLOUT_ACTIVE");
  });

  it("needs write to change a rollout and read to see it", async () => {
    const id = await fresh("scopes");
    const token = async (scopes: string[]) =>
      (await srv.api.post<{ token: string }>("/api/v1/tokens", { name: `t-${scopes.join("-")}`, scopes })).body.token;
    const reader = await token(["read"]);
    expectProblem(await srv.api.post(rolloutPath(id), REQUEST, { token: reader }), 403, "FORBIDDEN");
    expect((await srv.api.post(rolloutPath(id), REQUEST)).status).toBe(201);
    expect((await srv.api.get(rolloutPath(id), { token: reader })).status).toBe(200);
    expectProblem(await srv.api.delete(rolloutPath(id), { token: reader }), 403, "FORBIDDEN");
    expectProblem(await srv.api.get(rolloutPath(id), { token: null }), 401, "UNAUTHORIZED");
  });

  it("survives a restart: a new instance continues at the right step", async () => {
    const id = await fresh("restart");
    expect((await srv.api.post(rolloutPath(id), REQUEST)).status).toBe(201);
    srv.clock.advance(INTERVAL);
    await srv.tick();
    expect((await rollout(srv, id)).weight).toBe(25);

    await srv.restart(); // releases its leases; the new instance has another name
    srv.clock.advance(INTERVAL / 2);
    await srv.tick();
    expect((await rollout(srv, id)).weight).toBe(25);
    srv.clock.advance(INTERVAL / 2);
    await srv.tick();
    expect((await rollout(srv, id)).weight).toBe(50);
    expect(await eventTypes(srv, id)).toEqual(["rollout.started:5", "rollout.step:25", "rollout.step:50"]);
    expect(srv.logger.lines).toEqual([]);
  });
});

describe.skipIf(!process.env.DATABASE_URL)("progressive rollouts on two instances sharing PostgreSQL", () => {
  const clock = fakeClock();
  const logger = problemLogger();
  let tdb: TestDb | undefined;
  const handles: DbHandle[] = [];
  const servers: Running[] = [];
  const ids = ["dep_two_a", "dep_two_b", "dep_two_c", "dep_two_d"];

  beforeAll(async () => {
    tdb = await makeTestDb("postgres");
    for (const name of ["a", "b"]) {
      const handle = await openDb({ DATABASE_URL: tdb.url, DATA_DIR: "" });
      handles.push(handle);
      const config = testConfig({ ...ENV, DATABASE_URL: tdb.url ?? "", INSTANCE_ID: `rollout-${name}` });
      servers.push(await startServer(config, { handle, clock, logger }));
    }
    const srv = {
      clock,
      api: httpClient((servers[0] as Running).url),
      db: (tdb as TestDb).handle.db,
    } as unknown as Srv;
    for (const [i, id] of ids.entries()) {
      await seed(srv, id, 100 + i);
      expect((await srv.api.post(rolloutPath(id), REQUEST)).status).toBe(201);
    }
  });
  afterAll(async () => {
    for (const s of servers) {
      await s.close();
    }
    for (const h of handles) {
      await h.close();
    }
    await tdb?.close();
  });

  it("advances every step exactly once however the two instances' passes interleave", async () => {
    const [a, b] = servers as [Running, Running];
    for (let round = 0; round < 3; round++) {
      // Past the step's time and past any lease: both instances may claim, only one may step.
      clock.advance(4 * 3600);
      await Promise.all([a.rollouts.tick(), b.rollouts.tick(), a.rollouts.tick(), b.rollouts.tick()]);
    }
    const db = (tdb as TestDb).handle.db;
    for (const id of ids) {
      const types = (await listEvents(db, { deploymentId: id, limit: 100 }))
        .filter((e) => e.type.startsWith("rollout."))
        .map((e) => `${e.type}:${e.data.weight}`);
      expect(types).toEqual(["rollout.started:5", "rollout.step:25", "rollout.step:50", "rollout.promoted:100"]);
    }
    expect(logger.lines).toEqual([]);
  });

  it("leaves a rollout to the instance holding its lease", async () => {
    const [a, b] = servers as [Running, Running];
    const srv = { clock, api: httpClient(a.url), db: (tdb as TestDb).handle.db } as unknown as Srv;
    await seed(srv, "dep_two_lease", 120);
    expect((await srv.api.post(rolloutPath("dep_two_lease"), REQUEST)).status).toBe(201);
    await a.rollouts.tick(); // a holds the lease now
    clock.advance(INTERVAL);
    await b.rollouts.tick();
    expect((await rollout(srv, "dep_two_lease")).weight).toBe(5); // b may not touch it
    await a.rollouts.tick();
    expect((await rollout(srv, "dep_two_lease")).weight).toBe(25);
  });
});
