import { createRoute } from "@hono/zod-openapi";
import { getDeployment } from "../../db/repo/deployments.js";
import { getMiddlewares, putMiddlewares } from "../../db/repo/middlewares.js";
import { CHAIN_ORDER } from "../../render/middlewares.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { DeploymentParams, MiddlewaresBody, MiddlewaresView } from "../schemas.js";
import { checkIpDepth, toStoredMiddlewares } from "../write-steps.js";

/** What GET shows: settings as stored, with basic-auth hashes reduced to user names. */
export function middlewaresView(stored: Record<string, unknown>) {
  const basic = stored.basic_auth as { users?: string[] } | undefined;
  return {
    ...stored,
    ...(basic ? { basic_auth: { ...basic, users: (basic.users ?? []).map((line) => line.split(":")[0]) } } : {}),
    chain_order: [...CHAIN_ORDER],
  };
}

const get = createRoute({
  method: "get",
  path: "/{id}/middlewares",
  summary: "Middleware settings (basic-auth users as names only)",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(MiddlewaresView, "Settings"), ...problems(400, 401, 404) },
});

const put = createRoute({
  method: "put",
  path: "/{id}/middlewares",
  summary: "Replace middleware settings",
  security: WRITE,
  request: { params: DeploymentParams, body: jsonBody(MiddlewaresBody) },
  responses: { 200: json(MiddlewaresView, "Settings after the change"), ...problems(...BODY_PROBLEMS, 404) },
});

export function middlewaresApi({ handle: { db }, config }: Deps) {
  return contracts()
    .openapi(get, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      return c.json(middlewaresView(await getMiddlewares(db, id)), 200);
    })
    .openapi(put, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      checkIpDepth(body, config.TRUSTED_PROXY_CIDRS);
      await getDeployment(db, id);
      const stored = await toStoredMiddlewares(body);
      await putMiddlewares(db, id, stored);
      return c.json(middlewaresView(stored), 200);
    });
}
