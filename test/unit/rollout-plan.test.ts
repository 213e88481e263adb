import { describe, expect, it } from "vitest";
import {
  type AbortWhen,
  appendHistory,
  decide,
  HISTORY_LIMIT,
  measureTrack,
  RolloutBody,
  type RolloutFacts,
  replicaFailures,
  stepWeights,
  type TrackReplica,
} from "../../src/rollout/plan.js";

const NOW = Date.parse("2026-06-01T12:00:00Z");
const sec = (s: number) => NOW - s * 1000;
const THRESHOLDS: AbortWhen = { healthy_ratio_below: 0.8, failures_per_minute_above: 5 };

const replica = (over: Partial<TrackReplica> = {}): TrackReplica => ({
  id: "c1",
  health: "healthy",
  failStreak: 0,
  lastCheckMs: sec(5),
  downsInWindow: 0,
  lastDownMs: null,
  ...over,
});

const facts = (over: Partial<RolloutFacts> = {}): RolloutFacts => ({
  state: "running",
  steps: [5, 25, 50, 100],
  stepIndex: 0,
  nextStepAtMs: NOW + 60_000,
  abortWhen: THRESHOLDS,
  ...over,
});

describe("rollout request validation", () => {
  const base = { track: "canary", steps: [5, 25, 50, 100], interval_seconds: 300 };
  const errorsOf = (body: unknown) =>
    RolloutBody.safeParse(body).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];

  it("accepts the documented request and fills default thresholds", () => {
    expect(RolloutBody.parse(base)).toEqual({
      ...base,
      abort_when: { healthy_ratio_below: 0.8, failures_per_minute_above: 5 },
    });
  });

  it("refuses stable as the track, unordered steps, a last step below 100 and out-of-range values", () => {
    expect(errorsOf({ ...base, track: "stable" })).toEqual(["track: the rolled-out track cannot be 'stable'"]);
    expect(errorsOf({ ...base, steps: [5, 5, 100] })).toEqual(["steps.1: steps must be strictly increasing"]);
    expect(errorsOf({ ...base, steps: [5, 50] })).toEqual(["steps.1: the last step must be 100 (promotion)"]);
    expect(errorsOf({ ...base, steps: [100] })).toHaveLength(1);
    expect(errorsOf({ ...base, steps: [0, 100] })).toHaveLength(1);
    expect(errorsOf({ ...base, steps: [5.5, 100] })).toHaveLength(1);
    expect(errorsOf({ ...base, interval_seconds: 9 })).toHaveLength(1);
    expect(errorsOf({ ...base, interval_seconds: 86_401 })).toHaveLength(1);
    expect(errorsOf({ ...base, abort_when: { healthy_ratio_below: 1.5 } })).toHaveLength(1);
    expect(errorsOf({ ...base, abort_when: { failures_per_minute_above: -1 } })).toHaveLength(1);
    expect(errorsOf({ ...base, track: "Canary`" })).toHaveLength(1);
    expect(errorsOf({ ...base, extra: 1 })).toHaveLength(1);
  });
});

describe("failures per minute from what the database records", () => {
  it("counts nothing for a replica without failures", () => {
    expect(replicaFailures(replica(), NOW)).toBe(0);
  });

  it("counts the whole current streak when it began inside the window", () => {
    expect(
      replicaFailures(replica({ health: "unhealthy", failStreak: 7, downsInWindow: 1, lastDownMs: sec(20) }), NOW),
    ).toBe(7);
  });

  it("adds earlier transitions to unhealthy inside the window (each at least one failure)", () => {
    const r = replica({ health: "unhealthy", failStreak: 2, downsInWindow: 3, lastDownMs: sec(10) });
    expect(replicaFailures(r, NOW)).toBe(4);
    expect(replicaFailures(replica({ downsInWindow: 2, lastDownMs: sec(30) }), NOW)).toBe(2); // recovered since
  });

  it("prorates a streak that began before the window over its span", () => {
    // 40 failures over the last 120 s: 20 of them in the last minute.
    const r = replica({ health: "unhealthy", failStreak: 40, lastCheckMs: NOW, lastDownMs: sec(120) });
    expect(replicaFailures(r, NOW)).toBe(20);
    // A slow failing probe: one failure a minute ago counts at least once.
    const slow = replica({ health: "unhealthy", failStreak: 2, lastCheckMs: sec(30), lastDownMs: sec(600) });
    expect(replicaFailures(slow, NOW)).toBe(1);
  });

  it("forgets failures older than the window", () => {
    const old = replica({ health: "unhealthy", failStreak: 9, lastCheckMs: sec(61), lastDownMs: sec(90) });
    expect(replicaFailures(old, NOW)).toBe(0);
  });

  it("measures the ratio over judged replicas only", () => {
    const h = measureTrack(
      [replica({ id: "a" }), replica({ id: "b", health: "unhealthy" }), replica({ id: "c", health: "unknown" })],
      NOW,
    );
    expect(h).toEqual({ replicas: 3, healthy: 1, unhealthy: 1, unknown: 1, healthyRatio: 0.5, failuresLastMinute: 0 });
    expect(measureTrack([replica({ health: "unknown" })], NOW).healthyRatio).toBeNull();
  });
});

describe("what the worker does next", () => {
  const healthy = measureTrack([replica({ id: "a" }), replica({ id: "b" })], NOW);

  it("waits for the step's time, then steps, then promotes at 100", () => {
    expect(decide(facts(), healthy, NOW)).toEqual({ kind: "none" });
    expect(decide(facts({ nextStepAtMs: NOW }), healthy, NOW)).toEqual({ kind: "step", stepIndex: 1, weight: 25 });
    expect(decide(facts({ stepIndex: 2, nextStepAtMs: NOW - 1 }), healthy, NOW)).toEqual({
      kind: "promote",
      stepIndex: 3,
    });
  });

  it("aborts below the healthy ratio, also while paused", () => {
    const half = measureTrack([replica({ id: "a" }), replica({ id: "b", health: "unhealthy" })], NOW);
    const expected = { kind: "abort", reason: "healthy ratio 50% (1 of 2 replicas) is below 80%" };
    expect(decide(facts(), half, NOW)).toEqual(expected);
    expect(decide(facts({ state: "paused", nextStepAtMs: null }), half, NOW)).toEqual(expected);
  });

  it("aborts above the failure rate", () => {
    const failing = { ...healthy, failuresLastMinute: 6 };
    expect(decide(facts(), failing, NOW)).toEqual({
      kind: "abort",
      reason: "6 failures in the last minute, more than 5",
    });
    expect(decide(facts(), { ...healthy, failuresLastMinute: 5 }, NOW)).toEqual({ kind: "none" });
  });

  it("aborts when the track lost every running replica", () => {
    expect(decide(facts(), measureTrack([], NOW), NOW)).toEqual({
      kind: "abort",
      reason: "the track has no running replica",
    });
  });

  it("never advances a paused or finished rollout, nor one whose track has no healthy replica yet", () => {
    expect(decide(facts({ state: "paused", nextStepAtMs: null }), healthy, NOW)).toEqual({ kind: "none" });
    expect(decide(facts({ state: "aborted", nextStepAtMs: NOW }), healthy, NOW)).toEqual({ kind: "none" });
    expect(decide(facts({ state: "promoted" }), measureTrack([], NOW), NOW)).toEqual({ kind: "none" });
    const unknown = measureTrack([replica({ health: "unknown" })], NOW);
    expect(decide(facts({ nextStepAtMs: NOW }), unknown, NOW)).toEqual({
      kind: "wait",
      reason: "the track has no healthy replica",
    });
  });

  it("splits the rest of the traffic to stable and keeps a bounded history", () => {
    expect(stepWeights("canary", 25)).toEqual({ stable: 75, canary: 25 });
    const entry = { at: "x", action: "step", step_index: 1, weight: 1, reason: "r" } as const;
    let h: unknown[] = [];
    for (let i = 0; i < HISTORY_LIMIT + 5; i++) {
      h = appendHistory(h, { ...entry, step_index: i });
    }
    expect(h).toHaveLength(HISTORY_LIMIT);
    expect((h.at(-1) as { step_index: number }).step_index).toBe(HISTORY_LIMIT + 4);
  });
});
