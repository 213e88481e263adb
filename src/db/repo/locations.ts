import { and, asc, count, eq, isNotNull, isNull, lte, ne, sql } from "drizzle-orm";
import type { ReplicaStatus } from "../../../schema/enums.js";
import { deploymentLocations, deployments, type LocationRow } from "../../../schema/tables.js";
import { byId } from "../../lib/order.js";
import type { ReplicaAllowList } from "../../render/address.js";
import { checkAddress } from "../../render/validate.js";
import type { Db } from "../client.js";
import { Conflict, isForeignKeyViolation, NotFound } from "../errors.js";
import { type EventType, recordEvents } from "./events.js";
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
          // A heartbeat keeps a drain; a move ends it: the new address is a new endpoint (a replacement container
          // registered under the same id), which must not inherit the old one's way out.
          drainStartedAt: sql`case when ${moved} then null else ${t.drainStartedAt} end`,
          drainUntil: sql`case when ${moved} then null else ${t.drainUntil} end`,
          drainedAt: sql`case when ${moved} then null else ${t.drainedAt} end`,
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
      before.healthStatus !== row.healthStatus ||
      before.drainStartedAt?.getTime() !== row.drainStartedAt?.getTime();
    return { row, created: hit.inserted, routingChanged };
  } catch (err) {
    if (isForeignKeyViolation(err)) {
      throw new NotFound("deployment", deploymentId);
    }
    throw err;
  }
}

// ── Draining ────────────────────────────────────────────────────────────────────────────────────────

// Until EVENT_TYPES (events.ts) lists them.
const DRAINING: EventType = "replica.draining";
const DRAINED: EventType = "replica.drained";

/** Draining started and not cancelled: the replica is out of the rendered servers and the proxy's table. */
export const isDraining = (l: Pick<LocationRow, "drainStartedAt">): boolean => l.drainStartedAt !== null;

/** The drain period is over (or the sweep already said so): the orchestrator may stop the replica. */
export const isDrained = (l: Pick<LocationRow, "drainStartedAt" | "drainUntil" | "drainedAt">, now: Date): boolean =>
  l.drainStartedAt !== null && (l.drainedAt !== null || (l.drainUntil !== null && l.drainUntil <= now));

export interface DrainRequest {
  seconds: number;
  /** Drain even the last healthy replica of its track. */
  force: boolean;
  now: Date;
}

/**
 * Starts (or re-times) a replica's drain: from now it gets no new requests, and after `seconds` it counts as
 * removed. Draining again keeps the start and sets a new end from now (longer or shorter); a drain whose period
 * was over starts a new period (another `replica.drained` follows it). Refused with 409 LAST_HEALTHY_REPLICA
 * when the replica is the last healthy, running, non-draining one of its track (tracks are separate pools:
 * without a split only `stable` gets traffic), unless `force`. The deployment row is locked first, so two
 * drains of a deployment's last two healthy replicas cannot both pass the check.
 */
export async function drainLocation(
  db: Db,
  deploymentId: string,
  id: string,
  req: DrainRequest,
): Promise<{ row: LocationRow; wasDraining: boolean }> {
  const t = deploymentLocations;
  const [dep] = await db
    .select({ id: deployments.id })
    .from(deployments)
    .where(eq(deployments.id, deploymentId))
    .for("update");
  if (!dep) {
    throw new NotFound("deployment", deploymentId);
  }
  const before = await getLocation(db, deploymentId, id);
  const wasDraining = isDraining(before);
  const serving = before.status === "running" && before.healthStatus === "healthy";
  let forced = false;
  if (!wasDraining && serving) {
    const [others] = await db
      .select({ n: count() })
      .from(t)
      .where(
        and(
          eq(t.deploymentId, deploymentId),
          ne(t.id, id),
          eq(t.track, before.track),
          eq(t.status, "running"),
          eq(t.healthStatus, "healthy"),
          isNull(t.drainStartedAt),
        ),
      );
    if ((others?.n ?? 0) === 0) {
      if (!req.force) {
        throw new Conflict(
          `Replica ${id} is the last healthy replica of track ${before.track} of deployment ${deploymentId}: ` +
            "draining it would answer every request with 503. Add a replica first, or pass force: true.",
          "LAST_HEALTHY_REPLICA",
          { location_id: id, track: before.track },
        );
      }
      forced = true;
    }
  }
  const until = new Date(req.now.getTime() + req.seconds * 1000);
  const [row] = await db
    .update(t)
    .set({ drainStartedAt: before.drainStartedAt ?? req.now, drainUntil: until, drainedAt: null })
    .where(and(eq(t.deploymentId, deploymentId), eq(t.id, id)))
    .returning();
  if (!row) {
    throw new NotFound("location", id); // deleted meanwhile
  }
  await recordEvents(db, [
    {
      type: DRAINING,
      deploymentId,
      subject: id,
      data: {
        drain_until: until.toISOString(),
        seconds: req.seconds,
        forced,
        extended: wasDraining,
        address: row.address,
        port: row.port,
        track: row.track,
      },
    },
  ]);
  return { row, wasDraining };
}

/** Ends a drain (the replica is routed again once healthy); a replica that is not draining is left as it is. */
export async function cancelDrain(
  db: Db,
  deploymentId: string,
  id: string,
): Promise<{ row: LocationRow; wasDraining: boolean }> {
  const before = await getLocation(db, deploymentId, id);
  if (!isDraining(before)) {
    return { row: before, wasDraining: false };
  }
  const t = deploymentLocations;
  const [row] = await db
    .update(t)
    .set({ drainStartedAt: null, drainUntil: null, drainedAt: null })
    .where(and(eq(t.deploymentId, deploymentId), eq(t.id, id)))
    .returning();
  if (!row) {
    throw new NotFound("location", id);
  }
  return { row, wasDraining: true };
}

export interface DrainedReplica {
  id: string;
  deploymentId: string;
  drainStartedAt: Date;
  drainUntil: Date;
}

/**
 * Marks every replica whose drain period ended by `now` as drained and records one `replica.drained` event each,
 * in one transaction. The update is conditional (`drained_at is null`): with several instances sweeping, a row
 * locked by one is re-checked by the other after the first commits, so exactly one of them writes its event.
 * drained_at is not in the change feed's trigger: nothing rendered changes (the replica left at drain start).
 */
export async function sweepDrains(db: Db, now: Date): Promise<DrainedReplica[]> {
  const t = deploymentLocations;
  return db.transaction(async (tx) => {
    const rows = await tx
      .update(t)
      .set({ drainedAt: now })
      .where(and(isNotNull(t.drainStartedAt), isNull(t.drainedAt), lte(t.drainUntil, now)))
      .returning({
        id: t.id,
        deploymentId: t.deploymentId,
        address: t.address,
        port: t.port,
        drainStartedAt: t.drainStartedAt,
        drainUntil: t.drainUntil,
      });
    const drained = rows.flatMap((r) =>
      r.drainStartedAt && r.drainUntil ? [{ ...r, drainStartedAt: r.drainStartedAt, drainUntil: r.drainUntil }] : [],
    );
    drained.sort(byId);
    await recordEvents(
      tx,
      drained.map((r) => ({
        type: DRAINED,
        deploymentId: r.deploymentId,
        subject: r.id,
        data: {
          drain_started_at: r.drainStartedAt.toISOString(),
          drain_until: r.drainUntil.toISOString(),
          address: r.address,
          port: r.port,
        },
      })),
    );
    return drained.map(({ id, deploymentId, drainStartedAt, drainUntil }) => ({
      id,
      deploymentId,
      drainStartedAt,
      drainUntil,
    }));
  });
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

/**
 * A deployment's replicas that get traffic now, as the renderer sees them: running, healthy, not draining, and an
 * address the renderer would dial (REPLICA_ALLOWED_CIDRS). GET …/split and …/geo count them per track and region.
 */
export async function listServingReplicas(
  db: Db,
  deploymentId: string,
  allowed: ReplicaAllowList | undefined,
): Promise<LocationRow[]> {
  return (await listLocations(db, deploymentId)).filter(
    (r) =>
      r.status === "running" &&
      r.healthStatus === "healthy" &&
      r.drainStartedAt === null &&
      checkAddress(r.address, allowed) === undefined,
  );
}
