import { describe, expect, it } from "vitest";
import {
  dueSlackMs,
  freshCpu,
  type HealthState,
  LEASE_MARGIN_MS,
  nextHealth,
  nextProbeAt,
  probeLeaseMs,
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
