import { createRoute } from "@hono/zod-openapi";
import { createDeployment, deleteDeployment, getDeployment, listDeployments } from "../../db/repo/deployments.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { CreateDeploymentBody, DeploymentParams, DeploymentView, Paged, PageQuery } from "../schemas.js";
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
  summary: "List deployments (keyset paged)",
  security: READ,
  request: { query: PageQuery },
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
      const row = await createDeployment(db, c.req.valid("json"));
      c.header("Location", `/api/v1/deployments/${row.id}`);
      return c.json(deploymentView(row), 201);
    })
    .openapi(list, async (c) => {
      const { items, nextCursor } = await listDeployments(db, c.req.valid("query"));
      return c.json({ items: items.map(deploymentView), next_cursor: nextCursor }, 200);
    })
    .openapi(get, async (c) => c.json(deploymentView(await getDeployment(db, c.req.valid("param").id)), 200))
    .openapi(remove, async (c) => {
      await deleteDeployment(db, c.req.valid("param").id);
      return c.body(null, 204);
    });
}
