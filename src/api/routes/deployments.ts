import { createRoute } from "@hono/zod-openapi";
import { createDeployment, deleteDeployment, getDeployment, listDeployments } from "../../db/repo/deployments.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";
import { CreateDeploymentBody, DeploymentParams, DeploymentsQuery, DeploymentView, Paged } from "../schemas.js";
import { allowsDeployment } from "../scopes.js";
import { deploymentView } from "../views.js";

const create = createRoute({
  method: "post",
  path: "/",
  summary: "Create a deployment",
  security: WRITE,
  request: { body: jsonBody(CreateDeploymentBody) },
  responses: { 201: json(DeploymentView, "Created"), ...problems(...BODY_PROBLEMS, 409) },
});

const list = createRoute({
  method: "get",
  path: "/",
  summary: "List deployments (keyset paged; ?q= searches id and name)",
  security: READ,
  request: { query: DeploymentsQuery },
  responses: { 200: json(Paged(DeploymentView), "A page"), ...problems(400, 401) },
});

const get = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Get a deployment",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(DeploymentView, "The deployment"), ...problems(400, 401, 404) },
});

const remove = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Delete a deployment with its routes and replicas",
  security: WRITE,
  request: { params: DeploymentParams },
  responses: { 204: { description: "Deleted" }, ...problems(400, 401, 404) },
});

export function deploymentsApi({ handle: { db } }: Deps) {
  return contracts()
    .openapi(create, async (c) => {
      const body = c.req.valid("json");
      const restriction = c.get("caller")?.restriction;
      if (restriction && (body.id === undefined || !allowsDeployment(restriction, body.id))) {
        // The token's own limits, whatever exists: nothing about other tenants is revealed.
        throw new HttpProblem(
          problem(
            "TOKEN_RESTRICTED",
            "This token is restricted to some deployments: give an id it may use (its deployment_ids or deployment_prefix).",
          ),
        );
      }
      const row = await createDeployment(db, body);
      c.header("Location", `/api/v1/deployments/${row.id}`);
      return c.json(deploymentView(row), 201);
    })
    .openapi(list, async (c) => {
      const restriction = c.get("caller")?.restriction;
      const { items, nextCursor } = await listDeployments(db, {
        ...c.req.valid("query"),
        ...(restriction ? { only: restriction } : {}),
      });
      return c.json({ items: items.map(deploymentView), next_cursor: nextCursor }, 200);
    })
    .openapi(get, async (c) => c.json(deploymentView(await getDeployment(db, c.req.valid("param").id)), 200))
    .openapi(remove, async (c) => {
      await deleteDeployment(db, c.req.valid("param").id);
      return c.body(null, 204);
    });
}
