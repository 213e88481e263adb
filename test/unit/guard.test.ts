import { describe, expect, it } from "vitest";
import { guardDecision } from "../../src/provider/guard.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import type { TraefikDocument } from "../../src/render/types.js";
import { aReplica, aRoute, settings } from "../fixtures/rows.js";

const limits = { maxRemovedPercent: 50, minRouters: 10 };

/** The config render gives for `n` deployments with one route each (two routers per route: serving + twin). */
function platform(ids: number[], healthy = true): TraefikDocument {
  return renderDynamicConfig({
    routes: ids.map((i) => aRoute({ id: `rt_${i}`, deploymentId: `dep_${i}`, domain: `app${i}.example.com` })),
    replicas: ids.map((i) =>
      aReplica({ id: `loc_${i}`, deploymentId: `dep_${i}`, healthStatus: healthy ? "healthy" : "unhealthy" }),
    ),
    settings,
  }).config;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe("guardDecision", () => {
  it("holds a render that removes 80% of the routers of a config with at least GUARD_MIN_ROUTERS", () => {
    const served = platform(range(0, 10)); // 20 routers
    const d = guardDecision(served, platform(range(0, 2)), limits, false);
    expect(d).toMatchObject({ hold: true, servedRouters: 20, removedPercent: 80 });
    expect(d.removedRouters).toHaveLength(16);
    expect(d.removedRouters).toEqual([...d.removedRouters].sort());
  });

  it("lets the same render through once confirmed", () => {
    expect(guardDecision(platform(range(0, 10)), platform(range(0, 2)), limits, true).hold).toBe(false);
  });

  it("holds only strictly above the limit", () => {
    const served = platform(range(0, 10));
    expect(guardDecision(served, platform(range(0, 5)), limits, false)).toMatchObject({
      hold: false,
      removedPercent: 50,
    });
    expect(guardDecision(served, platform(range(0, 4)), limits, false).hold).toBe(true);
  });

  it("never holds for a served config below GUARD_MIN_ROUTERS routers", () => {
    // 4 deployments = 8 routers: removing all of them is allowed on a small platform.
    expect(guardDecision(platform(range(0, 4)), {}, limits, false)).toMatchObject({ hold: false, removedPercent: 100 });
    expect(guardDecision(platform(range(0, 5)), {}, limits, false).hold).toBe(true); // 10 routers
  });

  it("never holds when nothing is served yet, or for additions", () => {
    expect(guardDecision(undefined, platform(range(0, 20)), limits, false).hold).toBe(false);
    expect(guardDecision({}, platform(range(0, 20)), limits, false).hold).toBe(false);
    expect(guardDecision(platform(range(0, 10)), platform(range(0, 40)), limits, false).removedRouters).toEqual([]);
  });

  it("is not tripped by every replica of every deployment failing: routers stay, only servers change", () => {
    const served = platform(range(0, 50));
    const failed = platform(range(0, 50), false);
    expect(JSON.stringify(failed)).not.toBe(JSON.stringify(served)); // the servers did change
    expect(guardDecision(served, failed, limits, false)).toMatchObject({ hold: false, removedRouters: [] });
  });

  it("counts a renamed router as removed (Traefik drops the old name)", () => {
    const served = platform(range(0, 10));
    const renamed = platform(range(100, 110));
    expect(guardDecision(served, renamed, limits, false)).toMatchObject({ hold: true, removedPercent: 100 });
  });

  it("follows the configured limits", () => {
    const served = platform(range(0, 10));
    const candidate = platform(range(0, 2));
    expect(guardDecision(served, candidate, { maxRemovedPercent: 90, minRouters: 10 }, false).hold).toBe(false);
    expect(guardDecision(served, candidate, { maxRemovedPercent: 50, minRouters: 21 }, false).hold).toBe(false);
    expect(guardDecision(served, candidate, { maxRemovedPercent: 100, minRouters: 1 }, false).hold).toBe(false);
  });
});
