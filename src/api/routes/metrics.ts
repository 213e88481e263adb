import { createRoute, z } from "@hono/zod-openapi";
import { requireBearer } from "../auth.js";
import { contracts, METRICS, problems } from "../contract.js";
import type { Deps } from "../deps.js";

const getMetrics = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "getMetrics",
  summary: "Prometheus metrics: renders, Traefik polls, API requests, health probes, the fallback proxy, process",
  description:
    "Open unless METRICS_TOKEN is set; then `Authorization: Bearer <METRICS_TOKEN>` (never the admin token).",
  security: METRICS,
  responses: {
    200: {
      description: "Prometheus text exposition format 0.0.4 (metric names in the README's Monitoring section)",
      content: { "text/plain": { schema: z.string() } },
    },
    ...problems(401),
  },
});

/** `/metrics`, open unless METRICS_TOKEN is set (it carries no secrets); scrapes are counted, logged at debug. */
export function metricsApi({ config, metrics }: Deps) {
  const app = contracts();
  app.use(
    "/metrics",
    requireBearer("metrics", config.METRICS_TOKEN, () => config.METRICS_TOKEN.length > 0),
  );
  return app.openapi(getMetrics, async (c) =>
    c.text(await metrics.text(), 200, { "content-type": metrics.contentType, "cache-control": "no-store" }),
  );
}
