import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentLocations, deploymentRouting, deployments } from "../../schema/tables.js";
import { ROUTING_CHANNEL } from "../../src/db/change-feed.js";
import { openDb } from "../../src/db/client.js";
import { isUniqueViolation } from "../../src/db/errors.js";
import { migrate } from "../../src/db/migrate.js";
import { readChangeSeq } from "../../src/db/repo/snapshot.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";

describe.each(DRIVERS)("database behaviour on %s", (driver) => {
  let tdb: TestDb;
  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    await tdb.handle.db.insert(deployments).values([
      { id: "dep_a", name: "a" },
      { id: "dep_b", name: "b" },
    ]);
  });
  afterAll(async () => tdb?.close());

  it("applies migrations idempotently", async () => {
    await migrate(tdb.handle);
    await migrate(tdb.handle);
  });

  it("enforces (domain, path_prefix) uniqueness across deployments in the database", async () => {
    const db = tdb.handle.db;
    await db
      .insert(deploymentRouting)
      .values({ id: "rt_1", deploymentId: "dep_a", domain: "x.example.com", targetPort: 80 });
    const dup = db
      .insert(deploymentRouting)
      .values({ id: "rt_2", deploymentId: "dep_b", domain: "x.example.com", targetPort: 80 });
    const err = await dup.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isUniqueViolation(err)).toBe(true);
    // Same domain, another path: fine.
    await db
      .insert(deploymentRouting)
      .values({ id: "rt_3", deploymentId: "dep_b", domain: "x.example.com", pathPrefix: "/b", targetPort: 80 });
  });

  it("rejects out-of-range ports and unknown enum values by CHECK constraints", async () => {
    const db = tdb.handle.db;
    const bad = [
      db.execute(
        sql`insert into deployment_routing (id, deployment_id, domain, target_port) values ('rt_p', 'dep_a', 'p.example.com', 70000)`,
      ),
      db.execute(
        sql`insert into deployment_routing (id, deployment_id, domain, target_port, protocol) values ('rt_q', 'dep_a', 'q.example.com', 80, 'ftp')`,
      ),
      db.execute(
        sql`insert into deployment_locations (id, deployment_id, address, health_status) values ('l_x', 'dep_a', '10.0.0.1', 'fine')`,
      ),
    ];
    for (const p of bad) {
      await expect(p).rejects.toThrow();
    }
  });

  it("bumps the change sequence for routing and health changes, not for CPU readings", async () => {
    const db = tdb.handle.db;
    await db.insert(deploymentLocations).values({ id: "l_1", deploymentId: "dep_a", address: "10.0.0.1" });
    const s0 = await readChangeSeq(db);
    await db
      .update(deploymentLocations)
      .set({ cpuUsage: 55, lastCheckAt: new Date() })
      .where(eq(deploymentLocations.id, "l_1"));
    expect(await readChangeSeq(db)).toBe(s0);
    await db.update(deploymentLocations).set({ healthStatus: "healthy" }).where(eq(deploymentLocations.id, "l_1"));
    const s1 = await readChangeSeq(db);
    expect(BigInt(s1)).toBeGreaterThan(BigInt(s0));
    await db.update(deploymentRouting).set({ targetPort: 81 }).where(eq(deploymentRouting.id, "rt_1"));
    expect(BigInt(await readChangeSeq(db))).toBeGreaterThan(BigInt(s1));
  });

  it("sends NOTIFY on a routing change to listeners on another connection", async () => {
    // PostgreSQL: a second pool, as another service instance would have. PGlite: its single session.
    const other = tdb.url ? await openDb({ DATABASE_URL: tdb.url, DATA_DIR: "" }) : tdb.handle;
    let notified = 0;
    const unlisten = await other.listen(ROUTING_CHANNEL, () => notified++);
    try {
      await tdb.handle.db.update(deploymentRouting).set({ targetPort: 82 }).where(eq(deploymentRouting.id, "rt_1"));
      await waitFor(async () => notified > 0, 3000);
    } finally {
      await unlisten();
      if (other !== tdb.handle) {
        await other.close();
      }
    }
  });

  it("deletes a deployment's routes and replicas with it", async () => {
    const db = tdb.handle.db;
    await db.delete(deployments).where(eq(deployments.id, "dep_a"));
    expect(await db.select().from(deploymentRouting).where(eq(deploymentRouting.deploymentId, "dep_a"))).toEqual([]);
    expect(await db.select().from(deploymentLocations).where(eq(deploymentLocations.deploymentId, "dep_a"))).toEqual(
      [],
    );
  });
});
