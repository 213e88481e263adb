import { OpenAPIHono } from "@hono/zod-openapi";
import type { z } from "zod";
import type { TokenScope } from "../../schema/enums.js";
import type { AppEnv } from "./deps.js";
import { Problem } from "./schemas.js";
import { validationHook } from "./validate.js";

// Building blocks of the route contracts (`createRoute` next to each handler): the OpenAPI document, request
// validation and the 405 `Allow` lists are all read from those contracts.

/** A router whose `openapi(contract, handler)` validates requests and answers failures as problems. */
export function contracts(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/**
 * The bearer token an operation needs, with the scope it must carry. OpenAPI 3.1 lets an http scheme's security
 * requirement list role names: the document shows each operation's scope, and the auth middleware
 * (src/api/scopes.ts) enforces exactly what the document says, read from these same contracts.
 */
export const scoped = (scope: TokenScope) => [{ apiToken: [scope] }];
/** GETs of the routing state. */
export const READ = scoped("read");
/** Routing, domains, replicas, middlewares, health settings and reports. */
export const WRITE = scoped("write");
/** Uploading and deleting certificates. */
export const CERTIFICATES = scoped("certificates");
/** Tokens, webhooks, freeze, confirming held revisions, whole-state apply. */
export const ADMIN = scoped("admin");
/** Traefik's poll of GET /traefik/config (PROVIDER_TOKEN or a token with the provider scope). */
export const PROVIDER = scoped("provider");
/** The metrics endpoint's bearer token (METRICS_TOKEN), required once one is configured. */
export const METRICS = [{ metricsToken: [] }];

export const SECURITY_SCHEMES = {
  apiToken: {
    type: "http",
    scheme: "bearer",
    description:
      "ADMIN_TOKEN (every scope), PROVIDER_TOKEN (provider) or a managed token (`obr_…`, POST /api/v1/tokens) carrying the scope listed on the operation. `admin` implies read, write and certificates (not provider); `write` and `certificates` imply `read`.",
  },
  metricsToken: { type: "http", scheme: "bearer", description: "METRICS_TOKEN (when set)" },
} as const;

/** A JSON response with its schema. */
export const json = <S extends z.ZodType>(schema: S, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** A required JSON request body. */
export const jsonBody = <S extends z.ZodType>(schema: S) => ({
  required: true,
  content: { "application/json": { schema } },
});

const problemOf = (description: string) => ({
  description: `${description} (RFC 9457 problem details)`,
  content: { "application/problem+json": { schema: Problem } },
});

const PROBLEMS = {
  400: problemOf("Invalid request"),
  401: problemOf("Missing or invalid bearer token"),
  403: problemOf("The token lacks the scope this operation needs"),
  404: problemOf("Not found"),
  409: problemOf("Conflict"),
  413: problemOf("Body over 1 MiB"),
  415: problemOf("Body not sent as application/json"),
  503: problemOf("Unavailable; retry after Retry-After"),
};

/** Problem responses of a contract, by status; a 401 (a token is needed) brings the 403 (its scope is not enough). */
export function problems<const S extends keyof typeof PROBLEMS>(
  ...statuses: S[]
): Pick<typeof PROBLEMS, S | (401 extends S ? 403 : never)> {
  const all: (keyof typeof PROBLEMS)[] = statuses.includes(401 as S) ? [...statuses, 403] : statuses;
  return Object.fromEntries(all.map((s) => [s, PROBLEMS[s]])) as never;
}

/** Problems every admin write with a JSON body can answer, besides its own. */
export const BODY_PROBLEMS = [400, 401, 413, 415] as const;
