import { and, asc, count, eq, sql } from "drizzle-orm";
import type { ReplicaStatus } from "../../../schema/enums.js";
import { deploymentLocations, type LocationRow } from "../../../schema/tables.js";
import type { Db } from "../client.js";
import { Conflict, isForeignKeyViolation, NotFound } from "../errors.js";
import { recordHealthTransitions } from "./health.js";

export interface LocationInput {
  nodeId?: string | undefined;
  nodeHostname?: string | undefined;
  address: string;
  port?: number | null | undefined;
  containerId?: string | undefined;
  status: ReplicaStatus;
  cpuUsage?: number | null | undefined;
  /** Omitted: unchanged (`stable` for a new replica). */
  track?: string | undefined;
  /** Omitted: unchanged (none for a new replica). */
  region?: string | null | undefined;
}

export async function listLocations(db: Db, deploymentId: string): Promise<LocationRow[]> {
  return db
    .select()
    .from(deploymentLocations)
    .where(eq(deploymentLocations.deploymentId, deploymentId))
    .orderBy(asc(deploymentLocations.id));
}

export async function getLocation(db: Db, deploymentId: string, id: string): Promise<LocationRow> {
  const [row] = await db
    .select()
    .from(deploymentLocations)
    .where(and(eq(deploymentLocations.deploymentId, deploymentId), eq(deploymentLocations.id, id)));
  if (!row) {
    throw new NotFound("location", id);
  }
  return row;
}

/**
 * Registers or updates a replica. A new address or port resets health to `unknown` (the new endpoint is
 * unproven) and so takes it out of rotation until its first successful probe.
 */
export async function upsertLocation(
  db: Db,
  deploymentId: string,
  id: string,
  input: LocationInput,
): Promise<{ row: LocationRow; created: boolean; routingChanged: boolean }> {
  const t = deploymentLocations;
  const [before] = await db
    .select()
    .from(t)
    .where(and(eq(t.deploymentId, deploymentId), eq(t.id, id)));
  const now = new Date();
  const cpu =
    input.cpuUsage === undefined
      ? {}
      : { cpuUsage: input.cpuUsage, cpuUpdatedAt: input.cpuUsage === null ? null : now };
  // An upsert without `port` keeps the stored port, so only a given port can make the replica move.
  const moved =
    input.port === undefined
      ? sql`(${t.address} is distinct from excluded.address)`
      : sql`(${t.address} is distinct from excluded.address or ${t.port} is distinct from excluded.port)`;
  try {
    const rows = await db
      .insert(t)
      .values({
        id,
        deploymentId,
        nodeId: input.nodeId ?? "",
        nodeHostname: input.nodeHostname ?? "",
        address: input.address,
        port: input.port ?? null,
        containerId: input.containerId ?? "",
        status: input.status,
        track: input.track ?? "stable",
        region: input.region ?? null,
        ...cpu,
      })
      .onConflictDoUpdate({
        target: t.id,
        set: {
          nodeId: input.nodeId === undefined ? sql`${t.nodeId}` : sql`excluded.node_id`,
          nodeHostname: input.nodeHostname === undefined ? sql`${t.nodeHostname}` : sql`excluded.node_hostname`,
          containerId: input.containerId === undefined ? sql`${t.containerId}` : sql`excluded.container_id`,
          address: sql`excluded.address`,
          port: input.port === undefined ? sql`${t.port}` : sql`excluded.port`,
          status: sql`excluded.status`,
          track: input.track === undefined ? sql`${t.track}` : sql`excluded.track`,
          region: input.region === undefined ? sql`${t.region}` : sql`excluded.region`,
          ...cpu,
          healthStatus: sql`case when ${moved} then 'unknown' else ${t.healthStatus} end`,
          consecutiveSuccesses: sql`case when ${moved} then 0 else ${t.consecutiveSuccesses} end`,
          consecutiveFailures: sql`case when ${moved} then 0 else ${t.consecutiveFailures} end`,
          nextProbeAt: sql`case when ${moved} then null else ${t.nextProbeAt} end`, // probe a moved replica at once
          updatedAt: now,
        },
        setWhere: sql`${t.deploymentId} = excluded.deployment_id`,
      })
      .returning({ id: t.id, inserted: sql<boolean>`(xmax = 0)` });
    const [hit] = rows;
    if (!hit) {
      throw new Conflict(`Location ${id} belongs to another deployment.`, "LOCATION_CONFLICT", { location_id: id });
    }
    const row = await getLocation(db, deploymentId, id);
    // A replica that moved starts over as unknown: its history and the event stream say so.
    if (before && before.healthStatus !== row.healthStatus) {
      await recordHealthTransitions(db, [
        {
          locationId: id,
          deploymentId,
          from: before.healthStatus,
          to: row.healthStatus,
          at: now,
          reason: `moved from ${before.address}:${before.port ?? "route port"} to ${row.address}:${row.port ?? "route port"}`,
          source: "registration",
        },
      ]);
    }
    // Only what the renderer reads can change the config; a CPU reading alone never does.
    const routingChanged =
      !before ||
      before.address !== row.address ||
      before.port !== row.port ||
      before.status !== row.status ||
      before.track !== row.track ||
      before.region !== row.region ||
      before.healthStatus !== row.healthStatus;
    return { row, created: hit.inserted, routingChanged };
  } catch (err) {
    if (isForeignKeyViolation(err)) {
      throw new NotFound("deployment", deploymentId);
    }
    throw err;
  }
}

export async function deleteLocation(db: Db, deploymentId: string, id: string): Promise<void> {
  const gone = await db
    .delete(deploymentLocations)
    .where(and(eq(deploymentLocations.deploymentId, deploymentId), eq(deploymentLocations.id, id)))
    .returning({ id: deploymentLocations.id });
  if (gone.length === 0) {
    throw new NotFound("location", id);
  }
}

export async function countReplicasByHealth(db: Db): Promise<Record<string, number>> {
  const rows = await db
    .select({ health: deploymentLocations.healthStatus, status: deploymentLocations.status, n: count() })
    .from(deploymentLocations)
    .groupBy(deploymentLocations.healthStatus, deploymentLocations.status);
  const out: Record<string, number> = { healthy: 0, unhealthy: 0, unknown: 0, not_running: 0 };
  for (const r of rows) {
    const key = r.status === "running" ? r.health : "not_running";
    out[key] = (out[key] ?? 0) + r.n;
  }
  return out;
}
