import type { RolloutRow } from "../../schema/tables.js";
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import {
  abortWhenOf,
  applyWorkerAction,
  claimRollouts,
  releaseRolloutLeases,
  trackReplicas,
} from "../db/repo/rollouts.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { decide, FAILURE_WINDOW_MS, measureTrack, type RolloutState } from "./plan.js";

export interface RolloutWorkerDeps {
  config: Config;
  handle: DbHandle;
  clock: Clock;
  logger: Logger;
  /** This instance's name in rollout leases. */
  owner: string;
}

/** The background side of progressive rollouts: advances due steps and aborts on bad health (leased). */
export interface RolloutWorker {
  /** One pass now (tests drive it with an injected clock). */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

/** Rollouts one instance looks after per pass. */
const CLAIM_LIMIT = 200;

/** How long a claimed rollout stays this instance's: a few ticks, so a dead instance's rollouts move on soon. */
export const rolloutLeaseMs = (tickMs: number) => Math.max(3 * tickMs, 15_000);

/**
 * Every ROLLOUT_TICK_MS: claims the active rollouts no live instance holds (leases, like health rounds), measures
 * each one's track, and aborts, advances or promotes it (src/rollout/plan.ts `decide`). All state is in the
 * database, so a restarted or another instance carries on where this one stopped.
 */
export function startRolloutWorker(deps: RolloutWorkerDeps): RolloutWorker {
  const { handle, clock, logger, owner } = deps;
  const tickMs = deps.config.ROLLOUT_TICK_MS;
  const leaseMs = rolloutLeaseMs(tickMs);
  let chain: Promise<void> = Promise.resolve();
  let inFlight = false;
  let stopped = false;

  const one = async (row: RolloutRow) => {
    const now = clock.now();
    const replicas = await trackReplicas(
      handle.db,
      row.deploymentId,
      row.track,
      new Date(now.getTime() - FAILURE_WINDOW_MS),
    );
    const health = measureTrack(replicas, now.getTime());
    const decision = decide(
      {
        state: row.state as RolloutState,
        steps: row.steps,
        stepIndex: row.stepIndex,
        nextStepAtMs: row.nextStepAt?.getTime() ?? null,
        abortWhen: abortWhenOf(row),
      },
      health,
      now.getTime(),
    );
    if (decision.kind === "none" || decision.kind === "wait") {
      return;
    }
    const seen = { state: row.state, stepIndex: row.stepIndex, owner };
    const done = await applyWorkerAction(handle.db, row.deploymentId, seen, decision, now);
    if (!done) {
      return; // changed meanwhile (an operator, or another instance after our lease ran out)
    }
    const fields = { deploymentId: row.deploymentId, track: row.track, stepIndex: done.stepIndex };
    if (decision.kind === "abort") {
      logger.warn("rollout aborted", { ...fields, reason: decision.reason });
    } else {
      logger.info(decision.kind === "promote" ? "rollout promoted" : "rollout step", {
        ...fields,
        weight: decision.kind === "step" ? decision.weight : 100,
      });
    }
  };

  const pass = async () => {
    if (stopped) {
      return;
    }
    inFlight = true;
    try {
      const rows = await claimRollouts(handle.db, { owner, now: clock.now(), leaseMs, limit: CLAIM_LIMIT });
      for (const row of rows) {
        try {
          await one(row);
        } catch (err) {
          logger.warn("rollout tick failed", { deploymentId: row.deploymentId, err });
        }
      }
    } catch (err) {
      logger.warn("rollout claim failed", { err }); // the database is away: the next tick tries again
    } finally {
      inFlight = false;
    }
  };

  const tick = (): Promise<void> => {
    chain = chain.then(pass);
    return chain;
  };
  const timer = setInterval(() => {
    if (!inFlight) {
      void tick();
    }
  }, tickMs);
  timer.unref();

  return {
    tick,
    async stop() {
      clearInterval(timer);
      stopped = true; // queued passes return at once
      await chain;
      try {
        await releaseRolloutLeases(handle.db, owner);
      } catch (err) {
        logger.warn("releasing rollout leases failed", { err });
      }
    },
  };
}
