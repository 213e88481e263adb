import { randomBytes } from "node:crypto";
import { getConnInfo } from "@hono/node-server/conninfo";
import { type Context, Hono } from "hono";
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { ConfigCache } from "../provider/config-cache.js";
import type { PollTracker } from "../provider/pollers.js";
import { HttpProblem, notFoundProblem, problemResponse } from "./problem.js";
import { traefikApi } from "./routes/traefik.js";

export interface Deps {
  config: Config;
  handle: DbHandle;
  cache: ConfigCache;
  pollers: PollTracker;
  clock: Clock;
  logger: Logger;
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
  app.route("/traefik", traefikApi(deps));
  allowOnly(app, ["/traefik/config", "/healthz", "/readyz"], ["GET", "HEAD"]);

  app.notFound((c) => problemResponse(c, notFoundProblem));
  app.onError((err, c) => {
    if (err instanceof HttpProblem) {
      return problemResponse(c, err.init);
    }
    logger.error("unhandled error", { requestId: c.get("requestId"), err, stack: err.stack });
    return problemResponse(c, {
      status: 500,
      code: "INTERNAL",
      title: "Internal Server Error",
      detail: "The request failed on our side; quote the requestId when reporting it.",
    });
  });
  return app;
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
