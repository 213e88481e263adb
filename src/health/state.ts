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
