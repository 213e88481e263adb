import { randomBytes } from "node:crypto";
import { getConnInfo } from "@hono/node-server/conninfo";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { matchedRoutes, routePath } from "hono/route";
import { isDatabaseUnavailable } from "../db/errors.js";
import { requestScoped } from "../db/request-tx.js";
import { methodLabel } from "../lib/metrics.js";
import { withRequestContext } from "../lib/request-context.js";
import type { ChangeScope } from "../provider/config-cache.js";
import { consoleApp } from "../ui/console.js";
import { auditWrites } from "./audit.js";
import { contracts, SECURITY_SCHEMES } from "./contract.js";
import type { AppEnv, Deps } from "./deps.js";
import { domainProblem } from "./domain-problem.js";
import { answerOtherMethods, openApiDocument } from "./openapi.js";
import { databaseUnavailableProblem, HttpProblem, notFoundProblem, problem, problemResponse } from "./problem.js";
import { auditApi } from "./routes/audit.js";
import { certificatesApi } from "./routes/certificates.js";
import { deploymentsApi } from "./routes/deployments.js";
import { eventsApi } from "./routes/events.js";
import { geoApi } from "./routes/geo.js";
import { healthApi } from "./routes/health.js";
import { labelsApi } from "./routes/labels.js";
import { locationsApi } from "./routes/locations.js";
import { metaApi } from "./routes/meta.js";
import { metricsApi } from "./routes/metrics.js";
import { middlewaresApi } from "./routes/middlewares.js";
import { previewApi } from "./routes/preview.js";
import { resilienceApi } from "./routes/resilience.js";
import { revisionsApi } from "./routes/revisions.js";
import { rolloutApi } from "./routes/rollouts.js";
import { routingApi } from "./routes/routing.js";
import { routingConfigApi } from "./routes/routing-config.js";
import { splitApi } from "./routes/split.js";
import { stateApi } from "./routes/state.js";
import { statsApi } from "./routes/stats.js";
import { tokensApi } from "./routes/tokens.js";
import { traefikApi } from "./routes/traefik.js";
import { webhooksApi } from "./routes/webhooks.js";
import { authenticator, requireScope, scopeTable } from "./scopes.js";

export type { AppEnv, Deps } from "./deps.js";

const NODE_HEADER_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** `X-Traefik-Node` when it is a sane name, else the peer address. */
export function defaultNodeOf(c: Context): string {
  const named = c.req.header("x-traefik-node");
  if (named && NODE_HEADER_RE.test(named)) {
    return named;
  }
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown"; // app.request() in tests has no socket
  }
}

const READS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Polled endpoints: logged at debug (Traefik's polls, probes of the service, scrapes); metrics count them. */
const QUIET_ROUTES = new Set(["/traefik/config", "/healthz", "/readyz", "/metrics"]);

/** The route template that answered (`/api/v1/deployments/:id/routing`), never the path; `unmatched` for a 404. */
export function routeLabel(c: Context): string {
  // The last handler that is not a middleware (method ALL on a wildcard path, possibly registered after the route);
  // none: no route has this path.
  const route = matchedRoutes(c).findLast((r) => !(r.method === "ALL" && r.path.endsWith("*")));
  return route ? route.path : "unmatched";
}

/** Body limit of the declarative-state endpoints (a whole platform's routing); every other body: 1 MiB. */
export const STATE_BODY_LIMIT_MIB = 64;

function limitBody(mib: number) {
  return bodyLimit({
    maxSize: mib * 1024 * 1024,
    onError: () => {
      // The unread body leaves the connection unusable (the server drops it shortly after); say so, so a
      // keep-alive client does not send its next request down it (RFC 9110 §15.5.14).
      throw new HttpProblem(
        problem("BODY_TOO_LARGE", `Request bodies are limited to ${mib} MiB.`, { headers: { Connection: "close" } }),
      );
    },
  });
}

/** Builds the HTTP app; no side effects at import or construction. */
/**
 * What an API write can have changed in the rendered config: a deployment's own resources re-render that deployment
 * only; certificates (they change routers' TLS everywhere) and a whole-state apply re-read everything; every other
 * write (tokens, webhooks, the freeze, a new empty deployment) changes no rendered row, so what is served is only
 * decided again. The change feed names the same deployments a moment later, for every other instance.
 */
export function writeScope(path: string): ChangeScope {
  const m = /^\/api\/v1\/deployments\/([^/]+)/.exec(path);
  if (m) {
    try {
      return { deployments: [decodeURIComponent(m[1] as string)] };
    } catch {
      return "all";
    }
  }
  return path.startsWith("/api/v1/certificates") || path.startsWith("/api/v1/state/") ? "all" : "control";
}

export function createApp(plainDeps: Deps): OpenAPIHono<AppEnv> {
  const { logger, cache, metrics, config, clock } = plainDeps;
  // Route handlers get a request-scoped handle: during a write its db is the request's transaction (auditWrites).
  const deps: Deps = { ...plainDeps, handle: requestScoped(plainDeps.handle) };
  const auth = authenticator(
    plainDeps.handle.db,
    { admin: config.ADMIN_TOKEN, provider: config.PROVIDER_TOKEN },
    clock,
    logger,
  );
  const app = contracts();

  // One line and one observation per request. Every line logged while it is handled carries its requestId (the
  // logger's mixin reads the request context), with no logger passed down.
  app.use(async (c, next) => {
    const inbound = c.req.header("x-request-id");
    const requestId =
      inbound && /^[A-Za-z0-9._-]{1,64}$/.test(inbound) ? inbound : `req_${randomBytes(6).toString("hex")}`;
    c.set("requestId", requestId);
    const started = performance.now();
    await withRequestContext({ requestId }, next);
    c.res.headers.set("x-request-id", requestId);
    const seconds = (performance.now() - started) / 1000;
    const method = methodLabel(c.req.method);
    const route = routeLabel(c);
    metrics.httpRequests.inc({ method, route, status: String(c.res.status) });
    metrics.httpDuration.observe({ method, route }, seconds);
    const fields = {
      requestId,
      method: c.req.method,
      path: c.req.path, // path only: query strings may carry values we do not want in logs
      route,
      status: c.res.status,
      durationMs: Math.round(seconds * 10_000) / 10,
    };
    if (QUIET_ROUTES.has(route)) {
      logger.debug("request", fields);
    } else {
      logger.info("request", fields);
    }
  });

  let document: ReturnType<typeof openApiDocument> | undefined;
  app.route(
    "/",
    metaApi(deps, () => (document ??= openApiDocument(app, deps.version))),
  );
  app.route("/", metricsApi(deps));
  app.route("/traefik", traefikApi(deps, auth));
  app.route(
    "/ui",
    consoleApp({
      auth,
      certKey: deps.certKey,
      clock,
      request: async (path, init, env) => app.request(path, init, env as never),
    }),
  );

  const api = contracts();
  let scopes: ReturnType<typeof scopeTable> | undefined;
  api.use(requireScope(auth, () => (scopes ??= scopeTable(app.openAPIRegistry))));
  // A whole routing state (POST /state/diff, /state/apply, a preview of one) is far larger than any single resource's body.
  const stateLimit = limitBody(STATE_BODY_LIMIT_MIB);
  const otherLimit = limitBody(1);
  const wholeState = (path: string) => path.startsWith("/api/v1/state/") || path === "/api/v1/routing/preview";
  api.use((c, next) => (wholeState(c.req.path) ? stateLimit : otherLimit)(c, next));
  // The one place API writes invalidate the served config (the NOTIFY feed does it for other instances and hand
  // SQL): after every write that succeeded, unless its handler knew the rendered state did not move.
  api.use(async (c, next) => {
    await next();
    if (!READS.has(c.req.method) && c.res.status < 400 && !c.get("configUnchanged")) {
      const actor = c.get("actor");
      // The route template, never the path: ids are data, and the template says which endpoint wrote.
      const template = routePath(c, -1);
      const cause = template.endsWith("/state/apply") ? "apply" : "api";
      cache.invalidate(
        { cause, ...(actor ? { actor } : {}), detail: `${c.req.method} ${template}` },
        writeScope(c.req.path),
      );
    }
  });
  // Inside the invalidation: the served config is re-rendered only once the write and its audit row committed.
  api.use(auditWrites(deps.handle));
  api.route("/deployments", deploymentsApi(deps));
  api.route("/deployments", routingApi(deps));
  api.route("/deployments", locationsApi(deps));
  api.route("/deployments", healthApi(deps));
  api.route("/deployments", middlewaresApi(deps));
  api.route("/deployments", labelsApi(deps));
  api.route("/deployments", splitApi(deps));
  api.route("/deployments", geoApi(deps));
  api.route("/deployments", resilienceApi(deps));
  api.route("/deployments", rolloutApi(deps));
  api.route("/certificates", certificatesApi(deps));
  api.route("/routing", statsApi(deps));
  api.route("/routing", previewApi(deps));
  api.route("/routing", revisionsApi(deps));
  api.route("/state", stateApi(deps));
  api.route("/tokens", tokensApi(deps));
  api.route("/audit", auditApi(deps));
  api.route("/routing", routingConfigApi(deps));
  api.route("/events", eventsApi(deps));
  api.route("/webhooks", webhooksApi(deps));
  app.route("/api/v1", api);

  for (const [name, scheme] of Object.entries(SECURITY_SCHEMES)) {
    app.openAPIRegistry.registerComponent("securitySchemes", name, scheme);
  }
  answerOtherMethods(app); // after every contract: 405 with the Allow list the contracts give

  app.notFound((c) => problemResponse(c, notFoundProblem));
  app.onError((err, c) => {
    const known = domainProblem(err);
    if (known) {
      return problemResponse(c, known);
    }
    if (isDatabaseUnavailable(err)) {
      // The served config can no longer be trusted to be current: /readyz and X-Config-Stale say so until the
      // change feed reads the database again.
      cache.markStale("database unavailable");
      logger.warn("database unavailable", { requestId: c.get("requestId"), err });
      return problemResponse(c, databaseUnavailableProblem);
    }
    // The logger reduces `err` to safe fields (never a database error's message: it carries query parameters).
    logger.error("unhandled error", { requestId: c.get("requestId"), err });
    return problemResponse(
      c,
      problem("INTERNAL", "The request failed on our side; quote the requestId when reporting it."),
    );
  });
  return app;
}
