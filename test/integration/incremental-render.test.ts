import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import {
  deploymentLocations,
  deploymentMiddlewares,
  deploymentRouting,
  deployments,
  deploymentTraffic,
} from "../../schema/tables.js";
import { loadSnapshot } from "../../src/db/repo/snapshot.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { toJson } from "../../src/render/serialize.js";
import { prng } from "../fixtures/hostile-inputs.js";
import { type ApiServer, useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

// The served config is kept deployment by deployment (src/provider/served-document.ts): a change re-reads and
// re-renders only the deployments the change feed names. Whatever the database goes through, what is served must be
// exactly what a full render of the same rows gives.

/** The bytes a full render of the database gives now (the reference the incremental document must equal). */
async function referenceBytes(app: ApiServer): Promise<string> {
  const snap = await loadSnapshot(app.db);
  return toJson(renderDynamicConfig({ ...snap, settings: app.cache.settings }).config);
}

/** Waits until the served bytes equal a full render's; returns them. */
async function servedMatchesReference(app: ApiServer): Promise<string> {
  let last = { served: "", want: "" };
  try {
    return await waitFor(async () => {
      const cur = app.cache.current();
      const want = await referenceBytes(app);
      last = { served: cur?.json.toString("utf8") ?? "", want };
      return cur !== undefined && last.served === want && want;
    }, 8000);
  } catch (err) {
    expect(last.served).toBe(last.want); // the readable failure: which bytes differ
    throw err;
  }
}

const pick = <T>(rnd: () => number, items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;

/** One random write straight to the tables (as another instance, or hand SQL, would make it). */
async function randomWrite(app: ApiServer, rnd: () => number, step: number, ids: string[]): Promise<string> {
  const db = app.db;
  const roll = rnd();
  if (ids.length < 3 || roll < 0.2) {
    const id = `dep_${step}`;
    await db.insert(deployments).values({ id, name: id });
    await db.insert(deploymentRouting).values({
      id: `rt_${step}`,
      deploymentId: id,
      domain: `app${step}.example.com`,
      targetPort: 3000,
      sslEnabled: rnd() < 0.5,
      loadBalancerAlgo: pick(rnd, ["round-robin", "ip-hash"] as const),
    });
    await db.insert(deploymentLocations).values(
      [0, 1, 2].map((r) => ({
        id: `loc_${step}_${r}`,
        deploymentId: id,
        address: `10.${step % 250}.0.${r + 1}`,
        healthStatus: rnd() < 0.7 ? ("healthy" as const) : ("unhealthy" as const),
      })),
    );
    ids.push(id);
    return `created ${id}`;
  }
  const id = pick(rnd, ids);
  if (roll < 0.5) {
    const health = rnd() < 0.5 ? "healthy" : "unhealthy";
    await db.execute(
      sql`update deployment_locations set health_status = ${health} where id = (select id from deployment_locations where deployment_id = ${id} order by id limit 1)`,
    );
    return `replica of ${id} ${health}`;
  }
  if (roll < 0.6) {
    await db.execute(sql`update deployment_routing set target_port = target_port + 1 where deployment_id = ${id}`);
    return `port of ${id}`;
  }
  if (roll < 0.7) {
    await db
      .insert(deploymentMiddlewares)
      .values({ deploymentId: id, config: { strip_prefix: true, rate_limit: { average: 10 + step, burst: 5 } } })
      .onConflictDoUpdate({
        target: deploymentMiddlewares.deploymentId,
        set: { config: { rate_limit: { average: 20 + step, burst: 5 } } },
      });
    return `middlewares of ${id}`;
  }
  if (roll < 0.8) {
    await db
      .insert(deploymentTraffic)
      .values({ deploymentId: id, resilience: { retry: { attempts: 2, initial_interval_ms: 50 } } })
      .onConflictDoUpdate({ target: deploymentTraffic.deploymentId, set: { resilience: null } });
    return `resilience of ${id}`;
  }
  if (roll < 0.9) {
    await db.insert(deploymentRouting).values({
      id: `rt_${step}_api`,
      deploymentId: id,
      domain: `app${step}.example.com`,
      pathPrefix: "/api",
      targetPort: 3000,
    });
    return `route added to ${id}`;
  }
  await db.delete(deployments).where(sql`${deployments.id} = ${id}`);
  ids.splice(ids.indexOf(id), 1);
  return `deleted ${id}`;
}

describe.each(DRIVERS)("incremental rendering on %s", (driver) => {
  const app = useApiServer(driver, { RENDER_FULL_RELOAD_SECONDS: "0" });

  it("serves exactly what a full render gives after every write, re-reading only the deployments written", async () => {
    await servedMatchesReference(app);
    const before = { ...app.cache.renderCounts };
    const rnd = prng(driver === "pglite" ? 11 : 12);
    const ids: string[] = [];
    for (let step = 0; step < 30; step++) {
      const what = await randomWrite(app, rnd, step, ids);
      const served = await servedMatchesReference(app).catch((err: unknown) => {
        throw new Error(`after step ${step} (${what}): ${String(err)}`);
      });
      // What is served is one Traefik accepts (its schema and Traefik v3.7.9's semantics, ../shared).
      expect(traefikSchemaErrors(JSON.parse(served), { allowEmpty: served === "{}\n" })).toEqual([]);
    }
    // Every write above named its deployment: none needed a full read.
    expect(app.cache.renderCounts.full).toBe(before.full);
    expect(app.cache.renderCounts.incremental).toBeGreaterThan(before.incremental);
  });

  it("re-renders only the deployment an API write names", async () => {
    await app.seedDeployment("dep_api_one", { domain: "one.example.com", target_port: 3000 });
    await servedMatchesReference(app);
    const before = { ...app.cache.renderCounts };
    const res = await app.api.put("/api/v1/deployments/dep_api_one/routing", { target_port: 3001 });
    expect(res.status).toBe(200);
    const served = await servedMatchesReference(app);
    expect(served).toContain(":3001");
    expect(app.cache.renderCounts.full).toBe(before.full);
  });
});

describe.each(DRIVERS)("a lost notification on %s", (driver) => {
  // Its own server with nothing else announcing changes (no replicas to probe): the poll's rule is "the sequence
  // moved and no notification at all arrived for a whole interval".
  const app = useApiServer(driver, { RENDER_FULL_RELOAD_SECONDS: "0" });

  it("reads everything again when the change sequence moves and no notification ever names what changed", async () => {
    await servedMatchesReference(app);
    // The feed's first poll takes the sequence as it finds it: let it have happened (polls every 0.2 s here).
    await new Promise((resolve) => setTimeout(resolve, 600));
    const before = app.cache.renderCounts.full;
    // A writer whose NOTIFY was lost: the sequence steps, nothing is announced. After one more poll interval
    // without a notification (CONFIG_REFRESH_SECONDS is 0.2 s in tests) the poll asks for a full read.
    await app.db.execute(sql`select nextval('routing_change_seq')`);
    await waitFor(async () => app.cache.renderCounts.full > before, 5000);
  });
});

describe.each(DRIVERS)("periodic full reload on %s", (driver) => {
  const app = useApiServer(driver, { RENDER_FULL_RELOAD_SECONDS: "1" }, { allowErrorLogs: true });

  it("finds a change the feed never announced, counts the mismatch and serves the full render", async () => {
    await app.seedDeployment("dep_quiet", { domain: "quiet.example.com", target_port: 3000 });
    await app.seedLocation("dep_quiet", "loc_quiet", { address: "10.9.0.1" });
    await app.db.execute(sql`update deployment_locations set health_status = 'healthy' where id = 'loc_quiet'`);
    const announced = await servedMatchesReference(app);
    expect(announced).toContain("10.9.0.1");
    // With triggers off (session_replication_role = replica) the write sends no NOTIFY and steps no sequence: only
    // the periodic full reload can see it.
    await app.db.transaction(async (tx) => {
      await tx.execute(sql`set local session_replication_role = replica`);
      await tx.execute(sql`update deployment_locations set address = '10.9.0.2' where id = 'loc_quiet'`);
    });
    const served = await servedMatchesReference(app);
    expect(served).toContain("10.9.0.2");
    // Counted once no notification named it for a second (one could still have been on its way).
    await waitFor(async () =>
      /^obiente_render_incremental_mismatch_total [1-9]/m.test((await app.api.get("/metrics", { token: null })).text),
    );
    expect(app.errors.map((e) => e.message)).toContain(
      "incremental config differed from a full render; the full render is served",
    );
  });
});
