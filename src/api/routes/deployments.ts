import { Hono } from "hono";
import { createDeployment, deleteDeployment, getDeployment, listDeployments } from "../../db/repo/deployments.js";
import type { AppEnv, Deps } from "../app.js";
import { CreateDeploymentBody, DeploymentId, PageQuery } from "../schemas.js";
import { parseBody, parseParam, parseQuery } from "../validate.js";
import { deploymentView } from "../views.js";

export function deploymentsApi({ handle, cache }: Deps) {
  const { db } = handle;
  return new Hono<AppEnv>()
    .post("/", async (c) => {
      const body = await parseBody(c, CreateDeploymentBody);
      const row = await createDeployment(db, body);
      c.header("Location", `/api/v1/deployments/${row.id}`);
      return c.json(deploymentView(row), 201);
    })
    .get("/", async (c) => {
      const page = parseQuery(c, PageQuery);
      const { items, nextCursor } = await listDeployments(db, page);
      return c.json({ items: items.map(deploymentView), next_cursor: nextCursor });
    })
    .get("/:id", async (c) => c.json(deploymentView(await getDeployment(db, parseParam(c, "id", DeploymentId)))))
    .delete("/:id", async (c) => {
      await deleteDeployment(db, parseParam(c, "id", DeploymentId));
      cache.invalidate();
      return c.body(null, 204);
    });
}
