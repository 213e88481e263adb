import { z } from "zod";

// A deployment's resilience settings as stored (deployment_traffic.resilience); validated again by the renderer.

export const StoredResilience = z.strictObject({
  retry: z.unknown().optional(),
  circuit_breaker: z.unknown().optional(),
  max_in_flight: z.unknown().optional(),
  timeouts: z.unknown().optional(),
  passive_health: z.unknown().optional(),
});
export type StoredResilience = z.infer<typeof StoredResilience>;
