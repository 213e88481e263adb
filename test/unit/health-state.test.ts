import { describe, expect, it } from "vitest";
import {
  dueSlackMs,
  type FoldedObservations,
  foldObservations,
  freshCpu,
  type HealthState,
  LEASE_MARGIN_MS,
  nextHealth,
  nextProbeAt,
  type ObservationInput,
  probeLeaseMs,
  type ReplicaUpdate,
  type StoredReplica,
  statusMatches,
} from "../../src/health/state.js";

const policy = { rise: 3 };
const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
const ok = (s: number) => ({ ok: true, at: t(s) });
const fail = (s: number, error = "HTTP 500") => ({ ok: false, at: t(s), error });

function run(start: HealthState, observations: { ok: boolean; at: Date; error?: string }[]) {
  let state = start;
  const transitions = [];
  for (const o of observations) {
    const r = nextHealth(state, o, policy);
    state = r.state;
    if (r.transition) {
      transitions.push(r.transition);
    }
  }
  return { state, transitions };
}

const fresh: HealthState = { status: "unknown", okStreak: 0, failStreak: 0 };

describe("nextHealth", () => {
  it("routes an unknown replica after its first success", () => {
    const { state, transitions } = run(fresh, [ok(0)]);
    expect(state.status).toBe("healthy");
    expect(transitions).toEqual([{ from: "unknown", to: "healthy", at: t(0), reason: "first successful check" }]);
  });

  it("marks a healthy replica unhealthy on the first failure", () => {
    const { state, transitions } = run(fresh, [ok(0), ok(30), fail(60, "timeout after 5000 ms")]);
    expect(state).toEqual({ status: "unhealthy", okStreak: 0, failStreak: 1 });
    expect(transitions.at(-1)).toEqual({
      from: "healthy",
      to: "unhealthy",
      at: t(60),
      reason: "timeout after 5000 ms",
    });
  });

  it("needs `rise` consecutive successes to recover, and a failure restarts the count", () => {
    const down: HealthState = { status: "unhealthy", okStreak: 0, failStreak: 1 };
    expect(run(down, [ok(0), ok(1)]).state.status).toBe("unhealthy");
    expect(run(down, [ok(0), ok(1), fail(2), ok(3), ok(4)]).state.status).toBe("unhealthy");
    const back = run(down, [ok(0), ok(1), fail(2), ok(3), ok(4), ok(5)]);
    expect(back.state.status).toBe("healthy");
    expect(back.transitions.at(-1)).toEqual({
      from: "unhealthy",
      to: "healthy",
      at: t(5),
      reason: "3 consecutive successful checks",
    });
  });

  it("honours another rise threshold", () => {
    const down: HealthState = { status: "unhealthy", okStreak: 0, failStreak: 4 };
    expect(nextHealth(down, ok(0), { rise: 1 }).state.status).toBe("healthy");
  });

  it("reports no transition when nothing changes", () => {
    const down: HealthState = { status: "unhealthy", okStreak: 0, failStreak: 1 };
    expect(nextHealth(down, fail(0), policy).transition).toBeUndefined();
  });
});

describe("statusMatches", () => {
  it.each([
    ["2xx", 200, true],
    ["2xx", 299, true],
    ["2xx", 301, false],
    ["204", 204, true],
    ["204", 200, false],
    ["200-399", 302, true],
    ["200-399", 404, false],
    ["200, 3xx", 304, true],
  ])("%s vs %i → %s", (spec, code, want) => expect(statusMatches(spec, code)).toBe(want));
});

describe("freshCpu", () => {
  it("drops readings older than three intervals", () => {
    expect(freshCpu(40, t(0), t(90), 30)).toBe(40);
    expect(freshCpu(40, t(0), t(91), 30)).toBeNull();
    expect(freshCpu(null, null, t(0), 30)).toBeNull();
  });
});

describe("probe leases and due times", () => {
  it("leases a replica for its own probe timeout plus a margin, up to the 120 s maximum", () => {
    expect(LEASE_MARGIN_MS).toBeGreaterThanOrEqual(5_000);
    expect(probeLeaseMs(5_000)).toBe(15_000);
    expect(probeLeaseMs(60_000)).toBe(70_000); // the hanging replica of issue 10 #6: never claimed twice
    expect(probeLeaseMs(120_000)).toBe(130_000);
  });

  it("keeps a replica probed on time on its own grid, so ticks and claim latency never add up", () => {
    // due at 30 s, probed 50 ms late: due again at 60 s, not 60.05 s
    expect(nextProbeAt(t(30), new Date(t(30).getTime() + 50), 30_000)).toEqual(t(60));
    // claimed up to half a tick early: still due at due + interval
    expect(nextProbeAt(t(30), new Date(t(30).getTime() - 2_500), 30_000)).toEqual(t(60));
  });

  it("starts a new grid for a new replica or a probe that ran half an interval late", () => {
    expect(nextProbeAt(null, t(7), 30_000)).toEqual(t(37));
    expect(nextProbeAt(t(0), t(20), 30_000)).toEqual(t(50)); // no catch-up burst after a backlog
    expect(nextProbeAt(t(0), t(14), 30_000)).toEqual(t(30));
  });

  it("claims a replica due within half a tick", () => {
    expect(dueSlackMs(5_000)).toBe(2_500);
    expect(dueSlackMs(0)).toBe(0);
  });
});

describe("foldObservations", () => {
  const row = (id: string, more: Partial<StoredReplica> = {}): StoredReplica => ({
    id,
    deploymentId: "dep_a",
    address: "10.0.0.1",
    healthStatus: "healthy",
    okStreak: 5,
    failStreak: 0,
    leaseOwner: "me",
    ...more,
  });
  const probe = (id: string, o: { ok: boolean; at: Date; error?: string }, more: Partial<ObservationInput> = {}) =>
    ({ locationId: id, obs: o, source: "probe", probed: { address: "10.0.0.1" }, leaseOwner: "me", ...more }) as const;
  const report = (id: string, s: number) =>
    ({ locationId: id, obs: fail(s, "reported: x"), source: "report" }) as const satisfies ObservationInput;
  const update = (id: string, more: Partial<ReplicaUpdate> = {}): ReplicaUpdate => ({
    id,
    health: "healthy",
    ok: 6,
    fail: 0,
    at: t(1),
    error: null,
    cpu: undefined,
    next: undefined,
    report: false,
    release: true,
    ...more,
  });
  const down = { from: "healthy", to: "unhealthy", locationId: "r1", deploymentId: "dep_a" } as const;

  const cases: [string, StoredReplica[], ObservationInput[], FoldedObservations][] = [
    ["nothing to fold", [row("r1")], [], { updates: [], released: [], transitions: [], events: [] }],
    [
      "a success keeps a healthy replica, counts the streak, releases its lease",
      [row("r1")],
      [probe("r1", ok(1), { cpu: 12.5, nextProbeAt: t(31) })],
      { updates: [update("r1", { cpu: 12.5, next: t(31) })], released: [], transitions: [], events: [] },
    ],
    [
      "a probe failure is a transition, recorded with its source",
      [row("r1")],
      [probe("r1", fail(2, "HTTP 500"))],
      {
        updates: [update("r1", { health: "unhealthy", ok: 0, fail: 1, at: t(2), error: "HTTP 500" })],
        released: [],
        transitions: [{ ...down, at: t(2), reason: "HTTP 500" }],
        events: [{ ...down, at: t(2), reason: "HTTP 500", source: "probe" }],
      },
    ],
    [
      "a report neither releases a lease nor keeps cpu/next; it marks the report time",
      [row("r1")],
      [report("r1", 3)],
      {
        updates: [
          update("r1", {
            health: "unhealthy",
            ok: 0,
            fail: 1,
            at: t(3),
            error: "reported: x",
            report: true,
            release: false,
          }),
        ],
        released: [],
        transitions: [{ ...down, at: t(3), reason: "reported: x" }],
        events: [{ ...down, at: t(3), reason: "reported: x", source: "report" }],
      },
    ],
    [
      "two observations of one replica: one update, the second builds on the first, flags and readings carry over",
      [row("r1", { healthStatus: "unknown", okStreak: 0 })],
      [probe("r1", ok(1), { cpu: 40, nextProbeAt: t(31) }), report("r1", 2)],
      {
        updates: [
          update("r1", {
            health: "unhealthy",
            ok: 0,
            fail: 1,
            at: t(2),
            error: "reported: x",
            cpu: 40,
            next: t(31),
            report: true,
          }),
        ],
        released: [],
        transitions: [
          {
            from: "unknown",
            to: "healthy",
            at: t(1),
            reason: "first successful check",
            locationId: "r1",
            deploymentId: "dep_a",
          },
          { ...down, at: t(2), reason: "reported: x" },
        ],
        events: [
          {
            from: "unknown",
            to: "healthy",
            at: t(1),
            reason: "first successful check",
            locationId: "r1",
            deploymentId: "dep_a",
            source: "probe",
          },
          { ...down, at: t(2), reason: "reported: x", source: "report" },
        ],
      },
    ],
    [
      "a replica that moved keeps its state and only gets its lease back; one leased by another keeps it",
      [row("r1", { address: "10.0.0.9" }), row("r2", { address: "10.0.0.9", leaseOwner: "other" })],
      [probe("r1", fail(1)), probe("r2", fail(1))],
      { updates: [], released: ["r1"], transitions: [], events: [] },
    ],
    [
      "a replica deleted meanwhile is skipped; a failure without a reason says `check failed`",
      [row("r2", { leaseOwner: null })],
      [probe("gone", fail(1)), probe("r2", { ok: false, at: t(1) })],
      {
        updates: [update("r2", { health: "unhealthy", ok: 0, fail: 1, error: "check failed", release: false })],
        released: [],
        transitions: [{ ...down, locationId: "r2", at: t(1), reason: "check failed" }],
        events: [{ ...down, locationId: "r2", at: t(1), reason: "check failed", source: "probe" }],
      },
    ],
  ];

  it.each(cases)("%s", (_, rows, items, expected) => {
    expect(foldObservations(rows, items, policy)).toEqual(expected);
  });

  it("leaves its inputs untouched", () => {
    const rows = [row("r1")];
    const before = structuredClone(rows);
    foldObservations(rows, [probe("r1", fail(1)), probe("r1", ok(2))], policy);
    expect(rows).toEqual(before);
  });
});
