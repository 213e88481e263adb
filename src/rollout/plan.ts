import { z } from "zod";
import type { Health } from "../../schema/enums.js";
import { STABLE_TRACK, TrackName } from "../render/split-config.js";

// Progressive rollouts, the pure part: what a rollout is stored as, how a track's health is measured from what the
// database records, and what the worker does next. No I/O and no clock: time comes in as `nowMs`.

export const ROLLOUT_STATES = ["running", "paused", "aborted", "promoted"] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];
/** States the worker looks after (and that refuse a second rollout). */
export const ACTIVE_STATES: readonly RolloutState[] = ["running", "paused"];

/** The trailing window failures are counted in. */
export const FAILURE_WINDOW_MS = 60_000;
/** Replicas of the promoted track's predecessor drain this long before they count as removed. */
export const PROMOTE_DRAIN_MS = 30_000;
/** History entries kept per rollout (the newest); every entry is also an event. */
export const HISTORY_LIMIT = 200;

export const AbortWhen = z
  .strictObject({
    /** Abort when healthy / (healthy + unhealthy) replicas of the track falls below this. */
    healthy_ratio_below: z.number().min(0).max(1).default(0.8),
    /** Abort when more failures than this were recorded for the track's replicas in the last minute. */
    failures_per_minute_above: z.number().int().min(0).max(1_000_000).default(5),
  })
  .meta({ example: { healthy_ratio_below: 0.8, failures_per_minute_above: 5 } });
export type AbortWhen = z.infer<typeof AbortWhen>;

export const RolloutSteps = z
  .array(z.number().int().min(1).max(100))
  .min(2)
  .max(20)
  .superRefine((steps, ctx) => {
    for (let i = 1; i < steps.length; i++) {
      if ((steps[i] ?? 0) <= (steps[i - 1] ?? 0)) {
        ctx.addIssue({ code: "custom", path: [i], message: "steps must be strictly increasing" });
        return;
      }
    }
    if (steps.at(-1) !== 100) {
      ctx.addIssue({ code: "custom", path: [steps.length - 1], message: "the last step must be 100 (promotion)" });
    }
  })
  .meta({
    description: "Weights (percent) of the track, strictly increasing, ending at 100.",
    example: [5, 25, 50, 100],
  });

export const RolloutBody = z
  .strictObject({
    track: TrackName.refine((t) => t !== STABLE_TRACK, "the rolled-out track cannot be 'stable'").meta({
      example: "canary",
    }),
    steps: RolloutSteps,
    interval_seconds: z.number().int().min(10).max(86_400).meta({ description: "Time between steps.", example: 300 }),
    abort_when: AbortWhen.default({ healthy_ratio_below: 0.8, failures_per_minute_above: 5 }),
  })
  .meta({
    example: {
      track: "canary",
      steps: [5, 25, 50, 100],
      interval_seconds: 300,
      abort_when: { healthy_ratio_below: 0.8, failures_per_minute_above: 5 },
    },
  });
export type RolloutBody = z.infer<typeof RolloutBody>;

/** One line of a rollout's history (also recorded as a `rollout.<action>` event). */
export interface HistoryEntry {
  at: string;
  action: "started" | "step" | "paused" | "resumed" | "aborted" | "promoted";
  step_index: number;
  weight: number;
  reason: string;
  actor?: string;
}

/** A replica of the track as the database records it (times as epoch ms). */
export interface TrackReplica {
  id: string;
  health: Health;
  /** consecutive_failures: failed observations (probes and reports) since the last success. */
  failStreak: number;
  /** last_check_at: the last observation, probe or report. */
  lastCheckMs: number | null;
  /** Transitions to unhealthy (location_health_events) inside the failure window. */
  downsInWindow: number;
  /** The latest transition to unhealthy, ever. */
  lastDownMs: number | null;
}

export interface TrackHealth {
  /** Running, not draining replicas of the track. */
  replicas: number;
  healthy: number;
  unhealthy: number;
  /** Not probed yet: counted on neither side of the ratio. */
  unknown: number;
  /** healthy / (healthy + unhealthy); null when no replica has been judged yet. */
  healthyRatio: number | null;
  /** Failures recorded in the last minute (see replicaFailures). */
  failuresLastMinute: number;
}

/**
 * Failed observations (active probes and passive reports) of one replica in the trailing window, from what the
 * database keeps: each transition to unhealthy in the window is at least one failure; the current failure streak
 * (consecutive_failures) started at or after the latest transition to unhealthy (a failure makes any replica
 * unhealthy at once), so when that transition is inside the window the whole streak is. A streak that began before
 * the window is prorated over its span (at least 1 when its last failure is inside). A success resets the streak,
 * so failures of an earlier streak between two transitions are not seen: this is a lower bound.
 */
export function replicaFailures(r: TrackReplica, nowMs: number, windowMs = FAILURE_WINDOW_MS): number {
  const start = nowMs - windowMs;
  const failing = r.failStreak > 0 && r.lastCheckMs !== null && r.lastCheckMs > start;
  if (!failing) {
    return r.downsInWindow;
  }
  if (r.lastDownMs !== null && r.lastDownMs > start) {
    return r.downsInWindow - 1 + r.failStreak; // the latest transition is the streak's first failure
  }
  const last = r.lastCheckMs ?? nowMs;
  const span = r.lastDownMs === null ? 0 : last - r.lastDownMs;
  const prorated = span > 0 ? Math.floor((r.failStreak * (last - start)) / span) : 1;
  return r.downsInWindow + Math.max(1, Math.min(r.failStreak, prorated));
}

/** The figures a rollout is judged on. */
export function measureTrack(replicas: readonly TrackReplica[], nowMs: number): TrackHealth {
  const count = (h: Health) => replicas.filter((r) => r.health === h).length;
  const healthy = count("healthy");
  const unhealthy = count("unhealthy");
  const judged = healthy + unhealthy;
  return {
    replicas: replicas.length,
    healthy,
    unhealthy,
    unknown: count("unknown"),
    healthyRatio: judged === 0 ? null : healthy / judged,
    failuresLastMinute: replicas.reduce((n, r) => n + replicaFailures(r, nowMs), 0),
  };
}

/** What the worker reads of a rollout to decide. */
export interface RolloutFacts {
  state: RolloutState;
  steps: readonly number[];
  stepIndex: number;
  nextStepAtMs: number | null;
  abortWhen: AbortWhen;
}

export type Decision =
  | { kind: "none" }
  | { kind: "wait"; reason: string }
  | { kind: "abort"; reason: string }
  | { kind: "step"; stepIndex: number; weight: number }
  | { kind: "promote"; stepIndex: number };

const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;

/**
 * The next thing to do with an active rollout: abort on bad health (also while paused: pausing holds the weight,
 * not the safety net), otherwise advance a running rollout whose step is due, promoting at 100 %. A step waits
 * while the track has no healthy replica (promoting it would leave the deployment without one).
 */
export function decide(r: RolloutFacts, h: TrackHealth, nowMs: number): Decision {
  if (!ACTIVE_STATES.includes(r.state)) {
    return { kind: "none" };
  }
  if (h.replicas === 0) {
    return { kind: "abort", reason: "the track has no running replica" };
  }
  if (h.healthyRatio !== null && h.healthyRatio < r.abortWhen.healthy_ratio_below) {
    return {
      kind: "abort",
      reason: `healthy ratio ${pct(h.healthyRatio)} (${h.healthy} of ${h.healthy + h.unhealthy} replicas) is below ${pct(r.abortWhen.healthy_ratio_below)}`,
    };
  }
  if (h.failuresLastMinute > r.abortWhen.failures_per_minute_above) {
    return {
      kind: "abort",
      reason: `${h.failuresLastMinute} failures in the last minute, more than ${r.abortWhen.failures_per_minute_above}`,
    };
  }
  if (r.state !== "running" || r.nextStepAtMs === null || r.nextStepAtMs > nowMs) {
    return { kind: "none" };
  }
  const next = r.stepIndex + 1;
  const weight = r.steps[next];
  if (weight === undefined) {
    return { kind: "promote", stepIndex: r.stepIndex }; // a stored row already at its last step
  }
  if (h.healthy === 0) {
    return { kind: "wait", reason: "the track has no healthy replica" };
  }
  return weight >= 100 ? { kind: "promote", stepIndex: next } : { kind: "step", stepIndex: next, weight };
}

/** The split weights of a step: the rest of the traffic stays on `stable`. */
export function stepWeights(track: string, weight: number): Record<string, number> {
  return { [STABLE_TRACK]: 100 - weight, [track]: weight };
}

/** Appends to a history, keeping the newest HISTORY_LIMIT entries. */
export function appendHistory(history: readonly unknown[], entry: HistoryEntry): unknown[] {
  return [...history, entry].slice(-HISTORY_LIMIT);
}
