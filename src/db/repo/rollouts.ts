import { and, eq, inArray, sql } from "drizzle-orm";
import { deploymentLocations, deploymentRollouts, deploymentRouting, type RolloutRow } from "../../../schema/tables.js";
import { STABLE_TRACK, StoredSplit } from "../../render/split-config.js";
import {
  AbortWhen,
  ACTIVE_STATES,
  appendHistory,
  type HistoryEntry,
  PROMOTE_DRAIN_MS,
  type RolloutBody,
  type RolloutState,
  stepWeights,
  type TrackReplica,
} from "../../rollout/plan.js";
import { type Db, rowsOf } from "../client.js";
import { Conflict, NotFound } from "../errors.js";
import { getDeployment } from "./deployments.js";
import { recordEvent } from "./events.js";
import { getTraffic, setTrafficPart } from "./traffic.js";

// Progressive rollouts in the database (deployment_rollouts): every change of a rollout is one transaction that
// locks its row, writes the split (or promotes), appends to its history and records one `rollout.*` event.

export type RolloutAction = HistoryEntry["action"];

/** The stored abort thresholds (defaults for anything missing in a hand-edited row). */
export const abortWhenOf = (row: RolloutRow): AbortWhen => AbortWhen.parse(row.abortWhen ?? {});

/** The weight of the track at the rollout's current step (0 once aborted, 100 once promoted). */
export function currentWeight(row: RolloutRow): number {
  if (row.state === "aborted") {
    return 0;
  }
  if (row.state === "promoted") {
    return 100;
  }
  return row.steps[row.stepIndex] ?? 0;
}

/** A deployment's rollout (the latest one: a new rollout replaces a finished one). */
export async function getRollout(db: Db, deploymentId: string): Promise<RolloutRow> {
  const [row] = await db.select().from(deploymentRollouts).where(eq(deploymentRollouts.deploymentId, deploymentId));
  if (!row) {
    await getDeployment(db, deploymentId); // an unknown deployment is a DEPLOYMENT_NOT_FOUND
    throw new NotFound("rollout", deploymentId);
  }
  return row;
}

/**
 * A running or paused rollout owns its split's weights: a hand-made PUT or DELETE of the split would be overwritten
 * (or undone) at its next step, so it is refused until the rollout is aborted or promoted.
 */
export async function refuseDuringRollout(db: Db, deploymentId: string, action: string): Promise<void> {
  const [row] = await db.select().from(deploymentRollouts).where(eq(deploymentRollouts.deploymentId, deploymentId));
  if (row && ACTIVE_STATES.includes(row.state as RolloutState)) {
    throw new Conflict(
      `Deployment ${deploymentId} has a ${row.state} rollout of track ${row.track}, which sets the split's weights: ${action} after it is aborted (DELETE …/rollout) or promoted.`,
      "ROLLOUT_ACTIVE",
      { track: row.track, state: row.state },
    );
  }
}

async function lockRollout(db: Db, deploymentId: string): Promise<RolloutRow | undefined> {
  const [row] = await db
    .select()
    .from(deploymentRollouts)
    .where(eq(deploymentRollouts.deploymentId, deploymentId))
    .for("update");
  return row;
}

/**
 * The running, not draining replicas of a track with what the failure measure needs (replicaFailures); times as
 * epoch ms, the same on both drivers.
 */
export async function trackReplicas(
  db: Db,
  deploymentId: string,
  track: string,
  windowStart: Date,
): Promise<TrackReplica[]> {
  const result = await db.execute(sql`
    select l.id, l.health_status as health, l.consecutive_failures as "failStreak",
      (extract(epoch from l.last_check_at) * 1000)::float8 as "lastCheckMs",
      (select count(*) from location_health_events e
        where e.location_id = l.id and e.to_status = 'unhealthy' and e.at > ${windowStart.toISOString()}::timestamptz
      )::int as "downsInWindow",
      (select (extract(epoch from max(e.at)) * 1000)::float8 from location_health_events e
        where e.location_id = l.id and e.to_status = 'unhealthy') as "lastDownMs"
    from deployment_locations l
    where l.deployment_id = ${deploymentId} and l.track = ${track} and l.status = 'running'
      and l.drain_started_at is null
    order by l.id`);
  return rowsOf<Record<string, unknown>>(result).map((r) => ({
    id: String(r.id),
    health: r.health as TrackReplica["health"],
    failStreak: Number(r.failStreak),
    lastCheckMs: r.lastCheckMs === null ? null : Number(r.lastCheckMs),
    downsInWindow: Number(r.downsInWindow),
    lastDownMs: r.lastDownMs === null ? null : Number(r.lastDownMs),
  }));
}

/**
 * Sets the track's weight in the deployment's split, keeping its other settings (sticky, rules, mirror); weights
 * of other tracks are replaced (startRollout refuses a split that gives them traffic).
 */
async function writeWeight(db: Db, deploymentId: string, track: string, weight: number): Promise<void> {
  const { split } = await getTraffic(db, deploymentId);
  const parsed = StoredSplit.safeParse(split);
  const base = parsed.success ? parsed.data : {};
  await setTrafficPart(db, deploymentId, "split", { ...base, weights: stepWeights(track, weight) });
}

interface Change {
  state: RolloutState;
  stepIndex: number;
  nextStepAt: Date | null;
  entry: HistoryEntry;
  /** Event data beyond track, step_index, weight and reason. */
  data?: Record<string, unknown>;
}

/** Writes a rollout's new state, its history entry and its event (inside the caller's transaction). */
async function record(db: Db, row: RolloutRow, c: Change): Promise<RolloutRow> {
  const [updated] = await db
    .update(deploymentRollouts)
    .set({
      state: c.state,
      stepIndex: c.stepIndex,
      nextStepAt: c.nextStepAt,
      history: appendHistory(row.history, c.entry) as Record<string, unknown>[],
      updatedAt: new Date(c.entry.at),
      ...(ACTIVE_STATES.includes(c.state) ? {} : { leaseOwner: null, leaseUntil: null }),
    })
    .where(eq(deploymentRollouts.deploymentId, row.deploymentId))
    .returning();
  await recordEvent(db, {
    type: `rollout.${c.entry.action}`,
    deploymentId: row.deploymentId,
    subject: row.track,
    data: {
      track: row.track,
      step_index: c.entry.step_index,
      weight: c.entry.weight,
      reason: c.entry.reason,
      ...(c.entry.actor ? { actor: c.entry.actor } : {}),
      ...c.data,
    },
  });
  if (!updated) {
    throw new NotFound("rollout", row.deploymentId);
  }
  return updated;
}

const entryOf = (
  now: Date,
  action: RolloutAction,
  stepIndex: number,
  weight: number,
  reason: string,
  actor?: string,
): HistoryEntry => ({
  at: now.toISOString(),
  action,
  step_index: stepIndex,
  weight,
  reason,
  ...(actor ? { actor } : {}),
});

export interface StartInput extends RolloutBody {
  now: Date;
  actor?: string | undefined;
}

/**
 * Starts a rollout at its first step. Refused (409) while another is running or paused, for deployments with geo
 * routing or a least-conn route (their traffic is not split by weight), when the track has no running replica, and
 * when the split gives traffic to a third track.
 */
export async function startRollout(db: Db, deploymentId: string, input: StartInput): Promise<RolloutRow> {
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    await getDeployment(t, deploymentId);
    const existing = await lockRollout(t, deploymentId);
    if (existing && ACTIVE_STATES.includes(existing.state as RolloutState)) {
      throw new Conflict(
        `Deployment ${deploymentId} already has a ${existing.state} rollout of track ${existing.track}; abort it first.`,
        "ROLLOUT_ACTIVE",
        { track: existing.track, state: existing.state },
      );
    }
    await checkRollable(t, deploymentId, input.track);
    const first = input.steps[0] ?? 0;
    await writeWeight(t, deploymentId, input.track, first);
    const values = {
      track: input.track,
      steps: input.steps,
      intervalSeconds: input.interval_seconds,
      abortWhen: input.abort_when,
      state: "running",
      stepIndex: 0,
      nextStepAt: new Date(input.now.getTime() + input.interval_seconds * 1000),
      history: [],
      leaseOwner: null,
      leaseUntil: null,
      createdAt: input.now,
      updatedAt: input.now,
    };
    await tx
      .insert(deploymentRollouts)
      .values({ deploymentId, ...values })
      .onConflictDoUpdate({ target: deploymentRollouts.deploymentId, set: values });
    const row = await lockRollout(t, deploymentId);
    if (!row) {
      throw new NotFound("rollout", deploymentId);
    }
    return record(t, row, {
      state: "running",
      stepIndex: 0,
      nextStepAt: row.nextStepAt,
      entry: entryOf(input.now, "started", 0, first, `rollout of ${input.track} started`, input.actor),
      data: { steps: input.steps, interval_seconds: input.interval_seconds, abort_when: input.abort_when },
    });
  });
}

async function checkRollable(db: Db, deploymentId: string, track: string): Promise<void> {
  const traffic = await getTraffic(db, deploymentId);
  if (traffic.geo !== null) {
    throw new Conflict(
      `Deployment ${deploymentId} uses geographic routing; a rollout needs a weighted split.`,
      "ROLLOUT_UNSUPPORTED",
    );
  }
  const leastConn = await db
    .select({ id: deploymentRouting.id })
    .from(deploymentRouting)
    .where(and(eq(deploymentRouting.deploymentId, deploymentId), eq(deploymentRouting.loadBalancerAlgo, "least-conn")))
    .limit(1);
  if (leastConn.length > 0) {
    throw new Conflict(
      `Deployment ${deploymentId} has a least-conn route (served by the fallback proxy, not split by weight).`,
      "ROLLOUT_UNSUPPORTED",
    );
  }
  const parsed = StoredSplit.safeParse(traffic.split);
  const others = parsed.success
    ? Object.entries(parsed.data.weights).filter(([k, w]) => w > 0 && k !== STABLE_TRACK && k !== track)
    : [];
  if (others.length > 0) {
    throw new Conflict(
      `The split of deployment ${deploymentId} gives traffic to ${others.map(([k]) => k).join(", ")}; a rollout moves traffic between stable and ${track} only.`,
      "ROLLOUT_SPLIT_CONFLICT",
    );
  }
  const [replica] = await db
    .select({ id: deploymentLocations.id })
    .from(deploymentLocations)
    .where(
      and(
        eq(deploymentLocations.deploymentId, deploymentId),
        eq(deploymentLocations.track, track),
        eq(deploymentLocations.status, "running"),
        sql`${deploymentLocations.drainStartedAt} is null`,
      ),
    )
    .limit(1);
  if (!replica) {
    throw new Conflict(
      `Deployment ${deploymentId} has no running replica on track ${track}; register them first.`,
      "ROLLOUT_TRACK_EMPTY",
    );
  }
}

/** The states each operator action may start from, and the code it answers otherwise. */
const FROM: Record<"pause" | "resume" | "abort", { states: readonly string[]; code: string }> = {
  pause: { states: ["running"], code: "ROLLOUT_NOT_RUNNING" },
  resume: { states: ["paused"], code: "ROLLOUT_NOT_PAUSED" },
  abort: { states: ACTIVE_STATES, code: "ROLLOUT_NOT_ACTIVE" },
};

/** Pause (hold the weight), resume (the next step a full interval later) or abort (the track to 0 %). */
export async function operateRollout(
  db: Db,
  deploymentId: string,
  op: "pause" | "resume" | "abort",
  opts: { now: Date; actor?: string | undefined },
): Promise<RolloutRow> {
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const row = await lockRollout(t, deploymentId);
    if (!row) {
      await getDeployment(t, deploymentId);
      throw new NotFound("rollout", deploymentId);
    }
    const from = FROM[op];
    if (!from.states.includes(row.state)) {
      throw new Conflict(`The rollout of deployment ${deploymentId} is ${row.state}.`, from.code, { state: row.state });
    }
    const weight = currentWeight(row);
    if (op === "pause") {
      return record(t, row, {
        state: "paused",
        stepIndex: row.stepIndex,
        nextStepAt: null,
        entry: entryOf(opts.now, "paused", row.stepIndex, weight, "paused by the operator", opts.actor),
      });
    }
    if (op === "resume") {
      return record(t, row, {
        state: "running",
        stepIndex: row.stepIndex,
        nextStepAt: new Date(opts.now.getTime() + row.intervalSeconds * 1000),
        entry: entryOf(opts.now, "resumed", row.stepIndex, weight, "resumed by the operator", opts.actor),
      });
    }
    return abortLocked(t, row, opts.now, "aborted by the operator", opts.actor);
  });
}

async function abortLocked(db: Db, row: RolloutRow, now: Date, reason: string, actor?: string): Promise<RolloutRow> {
  await writeWeight(db, row.deploymentId, row.track, 0);
  return record(db, row, {
    state: "aborted",
    stepIndex: row.stepIndex,
    nextStepAt: null,
    entry: entryOf(now, "aborted", row.stepIndex, 0, reason, actor),
    data: { from_weight: currentWeight(row) },
  });
}

/**
 * Promotion in one transaction: the track's predecessors (`stable` replicas) start draining for PROMOTE_DRAIN_MS,
 * the track's replicas become `stable`, and the split is removed.
 */
async function promoteLocked(db: Db, row: RolloutRow, stepIndex: number, now: Date): Promise<RolloutRow> {
  const l = deploymentLocations;
  const drained = await db
    .update(l)
    .set({ drainStartedAt: now, drainUntil: new Date(now.getTime() + PROMOTE_DRAIN_MS), updatedAt: now })
    .where(and(eq(l.deploymentId, row.deploymentId), eq(l.track, STABLE_TRACK), sql`${l.drainStartedAt} is null`))
    .returning({ id: l.id });
  const promoted = await db
    .update(l)
    .set({ track: STABLE_TRACK, updatedAt: now })
    .where(and(eq(l.deploymentId, row.deploymentId), eq(l.track, row.track)))
    .returning({ id: l.id });
  await setTrafficPart(db, row.deploymentId, "split", null);
  return record(db, row, {
    state: "promoted",
    stepIndex,
    nextStepAt: null,
    entry: entryOf(now, "promoted", stepIndex, 100, `${row.track} is now stable`),
    data: {
      promoted: promoted.map((r) => r.id).sort(),
      draining: drained.map((r) => r.id).sort(),
      drain_until: new Date(now.getTime() + PROMOTE_DRAIN_MS).toISOString(),
    },
  });
}

/** What the worker decided for one rollout (see decide in src/rollout/plan.ts). */
export type WorkerAction =
  | { kind: "abort"; reason: string }
  | { kind: "step"; stepIndex: number; weight: number }
  | { kind: "promote"; stepIndex: number };

/**
 * Applies a worker decision if the rollout is still as it was judged (same state and step) and this instance still
 * holds its lease: the row lock serializes it with operators and other instances, so a step happens once.
 * Returns the updated row, or undefined when nothing was done.
 */
export async function applyWorkerAction(
  db: Db,
  deploymentId: string,
  seen: { state: string; stepIndex: number; owner: string },
  action: WorkerAction,
  now: Date,
): Promise<RolloutRow | undefined> {
  return db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const row = await lockRollout(t, deploymentId);
    if (
      !row ||
      row.state !== seen.state ||
      row.stepIndex !== seen.stepIndex ||
      row.leaseOwner !== seen.owner ||
      (row.leaseUntil !== null && row.leaseUntil.getTime() < now.getTime())
    ) {
      return undefined;
    }
    if (action.kind === "abort") {
      return abortLocked(t, row, now, action.reason);
    }
    if (action.kind === "promote") {
      return promoteLocked(t, row, action.stepIndex, now);
    }
    await writeWeight(t, deploymentId, row.track, action.weight);
    return record(t, row, {
      state: "running",
      stepIndex: action.stepIndex,
      nextStepAt: new Date(now.getTime() + row.intervalSeconds * 1000),
      entry: entryOf(
        now,
        "step",
        action.stepIndex,
        action.weight,
        `step ${action.stepIndex + 1} of ${row.steps.length}`,
      ),
      data: { from_weight: currentWeight(row) },
    });
  });
}

/**
 * Claims up to `limit` running or paused rollouts not leased by another live instance (`FOR UPDATE SKIP LOCKED`,
 * as health rounds claim replicas): this instance holds each for `leaseMs`, renewing it every tick.
 */
export async function claimRollouts(
  db: Db,
  opts: { owner: string; now: Date; leaseMs: number; limit: number },
): Promise<RolloutRow[]> {
  const now = opts.now.toISOString();
  const result = await db.execute(sql`
    with due as (
      select deployment_id from deployment_rollouts
      where state in ('running', 'paused')
        and (lease_until is null or lease_until < ${now}::timestamptz or lease_owner = ${opts.owner})
      order by next_step_at nulls last, deployment_id
      limit ${opts.limit}
      for update skip locked
    )
    update deployment_rollouts r
       set lease_owner = ${opts.owner},
           lease_until = ${now}::timestamptz + ${opts.leaseMs}::int * interval '1 millisecond'
      from due
     where r.deployment_id = due.deployment_id
    returning r.deployment_id as "deploymentId"`);
  const ids = rowsOf<{ deploymentId: string }>(result).map((r) => r.deploymentId);
  if (ids.length === 0) {
    return [];
  }
  return db.select().from(deploymentRollouts).where(inArray(deploymentRollouts.deploymentId, ids));
}

/** Gives up this instance's rollout leases (on shutdown: another instance takes over at its next tick). */
export async function releaseRolloutLeases(db: Db, owner: string): Promise<void> {
  await db
    .update(deploymentRollouts)
    .set({ leaseOwner: null, leaseUntil: null })
    .where(eq(deploymentRollouts.leaseOwner, owner));
}
