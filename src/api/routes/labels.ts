import { createRoute, z } from "@hono/zod-openapi";
import { getDeployment } from "../../db/repo/deployments.js";
import { listRoutes } from "../../db/repo/routing.js";
import { labelsFor } from "../../export/labels.js";
import { composeLabels } from "../../export/labels-compose.js";
import { FRESH_WAIT_MS } from "../../provider/config-cache.js";
import type { TraefikDocument } from "../../render/types.js";
import { contracts, json, problems, READ } from "../contract.js";
import type { Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";
import { DeploymentParams } from "../schemas.js";

const LabelsQuery = z.object({
  format: z
    .enum(["json", "compose"], { error: "must be json or compose" })
    .default("json")
    .meta({ description: "json (default): the label map; compose: a YAML `labels:` list for a compose service." }),
});

const LabelsView = z
  .object({
    deployment_id: z.string(),
    labels: z.record(z.string(), z.string()).meta({
      description: 'Docker labels, sorted by key; `{"traefik.enable": "false"}` when nothing is routed.',
    }),
    not_expressible: z
      .array(z.object({ what: z.string(), why: z.string() }))
      .meta({ description: "What the served config does that these labels cannot, and why." }),
  })
  .meta({ description: "A deployment's Docker labels" });

const getLabels = createRoute({
  method: "get",
  path: "/{id}/labels",
  operationId: "getDeploymentLabels",
  summary: "Traefik Docker/Swarm provider labels equivalent to the deployment's routers, services and middlewares",
  security: READ,
  request: { params: DeploymentParams, query: LabelsQuery },
  responses: {
    200: {
      ...json(LabelsView, "The labels, derived from the served config; X-Config-Hash names that config"),
      content: {
        "application/json": { schema: LabelsView },
        "application/yaml": { schema: z.string().meta({ description: "A compose `labels:` list" }) },
      },
    },
    ...problems(400, 401, 404, 503),
  },
});

/** Traefik Docker/Swarm labels equivalent to a deployment's routers, services and middlewares (issue 12). */
export function labelsApi({ handle: { db }, cache }: Deps) {
  return contracts().openapi(getLabels, async (c) => {
    const { id } = c.req.valid("param");
    const { format } = c.req.valid("query");
    await getDeployment(db, id); // 404 for an unknown deployment
    // Pending routes (waiting for proof of domain ownership) are not in the served config: no labels for them.
    const routes = (await listRoutes(db, id)).filter((r) => r.verification === "verified");
    // The served config itself (after any pending re-render), so the labels say what Traefik is told.
    const cfg = await cache.freshWithin(FRESH_WAIT_MS);
    if (!cfg) {
      throw new HttpProblem(
        problem("CONFIG_UNAVAILABLE", "The routing database has not been read successfully since startup.", {
          headers: { "Retry-After": "5" },
        }),
      );
    }
    // Parsed per request rather than kept: this is a rare admin read, and a second object tree of a large config
    // would stay in memory for nothing.
    const config = JSON.parse(cfg.json.toString("utf8")) as TraefikDocument;
    const result = labelsFor({ config, deploymentId: id, routes, warnings: cfg.warnings });
    c.header("x-config-hash", cfg.hash);
    c.header("cache-control", "no-store"); // basic-auth hashes and custom header values
    if (format === "compose") {
      return c.body(composeLabels(id, result), 200, { "content-type": "application/yaml; charset=utf-8" });
    }
    return c.json({ deployment_id: id, labels: result.labels, not_expressible: result.notExpressible }, 200);
  });
}
