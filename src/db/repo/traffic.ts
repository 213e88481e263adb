import { and, eq, inArray, sql } from "drizzle-orm";
import { deploymentRouting, deploymentTraffic, type TrafficRow } from "../../../schema/tables.js";
import type { Db } from "../client.js";
import { Conflict, isForeignKeyViolation, NotFound } from "../errors.js";

/** The parts of a deployment's traffic settings (deployment_traffic columns). */
export type TrafficPart = "split" | "geo" | "resilience";

/** Every deployment's stored traffic settings, `{split, geo, resilience}` per deployment id (render validates). */
export async function loadAllTraffic(db: Db, ids?: readonly string[]): Promise<Map<string, unknown>> {
  const q = db.select().from(deploymentTraffic);
  const rows = await (ids ? q.where(inArray(deploymentTraffic.deploymentId, [...ids])) : q);
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

/**
 * A split and geo routing exclude each other, and neither applies to `least-conn` routes (the fallback proxy balances
 * those by CPU and knows no tracks or regions): 409 TRAFFIC_CONFLICT naming what is in the way.
 */
export async function refuseTrafficConflict(db: Db, deploymentId: string, part: "split" | "geo"): Promise<void> {
  const other = part === "split" ? "geo" : "split";
  if ((await getTraffic(db, deploymentId))[other] !== null) {
    const have = other === "geo" ? "geographic routing" : "a traffic split";
    throw new Conflict(
      `Deployment ${deploymentId} has ${have}; a traffic split and geographic routing are exclusive (DELETE …/${other} first).`,
      "TRAFFIC_CONFLICT",
      { conflicts_with: other },
    );
  }
  const [leastConn] = await db
    .select({ id: deploymentRouting.id })
    .from(deploymentRouting)
    .where(and(eq(deploymentRouting.deploymentId, deploymentId), eq(deploymentRouting.loadBalancerAlgo, "least-conn")))
    .limit(1);
  if (leastConn) {
    const what = part === "split" ? "a split" : "geographic routing";
    throw new Conflict(
      `Deployment ${deploymentId} uses least-conn: the fallback proxy balances its requests and knows no tracks or ` +
        `regions, so ${what} cannot apply (choose round-robin or ip-hash first).`,
      "TRAFFIC_CONFLICT",
      { conflicts_with: "load_balancer_algo" },
    );
  }
}
