import type { Db } from "../db/client.js";
import { type ObservationInput, type RecordedTransition, recordObservations } from "../db/repo/health.js";
import type { Logger } from "../lib/logger.js";

export interface RecorderDeps<T> {
  db: Db;
  logger: Logger;
  rise: number;
  /** A batch this large is recorded at once (the checker's concurrency). */
  batchAt: number;
  /** Whether more results are coming soon (probes in flight): if not, a small batch is recorded at once. */
  busy: () => boolean;
  /** Published transitions (logged and rendered by the caller). */
  onTransitions: (transitions: RecordedTransition[]) => void;
  /** Called for each transition with the tag its result was added with. */
  onRecorded: (tag: T, transition: RecordedTransition) => void;
}

interface Queued<T> {
  input: ObservationInput;
  tag: T | undefined;
  done: () => void;
}

/** Results recorded per transaction at most: one batched UPDATE per 500 rows (see recordObservations). */
const RECORD_BATCH = 1000;
/** The longest a probe result waits for others to share its transaction. */
const RECORD_WAIT_MS = 100;
/** Transitions are published at least this often while probes keep finishing (each one costs Traefik a reload). */
const FLUSH_EVERY_MS = 1000;

/**
 * Records probe results in batches, one transaction at a time: a batch waits until it is worth a transaction (a
 * slot's worth of results, probing gone quiet, or RECORD_WAIT_MS), because one transaction per result costs more
 * than the probes. Transitions are published when probing goes quiet, and at least once a second otherwise.
 */
export class ResultRecorder<T> {
  private queue: Queued<T>[] = [];
  private recording: Promise<void> | undefined;
  private recordTimer: NodeJS.Timeout | undefined;
  private pending: RecordedTransition[] = [];
  private lastFlush = 0;
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: RecorderDeps<T>) {}

  /** Queues one result; resolves once it is recorded (or its batch failed and was logged). */
  add(input: ObservationInput, tag: T | undefined): Promise<void> {
    return new Promise<void>((done) => {
      this.queue.push({ input, tag, done });
      this.record();
    });
  }

  /** Resolves when nothing is being recorded. */
  async idle(): Promise<void> {
    while (this.recording || this.queue.length > 0) {
      this.recordNow();
      await this.recording;
    }
  }

  /** Publishes the transitions recorded so far. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.lastFlush = performance.now();
    if (this.pending.length === 0) {
      return;
    }
    const transitions = this.pending;
    this.pending = [];
    this.deps.onTransitions(transitions);
  }

  private record(): void {
    if (this.recording) {
      return; // the batch in progress calls back when it is done
    }
    if (this.queue.length >= this.deps.batchAt || !this.deps.busy()) {
      this.recordNow();
      return;
    }
    this.recordTimer ??= setTimeout(() => {
      this.recordTimer = undefined;
      this.recordNow();
    }, RECORD_WAIT_MS);
  }

  private recordNow(): void {
    if (this.recording || this.queue.length === 0) {
      return;
    }
    clearTimeout(this.recordTimer);
    this.recordTimer = undefined;
    const batch = this.queue.splice(0, RECORD_BATCH);
    this.recording = this.recordBatch(batch).finally(() => {
      this.recording = undefined;
      if (this.queue.length > 0) {
        this.record();
      }
    });
  }

  private async recordBatch(batch: Queued<T>[]): Promise<void> {
    try {
      const inputs = batch.map((q) => q.input);
      const transitions = await recordObservations(this.deps.db, inputs, { rise: this.deps.rise });
      const tags = new Map(batch.map((q) => [q.input.locationId, q.tag]));
      for (const t of transitions) {
        const tag = tags.get(t.locationId);
        if (tag !== undefined) {
          this.deps.onRecorded(tag, t);
        }
      }
      this.pending.push(...transitions);
    } catch (err) {
      // The leases run out and the replicas are probed again: only this batch's readings are lost.
      this.deps.logger.error("recording health results failed", { err, results: batch.length });
    }
    for (const q of batch) {
      q.done();
    }
    this.maybeFlush();
  }

  private maybeFlush(): void {
    if (this.pending.length === 0) {
      return;
    }
    const waited = performance.now() - this.lastFlush;
    if ((!this.deps.busy() && this.queue.length === 0) || waited >= FLUSH_EVERY_MS) {
      this.flush();
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, FLUSH_EVERY_MS - waited);
      this.flushTimer.unref();
    }
  }
}
