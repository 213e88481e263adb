import { z } from "zod";
import { CB_EXPRESSION_MAX_LENGTH, CbExpressionError, parseCbExpression } from "./cb-expression.js";

// A deployment's resilience settings as stored (deployment_traffic.resilience). The API parses its body with this
// same schema and stores the output (expression in normal form, defaults filled in); the renderer parses the row
// again (rows can be edited by hand) and fails the deployment's routes closed when it does not validate.

const ms = (max: number, description: string) => z.number().int().min(1).max(max).meta({ description });

/** A status code or an inclusive range, as Traefik's types.NewHTTPCodeRanges reads it ("502", "500-599"). */
const StatusRange = z
  .string()
  .regex(/^[1-5][0-9]{2}(-[1-5][0-9]{2})?$/, 'a status code or range such as "503" or "500-599"')
  .refine((s) => {
    const [lo, hi = lo] = s.split("-").map(Number) as [number, number?];
    return lo <= hi;
  }, "a range goes from low to high");

/** Parsed and normalized against Traefik's grammar (src/render/cb-expression.ts); errors name the column. */
const Expression = z
  .string()
  .max(CB_EXPRESSION_MAX_LENGTH)
  .transform((s, ctx) => {
    try {
      return parseCbExpression(s);
    } catch (err) {
      if (!(err instanceof CbExpressionError)) {
        throw err;
      }
      ctx.addIssue({ code: "custom", message: err.message });
      return z.NEVER;
    }
  })
  .meta({
    description:
      "When to open the breaker, in Traefik's (oxy) grammar: `NetworkErrorRatio()` and " +
      "`ResponseCodeRatio(a, b, c, d)` (codes in [a, b) over codes in [c, d)) compare with a decimal " +
      "(`> 0.5`); `LatencyAtQuantileMS(50.0)` (a decimal percentile) compares with whole milliseconds (`> 100`). " +
      "Comparisons `== != < <= > >=` with the number on the right, joined by `&&` and `||`, parentheses; no `!` " +
      "and no negative numbers. Stored and rendered in normal form.",
    example: "NetworkErrorRatio() > 0.3 || ResponseCodeRatio(500, 600, 0, 600) > 0.25",
  });

export const RetrySettings = z.strictObject({
  attempts: z.number().int().min(1).max(10).meta({ description: "Tries per request, the first one included." }),
  initial_interval_ms: z.number().int().min(0).max(60_000).optional().meta({
    description: "First wait of the exponential backoff (Traefik doubles it at most once); omitted: retry at once.",
  }),
  status: z
    .array(StatusRange)
    .min(1)
    .max(20)
    .optional()
    .meta({
      description:
        "TRAEFIK_VERSION=3.7 only: also retry idempotent requests (not POST, PATCH, LOCK) answered with these codes " +
        "(bodies up to 2 MiB are buffered to replay them). Without it only network errors are retried.",
    }),
  timeout_ms: ms(3_600_000, "TRAEFIK_VERSION=3.7 only: no new attempt after this long since the first one.").optional(),
});
export type RetrySettings = z.infer<typeof RetrySettings>;

export const CircuitBreakerSettings = z.strictObject({
  expression: Expression,
  check_period_ms: ms(60_000, "How often the expression is evaluated (Traefik's default: 100 ms).").optional(),
  fallback_duration_ms: ms(3_600_000, "How long the breaker stays open (default: 10 s).").optional(),
  recovery_duration_ms: ms(3_600_000, "How long it lets traffic back in gradually (default: 10 s).").optional(),
  response_code: z
    .number()
    .int()
    .min(200)
    .max(599)
    .optional()
    .meta({ description: "Status answered while open (default: 503)." }),
});
export type CircuitBreakerSettings = z.infer<typeof CircuitBreakerSettings>;

export const MaxInFlightSettings = z
  .strictObject({
    amount: z.number().int().min(1).max(1_000_000).meta({ description: "Requests in progress at once; more get 429." }),
    per: z
      .enum(["client_ip", "host"])
      .default("host")
      .meta({ description: "Count per client IP address or per requested host (the default, as in Traefik)." }),
    ip_depth: z
      .number()
      .int()
      .min(1)
      .max(10)
      .optional()
      .meta({
        description:
          "With per: client_ip, take the client IP from X-Forwarded-For, this many entries from the right. Needs " +
          "TRUSTED_PROXY_CIDRS (and Traefik's forwardedHeaders.trustedIPs); omitted: the connecting peer's address.",
      }),
  })
  .refine((m) => m.ip_depth === undefined || m.per === "client_ip", {
    message: "ip_depth applies to per: client_ip only",
    path: ["ip_depth"],
  });
export type MaxInFlightSettings = z.infer<typeof MaxInFlightSettings>;

export const TimeoutSettings = z
  .strictObject({
    dial_ms: ms(300_000, "Connecting to a replica (Traefik's default: 30 s).").optional(),
    response_header_ms: ms(3_600_000, "From the request sent to the response headers (default: none).").optional(),
    idle_conn_ms: ms(3_600_000, "Keep-alive connections idle this long are closed (default: 90 s).").optional(),
  })
  .refine((t) => Object.keys(t).length > 0, "give at least one of dial_ms, response_header_ms, idle_conn_ms");
export type TimeoutSettings = z.infer<typeof TimeoutSettings>;

export const PassiveHealthSettings = z.strictObject({
  failure_window_seconds: z.number().int().min(1).max(3600).default(10).meta({
    description: "Failures count within this window; a server that reaches the limit is left out for as long.",
  }),
  max_failed_attempts: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(1)
    .meta({
      description:
        "Consecutive failed requests to one server (no connection, or a 5xx answer) within the window that take it " +
        "out of the pool (for the window; with TRAEFIK_HEALTHCHECK, until Traefik's active check sees it up).",
    }),
});
export type PassiveHealthSettings = z.infer<typeof PassiveHealthSettings>;

/** Every part optional; the API refuses a body with none (DELETE clears the settings). */
export const StoredResilience = z.strictObject({
  retry: RetrySettings.optional(),
  circuit_breaker: CircuitBreakerSettings.optional(),
  max_in_flight: MaxInFlightSettings.optional(),
  timeouts: TimeoutSettings.optional(),
  passive_health: PassiveHealthSettings.optional(),
});
export type StoredResilience = z.infer<typeof StoredResilience>;

/** The 3.7-only retry fields that are set (their paths), for the version gate of the API and the renderer. */
export function retryFieldsNeeding37(cfg: StoredResilience): string[] {
  const r = cfg.retry;
  return r ? (["status", "timeout_ms"] as const).filter((k) => r[k] !== undefined).map((k) => `retry.${k}`) : [];
}
