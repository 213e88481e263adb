import { and, desc, eq, inArray, sql } from "drizzle-orm";
import type { Health, HealthMode, Protocol } from "../../../schema/enums.js";
import { deploymentLocations, deployments, type HealthEventRow, locationHealthEvents } from "../../../schema/tables.js";
import {
  foldObservations,
  type HealthPolicy,
  LEASE_MARGIN_MS,
  type Observation,
  type ObservationInput,
  type ReplicaTransition,
  type ReplicaUpdate,
} from "../../health/state.js";
import { type Db, rowsOf } from "../client.js";
import { NotFound } from "../errors.js";
import { recordEvents } from "./events.js";

/** A replica claimed for probing, with its deployment's check settings (null = service default). */
export interface ClaimedReplica {
  id: string;
  deploymentId: string;
  address: string;
  port: number | null;
  /** Protocol of the deployment's primary route (the route that also supplies a missing port); null = no route. */
  protocol: Protocol | null;
  /** When the probe was due (null: at once, e.g. a new or moved replica). */
  dueAt: Date | null;
  healthPath: string | null;
  healthIntervalSeconds: number | null;
  healthTimeoutSeconds: number | null;
  healthExpectedStatus: string | null;
  healthMode: HealthMode | null;
  tlsServerName: string | null;
  tlsCaPem: string | null;
  tlsInsecureSkipVerify: boolean;
}

export interface ClaimOptions {
  owner: string;
  now: Date;
  limit: number;
  /** The service-wide probe timeout, for deployments without their own: each lease covers its own timeout. */
  defaultTimeoutMs: number;
  /** Also claim replicas due this soon (half a scheduler tick; see dueSlackMs). */
  dueSlackMs?: number;
  /** Claim this replica regardless of its due time (probe at once on registration). */
  onlyId?: string;
}

/**
 * Claims up to `limit` running replicas whose probe is due and not leased by a live instance: `FOR UPDATE SKIP
 * LOCKED` lets several instances claim disjoint sets, and the lease lets another take over a dead one's share.
 * Each lease lasts `probeLeaseMs(timeout)` with the replica's own timeout, so it outlives the probe.
 */
export async function claimDueReplicas(db: Db, opts: ClaimOptions): Promise<ClaimedReplica[]> {
  const now = opts.now.toISOString();
  const dueBy = new Date(opts.now.getTime() + (opts.dueSlackMs ?? 0)).toISOString();
  const due = opts.onlyId
    ? sql`l.id = ${opts.onlyId}`
    : sql`(l.next_probe_at is null or l.next_probe_at <= ${dueBy}::timestamptz)`;
  // probeLeaseMs(timeout) = timeout + LEASE_MARGIN_MS, per row in SQL.
  const leaseMs = sql`(coalesce(d.health_timeout_seconds * 1000, ${opts.defaultTimeoutMs}::int) + ${LEASE_MARGIN_MS}::int)`;
  const result = await db.execute(sql`
    with due as (
      select l.id, l.deployment_id from deployment_locations l
      where l.status = 'running' and ${due}
        and (l.probe_lease_until is null or l.probe_lease_until < ${now}::timestamptz)
      order by l.next_probe_at nulls first, l.id
      limit ${opts.limit}
      for update skip locked
    )
    update deployment_locations l
       set probe_lease_until = ${now}::timestamptz + ${leaseMs} * interval '1 millisecond',
           probe_lease_owner = ${opts.owner}
      from due
      join deployments d on d.id = due.deployment_id
      left join lateral (
        select r.target_port, r.protocol from deployment_routing r where r.deployment_id = due.deployment_id
        order by r.is_primary desc, r.created_at, r.id limit 1
      ) pr on true
     where l.id = due.id
    returning l.id, l.deployment_id as "deploymentId", l.address, coalesce(l.port, pr.target_port) as port,
      pr.protocol, (extract(epoch from l.next_probe_at) * 1000)::float8 as "dueMs",
      d.health_path as "healthPath", d.health_interval_seconds as "healthIntervalSeconds",
      d.health_timeout_seconds as "healthTimeoutSeconds", d.health_expected_status as "healthExpectedStatus",
      d.health_mode as "healthMode", d.backend_tls_server_name as "tlsServerName",
      d.backend_tls_ca_pem as "tlsCaPem", d.backend_tls_insecure_skip_verify as "tlsInsecureSkipVerify"`);
  return rowsOf<Omit<ClaimedReplica, "dueAt"> & { dueMs: number | string | null }>(result).map(({ dueMs, ...r }) => ({
    ...r,
    port: r.port === null ? null : Number(r.port),
    dueAt: dueMs === null ? null : new Date(Number(dueMs)), // epoch ms: the same on both drivers
  }));
}

export type { ObservationInput } from "../../health/state.js";
/** A transition with the replica it happened to. */
export type RecordedTransition = ReplicaTransition;

/**
 * Records observations: reads the replicas under row locks, folds the observations into them
 * (foldObservations), and writes one update per replica and the transitions' events. Returns the transitions.
 */
export async function recordObservations(
  db: Db,
  items: ObservationInput[],
  policy: HealthPolicy,
): Promise<RecordedTransition[]> {
  if (items.length === 0) {
    return [];
  }
  const t = deploymentLocations;
  return db.transaction(async (tx) => {
    const rows = await tx
      .select({
        id: t.id,
        deploymentId: t.deploymentId,
        address: t.address,
        healthStatus: t.healthStatus,
        okStreak: t.consecutiveSuccesses,
        failStreak: t.consecutiveFailures,
        leaseOwner: t.probeLeaseOwner,
      })
      .from(t)
      .where(
        inArray(
          t.id,
          items.map((i) => i.locationId),
        ),
      )
      .orderBy(t.id) // one lock order for every writer: no deadlocks between instances
      .for("update");
    const { updates, released, transitions, events } = foldObservations(rows, items, policy);
    const t2 = tx as unknown as Db;
    // One statement per batch, not one per replica: at 5,000 replicas per round the round trips dominate.
    for (let i = 0; i < updates.length; i += UPDATE_CHUNK) {
      await applyUpdates(t2, updates.slice(i, i + UPDATE_CHUNK));
    }
    if (released.length > 0) {
      await tx.update(t).set({ probeLeaseUntil: null, probeLeaseOwner: null }).where(inArray(t.id, released));
    }
    await recordHealthTransitions(t2, events);
    return transitions;
  });
}

const UPDATE_CHUNK = 500;

/** `UPDATE … FROM (VALUES …)`: every parameter travels as text and is cast in SET, the same on both drivers. */
async function applyUpdates(db: Db, rows: ReplicaUpdate[]): Promise<void> {
  if (rows.length === 0) {
    return;
  }
  const str = (v: string | number | boolean | Date | null | undefined) =>
    v === undefined || v === null ? null : v instanceof Date ? v.toISOString() : String(v);
  const values = sql.join(
    rows.map(
      (r) =>
        sql`(${r.id}, ${r.health}, ${str(r.ok)}, ${str(r.fail)}, ${str(r.at)}, ${r.error}, ${str(r.cpu)}, ${str(r.next)}, ${str(r.report)}, ${str(r.release)})`,
    ),
    sql`, `,
  );
  await db.execute(sql`
    update deployment_locations as l set
      health_status = v.health,
      consecutive_successes = v.ok::int,
      consecutive_failures = v.fail::int,
      last_check_at = v.at::timestamptz,
      last_error = v.err,
      cpu_usage = coalesce(v.cpu::real, l.cpu_usage),
      cpu_updated_at = case when v.cpu is null then l.cpu_updated_at else v.at::timestamptz end,
      next_probe_at = coalesce(v.next::timestamptz, l.next_probe_at),
      last_failure_report_at = case when v.report::boolean then v.at::timestamptz else l.last_failure_report_at end,
      probe_lease_until = case when v.release::boolean then null else l.probe_lease_until end,
      probe_lease_owner = case when v.release::boolean then null else l.probe_lease_owner end
    from (values ${values}) as v(id, health, ok, fail, at, err, cpu, next, report, release)
    where l.id = v.id`);
}

/** Gives up leases without recording anything (a probe round aborted or a replica skipped). */
export async function releaseLeases(db: Db, owner: string, ids: string[], nextProbeAt?: Date): Promise<void> {
  if (ids.length === 0) {
    return;
  }
  const t = deploymentLocations;
  await db
    .update(t)
    .set({ probeLeaseUntil: null, probeLeaseOwner: null, ...(nextProbeAt ? { nextProbeAt } : {}) })
    .where(and(inArray(t.id, ids), eq(t.probeLeaseOwner, owner)));
}

/**
 * A request failure reported by someone else (fallback proxy, log processor): unhealthy at once. Reports for
 * the same replica within `collapseMs` of the last one collapse into it.
 */
export async function reportFailure(
  db: Db,
  deploymentId: string,
  locationId: string,
  obs: Observation,
  policy: HealthPolicy,
  collapseMs = 1000,
): Promise<{ collapsed: boolean; transition: RecordedTransition | undefined }> {
  const t = deploymentLocations;
  const [row] = await db
    .select({ last: t.lastFailureReportAt })
    .from(t)
    .where(and(eq(t.id, locationId), eq(t.deploymentId, deploymentId)));
  if (!row) {
    throw new NotFound("location", locationId);
  }
  if (row.last && Math.abs(obs.at.getTime() - row.last.getTime()) < collapseMs) {
    return { collapsed: true, transition: undefined };
  }
  const [transition] = await recordObservations(db, [{ locationId, obs, source: "report" }], policy);
  return { collapsed: false, transition };
}

export async function listHealthEvents(
  db: Db,
  deploymentId: string,
  locationId: string,
  limit: number,
): Promise<HealthEventRow[]> {
  return db
    .select()
    .from(locationHealthEvents)
    .where(and(eq(locationHealthEvents.deploymentId, deploymentId), eq(locationHealthEvents.locationId, locationId)))
    .orderBy(desc(locationHealthEvents.at), desc(locationHealthEvents.id))
    .limit(limit);
}

export interface HealthSettings {
  path?: string | null | undefined;
  intervalSeconds?: number | null | undefined;
  timeoutSeconds?: number | null | undefined;
  expectedStatus?: string | null | undefined;
  mode?: HealthMode | null | undefined;
  /** null clears all three backend TLS settings. */
  tls?:
    | {
        serverName?: string | null | undefined;
        caPem?: string | null | undefined;
        insecureSkipVerify?: boolean | null | undefined;
      }
    | null
    | undefined;
}

export async function setHealthSettings(db: Db, deploymentId: string, s: HealthSettings) {
  const tls = s.tls === null ? { serverName: null, caPem: null, insecureSkipVerify: false } : s.tls;
  const set = {
    ...(s.path === undefined ? {} : { healthPath: s.path }),
    ...(s.intervalSeconds === undefined ? {} : { healthIntervalSeconds: s.intervalSeconds }),
    ...(s.timeoutSeconds === undefined ? {} : { healthTimeoutSeconds: s.timeoutSeconds }),
    ...(s.expectedStatus === undefined ? {} : { healthExpectedStatus: s.expectedStatus }),
    ...(s.mode === undefined ? {} : { healthMode: s.mode }),
    ...(tls?.serverName === undefined ? {} : { backendTlsServerName: tls.serverName }),
    ...(tls?.caPem === undefined ? {} : { backendTlsCaPem: tls.caPem }),
    ...(tls?.insecureSkipVerify === undefined ? {} : { backendTlsInsecureSkipVerify: tls.insecureSkipVerify ?? false }),
    updatedAt: new Date(),
  };
  const [row] = await db.update(deployments).set(set).where(eq(deployments.id, deploymentId)).returning();
  if (!row) {
    throw new NotFound("deployment", deploymentId);
  }
  return row;
}

export interface HealthTransition {
  locationId: string;
  deploymentId: string;
  from: Health;
  to: Health;
  at: Date;
  reason: string;
  source: "probe" | "report" | "registration";
}

/**
 * Writes health transitions to the replica's history and as `replica.health_changed` events; call it in the
 * transaction that changed the health.
 */
export async function recordHealthTransitions(db: Db, transitions: readonly HealthTransition[]): Promise<void> {
  if (transitions.length === 0) {
    return;
  }
  await db.insert(locationHealthEvents).values(
    transitions.map((e) => ({
      locationId: e.locationId,
      deploymentId: e.deploymentId,
      fromStatus: e.from,
      toStatus: e.to,
      at: e.at,
      reason: e.reason.slice(0, 500),
      source: e.source,
    })),
  );
  await recordEvents(
    db,
    transitions.map((e) => ({
      type: "replica.health_changed" as const,
      deploymentId: e.deploymentId,
      subject: e.locationId,
      data: { from: e.from, to: e.to, reason: e.reason.slice(0, 500), source: e.source },
    })),
  );
}
