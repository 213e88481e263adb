import { describe, expect, it } from "vitest";
import { backoffMs, LISTEN_BACKOFF, poolBackoffSeconds } from "../../src/db/backoff.js";

describe("reconnect backoff", () => {
  const { baseMs, maxMs } = LISTEN_BACKOFF;

  it("doubles from the base and stops at the cap, whatever the attempt count", () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 10, 1000].map((n) => backoffMs(n, 1, baseMs, maxMs));
    expect(ceilings).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
  });

  it("jitters within the upper half, so instances that lost one server do not return in lockstep", () => {
    expect(backoffMs(3, 0, baseMs, maxMs)).toBe(1000);
    expect(backoffMs(3, 0.5, baseMs, maxMs)).toBe(1500);
    expect(backoffMs(3, 1, baseMs, maxMs)).toBe(2000);
    expect(backoffMs(-1, 7, baseMs, maxMs)).toBe(250); // out-of-range inputs are clamped
  });

  it("bounds the pool's delay (postgres.js counts failed attempts from 1, in seconds) at 2 s", () => {
    for (const retries of [1, 2, 5, 50]) {
      const s = poolBackoffSeconds(retries);
      expect(s).toBeGreaterThanOrEqual(Math.min(2, 0.05 * 2 ** (retries - 1)) / 2);
      expect(s).toBeLessThanOrEqual(2);
    }
  });
});
