import { describe, expect, it } from "vitest";
import { servingStatusOf } from "../../src/health/probe-h2.js";

// grpc.health.v1.HealthCheckResponse { ServingStatus status = 1; } as the wire carries it.
describe("gRPC health response decoding", () => {
  it("reads the status field: SERVING, NOT_SERVING, and the proto3 default UNKNOWN for an empty message", () => {
    expect(servingStatusOf(Buffer.from([0x08, 0x01]))).toBe(1);
    expect(servingStatusOf(Buffer.from([0x08, 0x02]))).toBe(2);
    expect(servingStatusOf(Buffer.alloc(0))).toBe(0);
  });

  it("skips fields it does not know, of every wire type", () => {
    const unknown = [0x12, 0x02, 0x61, 0x62, 0x18, 0x96, 0x01, 0x25, 0, 0, 0, 0, 0x29, 0, 0, 0, 0, 0, 0, 0, 0];
    expect(servingStatusOf(Buffer.from([...unknown, 0x08, 0x01]))).toBe(1);
  });

  it("refuses a truncated message instead of guessing", () => {
    expect(() => servingStatusOf(Buffer.from([0x08]))).toThrow(/truncated/);
  });
});
