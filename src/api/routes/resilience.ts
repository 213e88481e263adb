import { createRoute, z } from "@hono/zod-openapi";
import { getDeployment } from "../../db/repo/deployments.js";
import { getTraffic, setTrafficPart } from "../../db/repo/traffic.js";
import { FULL_CHAIN_ORDER, IP_DEPTH_NEEDS_TRUSTED_PROXIES } from "../../render/middlewares.js";
import { retryFieldsNeeding37, StoredResilience } from "../../render/resilience-config.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import type { FieldError } from "../problem.js";
import { DeploymentParams } from "../schemas.js";
import { invalid } from "../validate.js";

// Resilience of one deployment: `PUT/GET/DELETE /{id}/resilience` (stored in deployment_traffic.resilience,
// rendered by src/render/resilience.ts: retry, circuitBreaker and inFlightReq middlewares, forwarding timeouts on
// the deployment's servers transport, passive health on its load balancers).

const EXAMPLE = {
  retry: { attempts: 3, initial_interval_ms: 100 },
  circuit_breaker: {
    expression: "NetworkErrorRatio() > 0.3 || ResponseCodeRatio(500, 600, 0, 600) > 0.25",
    fallback_duration_ms: 10_000,
  },
  max_in_flight: { amount: 100, per: "client_ip" },
  timeouts: { dial_ms: 5000, response_header_ms: 30_000 },
  passive_health: { failure_window_seconds: 10, max_failed_attempts: 3 },
};

const PARTS = ["retry", "circuit_breaker", "max_in_flight", "timeouts", "passive_health"] as const;

const ResilienceBody = StoredResilience.refine((b) => PARTS.some((k) => b[k] !== undefined), {
  message: `give at least one of ${PARTS.join(", ")} (DELETE removes the settings)`,
}).meta({
  description: "Replaces the deployment's resilience settings; every part is optional, at least one is required.",
  example: EXAMPLE,
});

const ResilienceView = z
  .looseObject({
    chain_order: z.array(z.string()).meta({
      description: "Where each middleware sits in a route's chain, first = outermost (only those configured apply).",
    }),
  })
  .meta({ example: { ...EXAMPLE, chain_order: [...FULL_CHAIN_ORDER] } });

const VERSION_NOTE =
  "`retry.status` and `retry.timeout_ms` need TRAEFIK_VERSION=3.7 (Traefik 3.6 rejects a configuration that has " +
  "them): otherwise 400.";

const get = createRoute({
  method: "get",
  path: "/{id}/resilience",
  summary: "Resilience settings (retry, circuit breaker, in-flight limit, timeouts, passive health)",
  description: "Settings as stored (normalized), or only `chain_order` when none are set.",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(ResilienceView, "Settings"), ...problems(400, 401, 404) },
});

const put = createRoute({
  method: "put",
  path: "/{id}/resilience",
  summary: "Replace resilience settings",
  description:
    "Renders `<dep>--in-flight` (inFlightReq), `<dep>--circuit-breaker` (circuitBreaker) and `<dep>--retry` " +
    "(retry) middlewares into every route's chain (see `chain_order`), `forwardingTimeouts` on the deployment's " +
    "servers transport and `passiveHealthCheck` on its load balancers (not for `least-conn` routes, which the " +
    "fallback proxy balances). The circuit-breaker expression is parsed against Traefik's grammar; an error names " +
    `its column. ${VERSION_NOTE}`,
  security: WRITE,
  request: { params: DeploymentParams, body: jsonBody(ResilienceBody) },
  responses: { 200: json(ResilienceView, "Settings after the change"), ...problems(...BODY_PROBLEMS, 404) },
});

const remove = createRoute({
  method: "delete",
  path: "/{id}/resilience",
  summary: "Remove resilience settings",
  security: WRITE,
  request: { params: DeploymentParams },
  responses: { 204: { description: "Removed (also when none were set)" }, ...problems(400, 401, 404) },
});

const view = (stored: StoredResilience) => ({ ...stored, chain_order: [...FULL_CHAIN_ORDER] });

/** Checks that need the app's settings: the Traefik version gate and ip_depth's trusted proxies. */
function checkAgainstConfig(body: StoredResilience, v37: boolean, trustsProxies: boolean): void {
  const errors: FieldError[] = [];
  if (!v37) {
    for (const field of retryFieldsNeeding37(body)) {
      errors.push({
        location: `body.${field}`,
        message:
          "needs Traefik ≥ 3.7 (set TRAEFIK_VERSION=3.7 once every Traefik instance runs 3.7; 3.6 rejects the " +
          "whole configuration when it sees this field)",
      });
    }
  }
  if (body.max_in_flight?.ip_depth !== undefined && !trustsProxies) {
    errors.push({ location: "body.max_in_flight.ip_depth", message: IP_DEPTH_NEEDS_TRUSTED_PROXIES });
  }
  if (errors.length > 0) {
    throw invalid(errors);
  }
}

export function resilienceApi({ handle: { db }, config }: Deps) {
  const v37 = config.TRAEFIK_VERSION === "3.7";
  const trustsProxies = config.TRUSTED_PROXY_CIDRS.length > 0;
  return contracts()
    .openapi(get, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      const raw = (await getTraffic(db, id)).resilience;
      // Never trust a stored row: one that no longer validates is shown as not set (the renderer skips the
      // deployment's routes with a warning until it is replaced or deleted).
      const stored = raw === null ? undefined : StoredResilience.safeParse(raw);
      return c.json(view(stored?.success ? stored.data : {}), 200);
    })
    .openapi(put, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      checkAgainstConfig(body, v37, trustsProxies);
      await getDeployment(db, id);
      await setTrafficPart(db, id, "resilience", body as Record<string, unknown>);
      return c.json(view(body), 200);
    })
    .openapi(remove, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      await setTrafficPart(db, id, "resilience", null);
      return c.body(null, 204);
    });
}
