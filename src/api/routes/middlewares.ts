import { createRoute } from "@hono/zod-openapi";
import bcrypt from "bcryptjs";
import { getDeployment } from "../../db/repo/deployments.js";
import { getMiddlewares, putMiddlewares } from "../../db/repo/middlewares.js";
import { CHAIN_ORDER, IP_DEPTH_NEEDS_TRUSTED_PROXIES, type StoredMiddlewares } from "../../render/middlewares.js";
import { ADMIN, BODY_PROBLEMS, contracts, json, jsonBody, problems } from "../contract.js";
import type { Deps } from "../deps.js";
import type { FieldError } from "../problem.js";
import { DeploymentParams, MiddlewaresBody, MiddlewaresView } from "../schemas.js";
import { invalid } from "../validate.js";

const BCRYPT_COST = 10;

/** Plaintext basic-auth passwords become bcrypt htpasswd lines here; nothing else ever sees them. */
async function toStored(body: MiddlewaresBody): Promise<StoredMiddlewares> {
  const { basic_auth, ...rest } = body;
  if (!basic_auth) {
    return rest;
  }
  const hashed = await Promise.all(
    basic_auth.users.map(
      async (u) => `${u.username}:${(await bcrypt.hash(u.password, BCRYPT_COST)).replace(/^\$2b\$/, "$2y$")}`,
    ),
  );
  return {
    ...rest,
    basic_auth: {
      users: [...hashed, ...basic_auth.htpasswd],
      ...(basic_auth.realm ? { realm: basic_auth.realm } : {}),
      remove_header: basic_auth.remove_header,
    },
  };
}

/** What GET shows: settings as stored, with basic-auth hashes reduced to user names. */
export function middlewaresView(stored: Record<string, unknown>) {
  const basic = stored.basic_auth as { users?: string[] } | undefined;
  return {
    ...stored,
    ...(basic ? { basic_auth: { ...basic, users: (basic.users ?? []).map((line) => line.split(":")[0]) } } : {}),
    chain_order: [...CHAIN_ORDER],
  };
}

/**
 * `ip_depth` > 0 works only when Traefik trusts the load balancers that set X-Forwarded-For (TRUSTED_PROXY_CIDRS,
 * mirrored in traefik.yml): otherwise Traefik deletes the header and every client would get the same empty IP.
 */
function checkIpDepth(body: MiddlewaresBody, trustedProxies: readonly string[]): void {
  if (trustedProxies.length > 0) {
    return;
  }
  const errors: FieldError[] = [];
  if ((body.ip_allow_list?.ip_depth ?? 0) > 0) {
    errors.push({ location: "body.ip_allow_list.ip_depth", message: IP_DEPTH_NEEDS_TRUSTED_PROXIES });
  }
  if ((body.rate_limit?.ip_depth ?? 0) > 0) {
    errors.push({ location: "body.rate_limit.ip_depth", message: IP_DEPTH_NEEDS_TRUSTED_PROXIES });
  }
  if (errors.length > 0) {
    throw invalid(errors, `${errors[0]?.location}: ${IP_DEPTH_NEEDS_TRUSTED_PROXIES}`); // the one reason, said once
  }
}

const get = createRoute({
  method: "get",
  path: "/{id}/middlewares",
  summary: "Middleware settings (basic-auth users as names only)",
  security: ADMIN,
  request: { params: DeploymentParams },
  responses: { 200: json(MiddlewaresView, "Settings"), ...problems(400, 401, 404) },
});

const put = createRoute({
  method: "put",
  path: "/{id}/middlewares",
  summary: "Replace middleware settings",
  security: ADMIN,
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
      const stored = await toStored(body);
      await putMiddlewares(db, id, stored);
      return c.json(middlewaresView(stored), 200);
    });
}
