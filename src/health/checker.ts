import type { Db } from "../db/client.js";
import { type ClaimedReplica, claimDueReplicas, type RecordedTransition, releaseLeases } from "../db/repo/health.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Metrics } from "../lib/metrics.js";
import type { Probe, ProbeTarget } from "./probe.js";
import { ResultRecorder } from "./recorder.js";
import { logTransitions } from "./report.js";
import { dueSlackMs, LEASE_MARGIN_MS, nextProbeAt } from "./state.js";

export interface CheckDefaults {
  path: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  expectedStatus: string;
  concurrency: number;
  rise: number;
  /** Seconds between scheduler ticks (HEALTH_TICK_SECONDS): replicas due within half a tick are claimed early. */
  tickSeconds?: number;
}

export interface CheckerDeps {
  db: Db;
  probe: Probe;
  clock: Clock;
  logger: Logger;
  /** Counts probes by result, with their latency. */
  metrics?: Metrics;
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

/** Probes started by one tick (and the refills that continue it while more is due). */
interface Round {
  started: number;
  probed: number;
  failed: number;
  transitions: number;
  /** performance.now() at the start. */
  t0: number;
  /** Still claiming: the last claim filled every free slot, so more replicas may be due. */
  draining: boolean;
  /** Claimed for this round, waiting for a slot. */
  queued: number;
  tasks: Set<Promise<void>>;
}

interface Ready {
  r: ClaimedReplica;
  round: Round;
  /** Clock time of the claim (the lease runs from then). */
  at: number;
}

/** A claimed replica waits at most this long for a slot, so its lease (timeout + LEASE_MARGIN_MS) covers its probe. */
const READY_MAX_WAIT_MS = LEASE_MARGIN_MS / 2;

/** The probe for a claimed replica: the deployment's protocol, health mode and TLS policy, or the defaults. */
export function probeTargetFor(r: ClaimedReplica & { port: number }, defaults: CheckDefaults): ProbeTarget {
  const protocol = r.protocol ?? "http";
  const tls =
    protocol === "https" && (r.tlsServerName !== null || r.tlsCaPem !== null || r.tlsInsecureSkipVerify)
      ? { serverName: r.tlsServerName, caPem: r.tlsCaPem, insecureSkipVerify: r.tlsInsecureSkipVerify }
      : null;
  return {
    protocol,
    address: r.address,
    port: r.port,
    path: r.healthPath ?? defaults.path,
    mode: r.healthMode ?? (protocol === "h2c" ? "grpc" : "http"),
    tls,
    timeoutMs: (r.healthTimeoutSeconds ?? defaults.timeoutSeconds) * 1000,
    expectedStatus: r.healthExpectedStatus ?? defaults.expectedStatus,
  };
}

/**
 * Active health checking. Every tick claims the replicas whose probe is due (shared across instances through row
 * leases that cover each probe's own timeout) into free concurrency slots. Each probe is independent: it holds one
 * slot until it ends, freed slots are refilled while more is due, and a tick never waits for (or skips because of)
 * probes still running. Results are recorded in batches through the pure state machine.
 */
export class HealthChecker {
  /** Slots in use: probes running. */
  private inflight = 0;
  private readonly tasks = new Set<Promise<void>>();
  private filling: Promise<void> | undefined;
  private fillAgain = false;
  /** The round whose claims are still filling slots. */
  private current: Round | undefined;
  /** Claimed, waiting for a free slot (at most one slot-set). */
  private readonly ready: Ready[] = [];
  private readonly recorder: ResultRecorder<Round>;
  private stopSchedule: (() => void) | undefined;
  private stopped = false;
  private readonly stopper = new AbortController();
  private readonly cancelled: string[] = [];

  constructor(private readonly deps: CheckerDeps) {
    this.recorder = new ResultRecorder<Round>({
      db: deps.db,
      logger: deps.logger,
      rise: deps.defaults.rise,
      batchAt: 2 * deps.defaults.concurrency,
      busy: () => this.inflight > 0 && !this.stopped,
      onTransitions: (transitions) => {
        logTransitions(deps.logger, transitions);
        deps.onTransitions(transitions);
      },
      onRecorded: (round) => {
        round.transitions++;
      },
    });
  }

  start(): void {
    this.stopSchedule = this.deps.schedule(() => this.tick());
  }

  /** Claims what is due into the free slots and starts those probes; returns at once, never skipped. */
  tick(): void {
    if (this.stopped) {
      return;
    }
    if (this.current) {
      this.fill(this.current); // a round still claiming picks up what became due
      return;
    }
    const round = this.newRound();
    this.fill(round);
    void this.settle(round).then((s) => {
      if (s.probed > 0) {
        this.deps.logger.debug("health round", { ...s });
      }
    });
  }

  /** Stops claiming, cancels probes in flight (their leases are given back) and records what finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopSchedule?.();
    this.stopper.abort();
    await this.filling;
    this.startReady(); // gives the leases of claimed, unstarted replicas back
    while (this.tasks.size > 0) {
      await Promise.allSettled([...this.tasks]);
    }
    await this.recorder.idle();
    if (this.cancelled.length > 0) {
      await releaseLeases(this.deps.db, this.deps.owner, this.cancelled.splice(0)).catch((err: unknown) =>
        this.deps.logger.warn("could not release probe leases", { err }),
      );
    }
    this.recorder.flush();
  }

  /** One round: probes everything due now and resolves when those results are recorded (tests, bench). */
  runRound(): Promise<RoundSummary> {
    const round = this.current ?? this.newRound();
    this.fill(round);
    return this.settle(round);
  }

  /** Probes one replica at once (just registered or moved), unless another probe holds it. */
  probeNow(locationId: string): void {
    if (this.stopped) {
      return;
    }
    this.track(
      this.claim(1, locationId)
        .then(([r]) => (r ? this.probeOne(r, undefined) : undefined))
        .catch((err: unknown) => this.deps.logger.warn("immediate probe failed", { locationId, err })),
    );
  }

  private newRound(): Round {
    return {
      started: 0,
      probed: 0,
      failed: 0,
      transitions: 0,
      t0: performance.now(),
      draining: true,
      queued: 0,
      tasks: new Set(),
    };
  }

  private fill(round: Round): void {
    if (this.stopped) {
      return;
    }
    if (this.filling) {
      this.fillAgain = true;
      return;
    }
    this.filling = this.claimLoop(round)
      .catch((err: unknown) => {
        round.draining = false;
        this.deps.logger.error("health claim failed", { err });
      })
      .finally(() => {
        this.filling = undefined;
        if (this.current === round && !round.draining) {
          this.current = undefined;
        }
        if (this.fillAgain && round.draining) {
          this.fill(round); // asked again while this claim was finishing: slots may be free by now
        }
      });
  }

  /** Claims into every free slot until a claim comes back short (nothing more due) or the slots are full. */
  /**
   * Claims ahead of the free slots (up to one slot-set waiting, like the old claim batch, so claims stay few and
   * large) until a claim comes back short: nothing more is due. Claimed replicas start as soon as a slot is free.
   */
  private async claimLoop(round: Round): Promise<void> {
    this.current = round;
    round.draining = true;
    const { concurrency } = this.deps.defaults;
    for (;;) {
      this.fillAgain = false;
      this.startReady();
      const want = 2 * concurrency - this.inflight - this.ready.length;
      if (want < concurrency || this.stopped) {
        return; // enough claimed ahead: a probe that ends takes the next one and claims more
      }
      const claimed = await this.claim(want);
      const at = this.deps.clock.now().getTime();
      for (const r of claimed) {
        this.ready.push({ r, round, at });
        round.queued++;
      }
      this.startReady();
      if (claimed.length < want && !this.fillAgain) {
        round.draining = false;
        return;
      }
    }
  }

  /**
   * Starts claimed replicas in the free slots. One that waited so long that its lease might run out during its
   * probe (all slots busy for READY_MAX_WAIT_MS) is given back instead: leases must cover the whole probe.
   */
  private startReady(): void {
    const stale: string[] = [];
    const now = this.deps.clock.now().getTime();
    while (this.inflight < this.deps.defaults.concurrency && this.ready.length > 0) {
      const item = this.ready.shift() as Ready;
      item.round.queued--;
      if (this.stopped || now - item.at > READY_MAX_WAIT_MS) {
        stale.push(item.r.id);
      } else {
        this.startProbe(item.r, item.round);
      }
    }
    if (this.stopped) {
      stale.push(...this.ready.map((item) => item.r.id));
      for (const item of this.ready.splice(0)) {
        item.round.queued--;
      }
    }
    if (stale.length > 0) {
      this.track(
        releaseLeases(this.deps.db, this.deps.owner, stale).catch((err: unknown) =>
          this.deps.logger.warn("could not release probe leases", { err }),
        ),
      );
    }
  }

  private startProbe(r: ClaimedReplica, round: Round): void {
    round.started++;
    const task = this.probeOne(r, round).catch((err: unknown) =>
      this.deps.logger.warn("health probe failed", { locationId: r.id, err }),
    );
    round.tasks.add(task);
    void task.finally(() => round.tasks.delete(task));
    this.track(task);
  }

  private track(task: Promise<void>): void {
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }

  /** Probes one claimed replica in its own slot (rounds only) and waits until its result is recorded. */
  private async probeOne(r: ClaimedReplica, round: Round | undefined): Promise<void> {
    const { defaults, owner, clock } = this.deps;
    const interval = (r.healthIntervalSeconds ?? defaults.intervalSeconds) * 1000;
    if (r.port === null) {
      // No port and no route to take one from: nothing to probe yet.
      await releaseLeases(this.deps.db, owner, [r.id], new Date(clock.now().getTime() + interval));
      return;
    }
    if (round) {
      this.inflight++;
    }
    let result: Awaited<ReturnType<Probe>>;
    try {
      result = await this.deps.probe({
        ...probeTargetFor({ ...r, port: r.port }, defaults),
        signal: this.stopper.signal,
      });
    } finally {
      if (round) {
        this.inflight--;
        this.startReady(); // the freed slot takes the next claimed replica; the other probes keep running
        if (this.current && 2 * defaults.concurrency - this.inflight - this.ready.length >= defaults.concurrency) {
          this.fill(this.current); // claim more while more is due
        }
      }
    }
    if (this.stopper.signal.aborted && !result.ok) {
      this.cancelled.push(r.id); // cut short by stop(): not an observation of the replica
      return;
    }
    this.deps.metrics?.probes.inc({ result: result.ok ? "ok" : "failed" });
    this.deps.metrics?.probeDuration.observe(result.durationMs / 1000);
    if (round) {
      round.probed++;
      round.failed += result.ok ? 0 : 1;
    }
    await this.recorder.add(
      {
        locationId: r.id,
        obs: { ok: result.ok, at: result.at, error: result.error },
        source: "probe",
        probed: { address: r.address },
        cpu: result.cpu,
        nextProbeAt: nextProbeAt(r.dueAt, result.at, interval),
        leaseOwner: owner,
      },
      round,
    );
  }

  /** Waits until a round has stopped claiming and all of its probes are recorded. */
  private async settle(round: Round): Promise<RoundSummary> {
    for (;;) {
      if (round.tasks.size > 0) {
        await Promise.allSettled([...round.tasks]);
      } else if ((round.draining || round.queued > 0) && (this.filling || this.tasks.size > 0)) {
        // Slots full with other rounds' probes: wait for one to end (it refills) or for the claim in progress.
        await Promise.race(this.filling ? [this.filling, ...this.tasks] : [...this.tasks]);
      } else {
        break;
      }
    }
    this.recorder.flush();
    const { probed, failed, transitions } = round;
    return { probed, failed, transitions, durationMs: Math.round(performance.now() - round.t0) };
  }

  private claim(limit: number, onlyId?: string): Promise<ClaimedReplica[]> {
    const { defaults } = this.deps;
    return claimDueReplicas(this.deps.db, {
      owner: this.deps.owner,
      now: this.deps.clock.now(),
      limit,
      defaultTimeoutMs: Math.ceil(defaults.timeoutSeconds * 1000),
      dueSlackMs: dueSlackMs((defaults.tickSeconds ?? 0) * 1000),
      ...(onlyId ? { onlyId } : {}),
    });
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
