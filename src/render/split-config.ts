import { z } from "zod";

// A deployment's traffic split as stored (deployment_traffic.split): the API validates input into this shape; the
// renderer validates it again before it reaches Traefik (rows can be edited by hand).

/** A replica pool label: `stable`, `canary`, `v2`, … (same form as deployment_locations.track). */
export const TrackName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "lower-case letters, digits and '-' (≤ 32)");

export const STABLE_TRACK = "stable";

export const StoredSplit = z.strictObject({
  /** Track → relative weight. A track without a healthy replica drops out; its share goes to the others. */
  weights: z.record(TrackName, z.number().int().min(0).max(1000)),
  /** Sticky sessions: Traefik's cookie pins a client to the track (and server) it got first. */
  sticky: z
    .strictObject({
      cookie_name: z.string().optional(),
      secure: z.boolean().optional(),
      http_only: z.boolean().optional(),
      same_site: z.enum(["none", "lax", "strict"]).optional(),
    })
    .optional(),
  /** A/B by request: the first rule a request matches sends it to that rule's track. */
  rules: z.array(z.unknown()).optional(),
  /** Shadow traffic: a copy of `percent` % of requests goes to `track` (responses discarded). */
  mirror: z.strictObject({ track: TrackName, percent: z.number().int().min(1).max(100) }).optional(),
});
export type StoredSplit = z.infer<typeof StoredSplit>;
