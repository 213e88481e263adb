import type { Db } from "../db/client.js";
import {
  type ClaimedReplica,
  claimDueReplicas,
  type ObservationInput,
  type RecordedTransition,
  recordObservations,
  releaseLeases,
} from "../db/repo/health.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { urlHost } from "../render/validate.js";
import type { Probe } from "./probe.js";

export interface CheckDefaults {
  path: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  expectedStatus: string;
  concurrency: number;
  rise: number;
}

export interface CheckerDeps {
  db: Db;
  probe: Probe;
  clock: Clock;
  logger: Logger;
  /** Calls `tick` on a schedule and returns a stop function; node-cron lives only in the caller's version. */
  schedule: (tick: () => void) => () => void;
  /** This instance's name in probe leases. */
  owner: string;
  defaults: CheckDefaults;
  /** Called once per batch of transitions (the cache coalesces re-renders). */
  onTransitions: (transitions: RecordedTransition[]) => void;
}

export interface RoundSummary {
  probed: number;
  failed: number;
  transitions: number;
  durationMs: number;
}

/**
 * Active health checking. Each tick claims the replicas whose probe is due (shared across instances through
 * row leases in the database), probes them with bounded concurrency and a timeout each, and records the
 * results through the pure state machine. Overlapping rounds are skipped, never stacked.
 */
export class HealthChecker {
  private running: Promise<RoundSummary> | undefined;
  private stopSchedule: (() => void) | undefined;
  private readonly inflightNow = new Set<Promise<void>>();

  constructor(private readonly deps: CheckerDeps) {}

  start(): void {
    this.stopSchedule = this.deps.schedule(() => {
      if (this.running) {
        this.deps.logger.warn("health round still running; skipping this tick");
        return;
      }
      void this.runRound().catch((err: unknown) => this.deps.logger.error("health round failed", { err }));
    });
  }

  async stop(): Promise<void> {
    this.stopSchedule?.();
    await Promise.allSettled([this.running, ...this.inflightNow]);
  }

  /** One round: probe everything due now, in claim batches, until nothing due is left. */
  runRound(): Promise<RoundSummary> {
    if (this.running) {
      return this.running;
    }
    this.running = this.round().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Probes one replica at once (just registered or moved), unless another probe holds it. */
  probeNow(locationId: string): void {
    const p = this.claimAndProbe(locationId)
      .then((transitions) => this.flush(transitions))
      .catch((err: unknown) => this.deps.logger.warn("immediate probe failed", { locationId, err }))
      .finally(() => this.inflightNow.delete(p));
    this.inflightNow.add(p);
  }

  private async round(): Promise<RoundSummary> {
    const started = performance.now();
    const batch = Math.max(16, this.deps.defaults.concurrency * 2);
    let probed = 0;
    let failed = 0;
    let transitionCount = 0;
    let pending: RecordedTransition[] = [];
    let lastFlush = performance.now();
    // Recording batch N overlaps claiming and probing batch N+1: probes are never idle while the database writes.
    let recording: Promise<void> = Promise.resolve();
    const record = async (results: ObservationInput[]) => {
      const transitions = await recordObservations(this.deps.db, results, { rise: this.deps.defaults.rise });
      transitionCount += transitions.length;
      pending.push(...transitions);
      // Long rounds still publish what they found about once a second, not only at the end.
      if (pending.length > 0 && performance.now() - lastFlush >= 1000) {
        this.flush(pending);
        pending = [];
        lastFlush = performance.now();
      }
    };
    try {
      for (;;) {
        const claimed = await this.claim(batch);
        if (claimed.length === 0) {
          break;
        }
        const results = await this.probeAll(claimed);
        probed += results.length;
        failed += results.filter((r) => !r.obs.ok).length;
        await recording;
        recording = record(results);
        if (claimed.length < batch) {
          break;
        }
      }
    } finally {
      await recording;
    }
    this.flush(pending);
    const durationMs = Math.round(performance.now() - started);
    if (probed > 0) {
      this.deps.logger.debug("health round", { probed, failed, transitions: transitionCount, durationMs });
    }
    return { probed, failed, transitions: transitionCount, durationMs };
  }

  private claim(limit: number, onlyId?: string): Promise<ClaimedReplica[]> {
    const now = this.deps.clock.now();
    // The lease outlives the slowest possible batch, and is far shorter than an interval: a dead instance's
    // replicas are due again (and claimed by another instance) well within one interval.
    const leaseMs = 2 * this.deps.defaults.timeoutSeconds * 1000 + 5000;
    return claimDueReplicas(this.deps.db, {
      owner: this.deps.owner,
      now,
      leaseUntil: new Date(now.getTime() + leaseMs),
      limit,
      ...(onlyId ? { onlyId } : {}),
    });
  }

  private async claimAndProbe(locationId: string): Promise<RecordedTransition[]> {
    const claimed = await this.claim(1, locationId);
    if (claimed.length === 0) {
      return [];
    }
    return recordObservations(this.deps.db, await this.probeAll(claimed), { rise: this.deps.defaults.rise });
  }

  private async probeAll(claimed: ClaimedReplica[]): Promise<ObservationInput[]> {
    const { defaults, probe, owner } = this.deps;
    const out: ObservationInput[] = [];
    const skipped: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < claimed.length) {
        const r = claimed[next++] as ClaimedReplica;
        if (r.port === null) {
          skipped.push(r.id); // no port and no route to take one from: nothing to probe yet
          continue;
        }
        const interval = r.healthIntervalSeconds ?? defaults.intervalSeconds;
        const timeoutMs = (r.healthTimeoutSeconds ?? defaults.timeoutSeconds) * 1000;
        const path = r.healthPath ?? defaults.path;
        const result = await probe({
          url: `http://${urlHost(r.address)}:${r.port}${path}`,
          timeoutMs,
          expectedStatus: r.healthExpectedStatus ?? defaults.expectedStatus,
        });
        out.push({
          locationId: r.id,
          obs: { ok: result.ok, at: result.at, error: result.error },
          source: "probe",
          probed: { address: r.address },
          cpu: result.cpu,
          nextProbeAt: new Date(result.at.getTime() + interval * 1000),
          leaseOwner: owner,
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(defaults.concurrency, claimed.length) }, worker));
    if (skipped.length > 0) {
      const later = new Date(this.deps.clock.now().getTime() + defaults.intervalSeconds * 1000);
      await releaseLeases(this.deps.db, owner, skipped, later);
    }
    return out;
  }

  private flush(transitions: RecordedTransition[]): void {
    if (transitions.length === 0) {
      return;
    }
    logTransitions(this.deps.logger, transitions);
    this.deps.onTransitions(transitions);
  }
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

/** node-cron schedule firing every `seconds` (a divisor of 60). */
export async function cronSchedule(seconds: number): Promise<(tick: () => void) => () => void> {
  const cron = await import("node-cron");
  return (tick) => {
    const task = cron.schedule(`*/${seconds} * * * * *`, tick);
    return () => {
      void task.stop();
    };
  };
}
