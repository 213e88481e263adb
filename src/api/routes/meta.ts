import { swaggerUI } from "@hono/swagger-ui";
import { createRoute, z } from "@hono/zod-openapi";
import { contracts, json } from "../contract.js";
import type { AppEnv, Deps } from "../deps.js";
import { HealthzView, IndexView, ReadyzView } from "../schemas.js";

// The service's own endpoints, open without a token: an index, the API reference, liveness and readiness.

const index = createRoute({
  method: "get",
  path: "/",
  operationId: "getIndex",
  summary: "What this service is, and where to look next",
  responses: { 200: json(IndexView, "Name, version and links") },
});

const openapi = createRoute({
  method: "get",
  path: "/openapi.json",
  operationId: "getOpenApi",
  summary: "This document (OpenAPI 3.1), generated from the route contracts",
  responses: { 200: json(z.looseObject({ openapi: z.string() }), "The OpenAPI document") },
});

const docs = createRoute({
  method: "get",
  path: "/docs",
  operationId: "getDocs",
  summary: "Browsable reference of /openapi.json (Swagger UI)",
  responses: { 200: { description: "An HTML page", content: { "text/html": { schema: z.string() } } } },
});

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "getHealthz",
  summary: "Liveness: the process answers",
  responses: { 200: json(HealthzView, "Alive") },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  operationId: "getReadyz",
  summary: "Readiness: a config has been rendered and the database is being read",
  responses: {
    200: json(ReadyzView, "Ready"),
    503: json(ReadyzView, "Not ready: no config rendered yet, or the database cannot be read (stale)"),
  },
});

/** `/`, `/docs`, `/openapi.json`, `/healthz`, `/readyz`; `document` is the app's OpenAPI document. */
export function metaApi({ cache, version }: Deps, document: () => object) {
  const ui = swaggerUI<AppEnv>({ url: "/openapi.json", title: "obiente-router API" });
  return contracts()
    .openapi(index, (c) =>
      c.json(
        {
          name: "obiente-router",
          version,
          description: "Routing control plane for Traefik.",
          links: {
            docs: "/docs",
            openapi: "/openapi.json",
            traefik_config: "/traefik/config",
            healthz: "/healthz",
            readyz: "/readyz",
            api: "/api/v1",
          },
        },
        200,
      ),
    )
    .openapi(openapi, (c) => c.json(document() as { openapi: string }, 200))
    .openapi(docs, async (c, next) => (await ui(c, next)) ?? c.notFound())
    .openapi(healthz, (c) => c.json({ status: "ok" as const }, 200))
    .openapi(readyz, (c) => {
      const cfg = cache.current();
      const ready = cfg !== undefined && !cache.stale;
      const body = {
        status: ready ? ("ready" as const) : ("not-ready" as const),
        stale: cache.stale,
        revision: cfg?.revision ?? null,
      };
      return ready ? c.json(body, 200) : c.json(body, 503);
    });
}
