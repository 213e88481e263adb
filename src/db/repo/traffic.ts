import { eq, sql } from "drizzle-orm";
import { deploymentTraffic, type TrafficRow } from "../../../schema/tables.js";
import type { Db } from "../client.js";
import { isForeignKeyViolation, NotFound } from "../errors.js";

/** The parts of a deployment's traffic settings (deployment_traffic columns). */
export type TrafficPart = "split" | "geo" | "resilience";

/** Every deployment's stored traffic settings, `{split, geo, resilience}` per deployment id (render validates). */
export async function loadAllTraffic(db: Db): Promise<Map<string, unknown>> {
  const rows = await db.select().from(deploymentTraffic);
  return new Map(rows.map((r) => [r.deploymentId, { split: r.split, geo: r.geo, resilience: r.resilience }]));
}

/** One deployment's stored traffic settings (all parts null when none were ever set). */
export async function getTraffic(db: Db, deploymentId: string): Promise<Pick<TrafficRow, TrafficPart>> {
  const [row] = await db.select().from(deploymentTraffic).where(eq(deploymentTraffic.deploymentId, deploymentId));
  return { split: row?.split ?? null, geo: row?.geo ?? null, resilience: row?.resilience ?? null };
}

/** Sets (or, with null, clears) one part of a deployment's traffic settings; the change feed re-renders. */
export async function setTrafficPart(
  db: Db,
  deploymentId: string,
  part: TrafficPart,
  value: Record<string, unknown> | null,
): Promise<void> {
  const now = new Date();
  try {
    await db
      .insert(deploymentTraffic)
      .values({ deploymentId, [part]: value, updatedAt: now })
      .onConflictDoUpdate({
        target: deploymentTraffic.deploymentId,
        set: { [part]: value === null ? sql`null` : sql`excluded.${sql.identifier(part)}`, updatedAt: now },
      });
  } catch (err) {
    if (isForeignKeyViolation(err)) {
      throw new NotFound("deployment", deploymentId);
    }
    throw err;
  }
}
