import type { DbHandle } from "../db/client.js";
import { type DrainedReplica, sweepDrains } from "../db/repo/locations.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";

export interface DrainSweepDeps {
  handle: DbHandle;
  clock: Clock;
  logger: Logger;
  /** How often to look for drains whose period ended (default 2 s: the event lags the drain's end by at most this). */
  intervalMs?: number;
}

/** The stop function server.ts keeps, plus one pass on demand (tests move an injected clock, then sweep). */
export type DrainSweep = (() => Promise<void>) & { sweep(): Promise<DrainedReplica[]> };

export const DRAIN_SWEEP_MS = 2000;

/**
 * One pass: replicas whose drain period ended get drained_at and one `replica.drained` event each. Safe with
 * several instances sweeping the same database (the update is conditional; see sweepDrains).
 */
export async function runDrainSweep(deps: Omit<DrainSweepDeps, "intervalMs">): Promise<DrainedReplica[]> {
  const drained = await sweepDrains(deps.handle.db, deps.clock.now());
  for (const r of drained) {
    deps.logger.info("replica drained", {
      deploymentId: r.deploymentId,
      locationId: r.id,
      drainUntil: r.drainUntil.toISOString(),
    });
  }
  return drained;
}

/** Marks replicas whose drain period ended as drained (one event each); returns a stop function. */
export function startDrainSweep(deps: DrainSweepDeps): DrainSweep {
  let stopped = false;
  let busy = false;
  let last: Promise<unknown> = Promise.resolve();
  // Passes run one after the other; one asked for starts after the running one, so it reads the clock afresh.
  const sweep = (): Promise<DrainedReplica[]> => {
    const next = last.catch(() => {}).then(() => runDrainSweep(deps));
    last = next;
    return next;
  };
  const tick = () => {
    if (stopped || busy) {
      return; // a slow pass is not overtaken by the next one
    }
    busy = true;
    sweep()
      .catch((err: unknown) => deps.logger.warn("drain sweep failed; retrying", { err }))
      .finally(() => {
        busy = false;
      });
  };
  const timer = setInterval(tick, deps.intervalMs ?? DRAIN_SWEEP_MS);
  timer.unref();
  const stop = async () => {
    stopped = true;
    clearInterval(timer);
    await last.catch(() => {});
  };
  return Object.assign(stop, { sweep });
}
