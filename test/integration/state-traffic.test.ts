import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentRollouts } from "../../schema/tables.js";
import { getTraffic, setTrafficPart } from "../../src/db/repo/traffic.js";
import { applyState, dumpState } from "../../src/export/state-apply.js";
import { type StateDocument, validateState } from "../../src/export/state-schema.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";

const resolver = () => "letsencrypt";
const opts = { prune: false, dryRun: false, defaultResolver: resolver };

const SPLIT = { weights: { stable: 90, canary: 10 } };
const GEO = {
  header: "CF-IPCountry",
  regions: { eu: ["DE", "FR"], us: ["US", "CA"] },
  failover: { eu: ["us"] },
  default: "eu",
};
const RESILIENCE = { retry: { attempts: 3, initial_interval_ms: 100 } };

function valid(raw: unknown): StateDocument {
  const v = validateState(raw, { trustedProxies: [] });
  if (!v.ok) {
    throw new Error(JSON.stringify(v.errors));
  }
  return v.doc;
}

const routing = (domain: string, algo = "round-robin") => ({
  target_port: 3000,
  load_balancer_algo: algo,
  domains: [{ domain }],
});

/** The file both tests apply: a canary deployment (with `split` when given, and resilience) and a geo one. */
const twoDeployments = (split: typeof SPLIT | undefined) => ({
  version: 1,
  deployments: [
    {
      id: "dep_canary",
      name: "canary",
      routing: routing("canary.example.com"),
      ...(split ? { split } : {}),
      resilience: RESILIENCE,
    },
    { id: "dep_geo", name: "geo", routing: routing("geo.example.com"), geo: GEO },
  ],
});

describe.each(DRIVERS)("traffic settings in the state document on %s", (driver) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await makeTestDb(driver);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("applies split, geo and resilience from a file, dumps them back, and a second apply changes nothing", async () => {
    const doc = valid(twoDeployments(SPLIT));
    const first = await applyState(t.handle.db, doc, opts);
    expect(first.applied).toBe(true);
    expect(first.changes.map((c) => `${c.kind} ${c.op} ${c.key}`)).toEqual(
      expect.arrayContaining(["split create dep_canary", "resilience create dep_canary", "geo create dep_geo"]),
    );
    expect((await getTraffic(t.handle.db, "dep_canary")).split).toMatchObject(SPLIT);
    expect((await getTraffic(t.handle.db, "dep_geo")).geo).toMatchObject(GEO);
    const dumped = await dumpState(t.handle.db);
    const canary = dumped.deployments.find((d) => d.id === "dep_canary");
    expect(canary?.split).toMatchObject(SPLIT);
    expect(canary?.resilience).toMatchObject(RESILIENCE);
    expect(dumped.deployments.find((d) => d.id === "dep_geo")?.geo).toMatchObject(GEO);
    const again = await applyState(t.handle.db, valid(dumped), opts);
    expect(again).toMatchObject({ applied: false, changes: [] });
  });

  it("a file without the split removes it; a changed weight is one field change", async () => {
    await setTrafficPart(t.handle.db, "dep_canary", "split", { weights: { stable: 50, canary: 50 } });
    const diff = await applyState(t.handle.db, valid(twoDeployments(SPLIT)), { ...opts, dryRun: true });
    expect(diff.changes).toEqual([
      {
        kind: "split",
        op: "update",
        key: "dep_canary",
        fields: [{ field: "weights", before: { canary: 50, stable: 50 }, after: { canary: 10, stable: 90 } }],
      },
    ]);
    const removed = await applyState(t.handle.db, valid(twoDeployments(undefined)), opts);
    expect(removed.changes.map((c) => `${c.kind} ${c.op}`)).toEqual(["split delete"]);
    expect((await getTraffic(t.handle.db, "dep_canary")).split).toBeNull();
  });

  it("refuses to change a split a running rollout owns, writing nothing, and applies once the rollout ended", async () => {
    await applyState(t.handle.db, valid(twoDeployments(SPLIT)), opts);
    await t.handle.db.insert(deploymentRollouts).values({
      deploymentId: "dep_canary",
      track: "canary",
      steps: [10, 50, 100],
      intervalSeconds: 300,
      abortWhen: {},
      state: "running",
      history: [],
    });
    const other = { weights: { stable: 50, canary: 50 } };
    await expect(applyState(t.handle.db, valid(twoDeployments(other)), opts)).rejects.toMatchObject({
      code: "ROLLOUT_ACTIVE",
    });
    expect((await getTraffic(t.handle.db, "dep_canary")).split).toMatchObject(SPLIT); // nothing written
    await t.handle.db
      .update(deploymentRollouts)
      .set({ state: "aborted" })
      .where(eq(deploymentRollouts.deploymentId, "dep_canary"));
    expect((await applyState(t.handle.db, valid(twoDeployments(other)), opts)).applied).toBe(true);
    expect((await getTraffic(t.handle.db, "dep_canary")).split).toMatchObject(other);
  });

  it("refuses a file with both a split and geo routing, or a split on a least-conn deployment, naming the field", () => {
    const both = validateState(
      {
        version: 1,
        deployments: [{ id: "dep_x", name: "x", routing: routing("x.example.com"), split: SPLIT, geo: GEO }],
      },
      { trustedProxies: [] },
    );
    expect(both).toMatchObject({ ok: false, errors: [{ location: "deployments[0].geo" }] });
    const leastConn = validateState(
      {
        version: 1,
        deployments: [{ id: "dep_y", name: "y", routing: routing("y.example.com", "least-conn"), split: SPLIT }],
      },
      { trustedProxies: [] },
    );
    expect(leastConn).toMatchObject({ ok: false, errors: [{ location: "deployments[0].split" }] });
  });
});
