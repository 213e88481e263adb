import type { Db } from "../db/client.js";
import { type RecordedTransition, reportFailure } from "../db/repo/health.js";
import type { Logger } from "../lib/logger.js";

/** A request failure someone observed on a replica: the fallback proxy, or a log processor through the API. */
export interface ReplicaFailureReport {
  deploymentId: string;
  locationId: string;
  at: Date;
  /** The reason recorded on the replica and in its events, e.g. `reported: fallback proxy: connect timeout`. */
  error: string;
}

export interface ReportDeps {
  db: Db;
  logger: Logger;
  /** HEALTH_RISE: successes an unhealthy replica needs before it is routed again. */
  rise: number;
  /** Called when the report changed the replica's health (invalidate the config cache, notify). */
  onTransition?: ((transition: RecordedTransition) => void) | undefined;
}

/**
 * Records that a replica failed: unhealthy at once (reports within a second of the last one collapse into it),
 * one log line for a health transition, and `onTransition` for it. Throws NotFound for an unknown replica.
 */
export async function reportReplicaFailure(
  deps: ReportDeps,
  report: ReplicaFailureReport,
): Promise<{ collapsed: boolean; transition: RecordedTransition | undefined }> {
  const result = await reportFailure(
    deps.db,
    report.deploymentId,
    report.locationId,
    { ok: false, at: report.at, error: report.error },
    { rise: deps.rise },
  );
  if (result.transition) {
    logTransitions(deps.logger, [result.transition]);
    deps.onTransition?.(result.transition);
  }
  return result;
}

/** One log line per transition; losing a replica is a warning. */
export function logTransitions(logger: Logger, transitions: RecordedTransition[]): void {
  for (const t of transitions) {
    const fields = { locationId: t.locationId, deploymentId: t.deploymentId, from: t.from, to: t.to, reason: t.reason };
    if (t.to === "unhealthy") {
      logger.warn(`replica ${t.from}→${t.to}`, fields);
    } else {
      logger.info(`replica ${t.from}→${t.to}`, fields);
    }
  }
}
