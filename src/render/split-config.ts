import { z } from "zod";
import { HeaderName } from "./middlewares.js";

// A deployment's traffic split as stored (deployment_traffic.split): the API validates input into this shape; the
// renderer validates it again before it reaches Traefik (rows can be edited by hand). Every string here ends up in a
// router rule between backticks (or, for cookies, inside a Go regexp), so each has a strict character set: no
// backticks, quotes, spaces, `{{`/`}}`, `\` or regexp metacharacters other than `.` (escaped where it is used).

/** A replica pool label: `stable`, `canary`, `v2`, … (same form as deployment_locations.track). */
export const TrackName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "lower-case letters, digits and '-' (≤ 32)");

export const STABLE_TRACK = "stable";

/** At most this many A/B rules: each becomes a router ranked 1…7 above the route's own (src/render/rules.ts). */
export const MAX_SPLIT_RULES = 5;

/** Cookie and query parameter names: an RFC 6265 token subset that is also safe in a rule and a regexp. */
export const MatchName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, '_', '.' and '-' only (≤ 64)");

/** The value a header, cookie or query parameter must equal: no quotes, spaces, backticks or braces. */
export const MatchValue = z
  .string()
  .regex(/^[A-Za-z0-9_.~-]{1,128}$/, "letters, digits, '_', '.', '~' and '-' only (1–128)");

export const SplitMatch = z
  .strictObject({
    header: HeaderName.optional().meta({
      description: "Request header name (exact value match).",
      example: "X-Variant",
    }),
    cookie: MatchName.optional().meta({ description: "Cookie name (exact value match).", example: "ab" }),
    query: MatchName.optional().meta({ description: "Query parameter name (exact value match).", example: "variant" }),
    value: MatchValue.meta({ example: "b" }),
  })
  .superRefine((m, ctx) => {
    const set = [m.header, m.cookie, m.query].filter((x) => x !== undefined).length;
    if (set !== 1) {
      ctx.addIssue({ code: "custom", message: "set exactly one of header, cookie, query" });
    }
  });
export type SplitMatch = z.infer<typeof SplitMatch>;

export const SplitRule = z.strictObject({
  match: SplitMatch,
  track: TrackName.meta({ description: "The track a matching request goes to.", example: "canary" }),
});
export type SplitRule = z.infer<typeof SplitRule>;

export const StickyCookieName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "letters, digits, '_' and '-' only (≤ 64)");

export const StoredSticky = z.strictObject({
  /** Unset: Traefik derives one from the service name (`_` + 5 hex digits, pkg/server/cookie/cookie.go). */
  cookie_name: StickyCookieName.optional(),
  /** Unset: true on a TLS route, false on a plain one. */
  secure: z.boolean().optional(),
  /** Unset: true. */
  http_only: z.boolean().optional(),
  /** Unset: `lax`. */
  same_site: z.enum(["none", "lax", "strict"]).optional(),
});
export type StoredSticky = z.infer<typeof StoredSticky>;

export const SplitWeights = z
  // zod reports a bad record key as "Invalid key in record"; surface the key schema's own reason instead.
  .record(TrackName, z.number().int("an integer").min(0).max(1000), {
    error: (iss) => (iss.code === "invalid_key" ? iss.issues[0]?.message : undefined),
  })
  .refine((w) => Object.keys(w).length <= 16, "at most 16 tracks")
  .refine((w) => Object.values(w).some((n) => n > 0), "at least one track needs a weight above 0");

export const StoredMirror = z.strictObject({
  track: TrackName,
  percent: z.number().int("an integer").min(1).max(100),
});

export const StoredSplit = z.strictObject({
  /**
   * Track → relative weight (a plain record: the rollout worker rewrites one track's weight). A track without a
   * healthy replica drops out; its share goes to the others.
   */
  weights: SplitWeights,
  /** Sticky sessions: Traefik's cookie pins a client to the track it got first (value derived from the child name). */
  sticky: StoredSticky.optional(),
  /** A/B by request: the first rule a request matches sends it to that rule's track. */
  rules: z.array(SplitRule).max(MAX_SPLIT_RULES, `at most ${MAX_SPLIT_RULES} rules`).optional(),
  /** Shadow traffic: a copy of `percent` % of requests goes to `track` (responses discarded). */
  mirror: StoredMirror.optional(),
});
export type StoredSplit = z.infer<typeof StoredSplit>;
