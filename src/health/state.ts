import type { Health } from "../../schema/enums.js";

// Pure: no I/O, no clock. Time comes in with each observation.

export interface HealthState {
  status: Health;
  okStreak: number;
  failStreak: number;
}

/** One observation of a replica: an active probe, or a request failure someone reported. */
export interface Observation {
  ok: boolean;
  at: Date;
  /** Why it failed (status code, timeout, connection refused, reported failure). */
  error?: string | undefined;
}

export interface HealthPolicy {
  /** Consecutive successes an unhealthy replica needs to be healthy again (HEALTH_RISE, default 3). */
  rise: number;
}

export interface Transition {
  from: Health;
  to: Health;
  at: Date;
  reason: string;
}

/**
 * Applies one observation. A failure makes any replica unhealthy at once; the first success makes an
 * `unknown` replica healthy; an `unhealthy` one needs `policy.rise` consecutive successes.
 */
export function nextHealth(
  prev: HealthState,
  obs: Observation,
  policy: HealthPolicy,
): { state: HealthState; transition: Transition | undefined } {
  const okStreak = obs.ok ? prev.okStreak + 1 : 0;
  const failStreak = obs.ok ? 0 : prev.failStreak + 1;
  let status: Health = prev.status;
  if (!obs.ok) {
    status = "unhealthy";
  } else if (prev.status === "unknown" || (prev.status === "unhealthy" && okStreak >= policy.rise)) {
    status = "healthy";
  }
  const state = { status, okStreak, failStreak };
  if (status === prev.status) {
    return { state, transition: undefined };
  }
  const reason = obs.ok
    ? prev.status === "unknown"
      ? "first successful check"
      : `${okStreak} consecutive successful checks`
    : (obs.error ?? "check failed");
  return { state, transition: { from: prev.status, to: status, at: obs.at, reason } };
}

/** Where an observation came from: an active probe, or a failure someone reported. */
export type ObservationSource = "probe" | "report";

/** One observation to record for a replica (see foldObservations). */
export interface ObservationInput {
  locationId: string;
  obs: Observation;
  source: ObservationSource;
  /** Probes only: the endpoint that was probed; a replica that moved meanwhile keeps its (reset) state. */
  probed?: { address: string };
  cpu?: number | undefined;
  nextProbeAt?: Date;
  /** Probes only: release this owner's lease. */
  leaseOwner?: string;
}

/** A replica's stored health, as read under its row lock before the observations are applied. */
export interface StoredReplica {
  id: string;
  deploymentId: string;
  address: string;
  healthStatus: Health;
  okStreak: number;
  failStreak: number;
  leaseOwner: string | null;
}

export interface ReplicaTransition extends Transition {
  locationId: string;
  deploymentId: string;
}

/** The one write a replica gets for a batch, however many observations it had. */
export interface ReplicaUpdate {
  id: string;
  health: Health;
  ok: number;
  fail: number;
  /** The last observation's time. */
  at: Date;
  error: string | null;
  cpu: number | undefined;
  next: Date | undefined;
  /** A report was among the observations (sets the collapse window's start). */
  report: boolean;
  /** Give the probe lease back. */
  release: boolean;
}

export interface FoldedObservations {
  updates: ReplicaUpdate[];
  /** Replicas probed at an address they have left: they keep their (reset) state and only get the lease back. */
  released: string[];
  transitions: ReplicaTransition[];
  /** The same transitions with their observation's source, for the event log. */
  events: (ReplicaTransition & { source: ObservationSource })[];
}

/**
 * Applies a batch of observations, in order, to the replicas' stored health: one update per replica, the
 * transitions, and the leases to give back. Observations of a replica not in `rows` (deleted meanwhile) are
 * skipped; a second observation of the same replica builds on the first. Pure: time comes with each observation.
 */
export function foldObservations(
  rows: readonly StoredReplica[],
  items: readonly ObservationInput[],
  policy: HealthPolicy,
): FoldedObservations {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const updates = new Map<string, ReplicaUpdate>();
  const released: string[] = [];
  const transitions: ReplicaTransition[] = [];
  const events: (ReplicaTransition & { source: ObservationSource })[] = [];
  for (const item of items) {
    const row = byId.get(item.locationId);
    if (!row) {
      continue;
    }
    const release = item.leaseOwner !== undefined && row.leaseOwner === item.leaseOwner;
    if (item.probed && item.probed.address !== row.address) {
      if (release) {
        released.push(row.id); // probed the old address: keep the reset state, just give the lease back
      }
      continue;
    }
    const prev = updates.get(row.id);
    const { state, transition } = nextHealth(
      prev
        ? { status: prev.health, okStreak: prev.ok, failStreak: prev.fail }
        : { status: row.healthStatus, okStreak: row.okStreak, failStreak: row.failStreak },
      item.obs,
      policy,
    );
    updates.set(row.id, {
      id: row.id,
      health: state.status,
      ok: state.okStreak,
      fail: state.failStreak,
      at: item.obs.at,
      error: item.obs.ok ? null : (item.obs.error ?? "check failed"),
      cpu: item.cpu ?? prev?.cpu,
      next: item.nextProbeAt ?? prev?.next,
      report: item.source === "report" || prev?.report === true,
      release: release || prev?.release === true,
    });
    if (transition) {
      const recorded = { ...transition, locationId: row.id, deploymentId: row.deploymentId };
      transitions.push(recorded);
      events.push({ ...recorded, source: item.source });
    }
  }
  return { updates: [...updates.values()], released, transitions, events };
}

/** Whether an HTTP status satisfies an expectation like `2xx`, `204`, `200-399` or `200,204,3xx`. */
export function statusMatches(spec: string, status: number): boolean {
  return spec.split(",").some((raw) => {
    const part = raw.trim().toLowerCase();
    const cls = /^([1-5])xx$/.exec(part);
    if (cls) {
      return Math.floor(status / 100) === Number(cls[1]);
    }
    const range = /^(\d{3})-(\d{3})$/.exec(part);
    if (range) {
      return status >= Number(range[1]) && status <= Number(range[2]);
    }
    return /^\d{3}$/.test(part) && Number(part) === status;
  });
}

export const EXPECTED_STATUS_RE = /^\s*(?:[1-5]xx|\d{3}(?:-\d{3})?)(?:\s*,\s*(?:[1-5]xx|\d{3}(?:-\d{3})?))*\s*$/i;

/** A CPU reading counts only while it is younger than three check intervals. */
export function freshCpu(cpu: number | null, readAt: Date | null, now: Date, intervalSeconds: number): number | null {
  if (cpu === null || readAt === null) {
    return null;
  }
  return now.getTime() - readAt.getTime() <= 3 * intervalSeconds * 1000 ? cpu : null;
}

/** What a probe lease covers beyond the probe's own timeout: recording the result, scheduling, clock skew. */
export const LEASE_MARGIN_MS = 10_000;

/**
 * How long a claimed replica stays leased: its own probe timeout (per deployment, up to 120 s) plus a margin, so no
 * other instance claims it while this probe can still be running (issue 10 #6), and a dead instance's replicas
 * come back soon after.
 */
export function probeLeaseMs(timeoutMs: number): number {
  return timeoutMs + LEASE_MARGIN_MS;
}

/**
 * When a replica is due again. A probe that started on time keeps the replica on its own grid (`dueAt +
 * interval`), so tick granularity and claim latency never add up from one interval to the next; a probe that
 * started half an interval late or more (a backlog, a new replica) starts a new grid at `probedAt + interval`.
 */
export function nextProbeAt(dueAt: Date | null, probedAt: Date, intervalMs: number): Date {
  if (dueAt !== null) {
    const late = probedAt.getTime() - dueAt.getTime();
    if (late >= -intervalMs / 2 && late < intervalMs / 2) {
      return new Date(dueAt.getTime() + intervalMs);
    }
  }
  return new Date(probedAt.getTime() + intervalMs);
}

/**
 * How early a replica may be claimed before its due time: half a scheduler tick. A replica due between two ticks is
 * probed at the nearer one, so a 30 s interval on a 5 s tick stays 30 s (not 35 s) and 5 s stays 5 s (not 10 s).
 */
export function dueSlackMs(tickMs: number): number {
  return tickMs / 2;
}
