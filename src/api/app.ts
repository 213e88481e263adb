import { randomBytes } from "node:crypto";
import { getConnInfo } from "@hono/node-server/conninfo";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import { Conflict, Invalid, isDatabaseUnavailable, NotFound } from "../db/errors.js";
import type { HealthChecker } from "../health/checker.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { ConfigCache } from "../provider/config-cache.js";
import type { PollTracker } from "../provider/pollers.js";
import { requireBearer } from "./auth.js";
import { openApiDocument } from "./openapi.js";
import {
  databaseUnavailableProblem,
  HttpProblem,
  notFoundProblem,
  type ProblemInit,
  problemResponse,
} from "./problem.js";
import { certificatesApi } from "./routes/certificates.js";
import { deploymentsApi } from "./routes/deployments.js";
import { healthApi } from "./routes/health.js";
import { locationsApi } from "./routes/locations.js";
import { middlewaresApi } from "./routes/middlewares.js";
import { routingApi } from "./routes/routing.js";
import { statsApi } from "./routes/stats.js";
import { traefikApi } from "./routes/traefik.js";

export interface Deps {
  config: Config;
  handle: DbHandle;
  cache: ConfigCache;
  pollers: PollTracker;
  /** Active health checker: probes a replica at once when it is registered or moves. */
  checker?: HealthChecker;
  clock: Clock;
  logger: Logger;
  version: string;
  /** AES-256 key for uploaded private keys. */
  certKey: Buffer;
  /** Names the Traefik instance behind a request (header or remote address). */
  nodeOf: (c: Context) => string;
}

export type AppEnv = { Variables: { requestId: string } };

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

/** Builds the HTTP app; no side effects at import or construction. */
export function createApp(deps: Deps): Hono<AppEnv> {
  const { logger } = deps;
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const inbound = c.req.header("x-request-id");
    const requestId =
      inbound && /^[A-Za-z0-9._-]{1,64}$/.test(inbound) ? inbound : `req_${randomBytes(6).toString("hex")}`;
    c.set("requestId", requestId);
    const started = performance.now();
    await next();
    c.res.headers.set("x-request-id", requestId);
    logger.info("request", {
      requestId,
      method: c.req.method,
      path: c.req.path, // path only: query strings may carry values we do not want in logs
      status: c.res.status,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
    });
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) => {
    const cfg = deps.cache.current();
    const ready = cfg !== undefined && !deps.cache.stale;
    return c.json(
      { status: ready ? "ready" : "not-ready", stale: deps.cache.stale, revision: cfg?.revision ?? null },
      ready ? 200 : 503,
    );
  });
  app.get("/openapi.json", (c) => c.json(openApiDocument(deps.version)));
  app.route("/traefik", traefikApi(deps));

  const api = new Hono<AppEnv>();
  api.use(requireBearer("admin-api", deps.config.ADMIN_TOKEN));
  api.use(
    bodyLimit({
      maxSize: 1024 * 1024,
      onError: () => {
        throw new HttpProblem({
          status: 413,
          code: "BODY_TOO_LARGE",
          title: "Payload Too Large",
          detail: "Request bodies are limited to 1 MiB.",
          // The unread body leaves the connection unusable (the server drops it shortly after); say so, so a
          // keep-alive client does not send its next request down it (RFC 9110 §15.5.14).
          headers: { Connection: "close" },
        });
      },
    }),
  );
  api.route("/deployments", deploymentsApi(deps));
  api.route("/deployments", routingApi(deps));
  api.route("/deployments", locationsApi(deps));
  api.route("/deployments", healthApi(deps));
  api.route("/deployments", middlewaresApi(deps));
  api.route("/certificates", certificatesApi(deps));
  api.route("/routing", statsApi(deps));
  allowOnly(api, ["/deployments"], ["GET", "POST"]);
  allowOnly(api, ["/deployments/:id"], ["GET", "DELETE"]);
  allowOnly(api, ["/deployments/:id/routing"], ["GET", "PUT"]);
  allowOnly(api, ["/deployments/:id/domains"], ["GET", "POST"]);
  allowOnly(api, ["/deployments/:id/domains/:domain"], ["DELETE"]);
  allowOnly(api, ["/deployments/:id/locations"], ["GET"]);
  allowOnly(api, ["/deployments/:id/locations/:location_id"], ["PUT", "DELETE"]);
  allowOnly(api, ["/deployments/:id/health-check", "/deployments/:id/middlewares"], ["GET", "PUT"]);
  allowOnly(api, ["/certificates"], ["GET", "POST"]);
  allowOnly(api, ["/certificates/:id"], ["GET", "DELETE"]);
  allowOnly(api, ["/deployments/:id/locations/:location_id/failures"], ["POST"]);
  allowOnly(api, ["/deployments/:id/locations/:location_id/events"], ["GET"]);
  allowOnly(api, ["/routing/stats", "/routing/resolve"], ["GET", "HEAD"]);
  app.route("/api/v1", api);
  allowOnly(app, ["/traefik/config", "/healthz", "/readyz", "/openapi.json"], ["GET", "HEAD"]);

  app.notFound((c) => problemResponse(c, notFoundProblem));
  app.onError((err, c) => {
    const known = domainProblem(err);
    if (known) {
      return problemResponse(c, known);
    }
    if (isDatabaseUnavailable(err)) {
      // The served config can no longer be trusted to be current: /readyz and X-Config-Stale say so until the
      // change feed reads the database again.
      deps.cache.markStale("database unavailable");
      logger.warn("database unavailable", { requestId: c.get("requestId"), err });
      return problemResponse(c, databaseUnavailableProblem);
    }
    // The logger reduces `err` to safe fields (never a database error's message: it carries query parameters).
    logger.error("unhandled error", { requestId: c.get("requestId"), err });
    return problemResponse(c, {
      status: 500,
      code: "INTERNAL",
      title: "Internal Server Error",
      detail: "The request failed on our side; quote the requestId when reporting it.",
    });
  });
  return app;
}

/** Maps errors that carry meaning for the client; anything else is a 500 with a generic message. */
function domainProblem(err: Error): ProblemInit | undefined {
  if (err instanceof HttpProblem) {
    return err.init;
  }
  if (err instanceof NotFound) {
    const code = `${err.resource.toUpperCase()}_NOT_FOUND`;
    return {
      status: 404,
      code,
      title: `${err.resource[0]?.toUpperCase()}${err.resource.slice(1)} not found`,
      detail: `No ${err.resource} ${err.id}.`,
    };
  }
  if (err instanceof Conflict) {
    return { status: 409, code: err.code, title: "Conflict", detail: err.message, extra: err.details };
  }
  if (err instanceof Invalid) {
    return {
      status: 400,
      code: "VALIDATION_FAILED",
      title: "Invalid request",
      detail: err.message,
      errors: [{ location: err.location, message: err.message }],
    };
  }
  return undefined;
}

/** Registers 405 answers (with `Allow`) for other methods on known paths; call after the real handlers. */
export function allowOnly(app: Hono<AppEnv>, paths: string[], methods: string[]): void {
  for (const path of paths) {
    app.all(path, () => {
      throw new HttpProblem({
        status: 405,
        code: "METHOD_NOT_ALLOWED",
        title: "Method Not Allowed",
        detail: `Use ${methods.join(" or ")} on this path.`,
        headers: { Allow: methods.join(", ") },
      });
    });
  }
}
