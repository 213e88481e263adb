import { OpenAPIHono } from "@hono/zod-openapi";
import type { z } from "zod";
import type { AppEnv } from "./deps.js";
import { Problem } from "./schemas.js";
import { validationHook } from "./validate.js";

// Building blocks of the route contracts (`createRoute` next to each handler): the OpenAPI document, request
// validation and the 405 `Allow` lists are all read from those contracts.

/** A router whose `openapi(contract, handler)` validates requests and answers failures as problems. */
export function contracts(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/** The admin API's bearer token (ADMIN_TOKEN). */
export const ADMIN = [{ adminToken: [] }];
/** The provider endpoint's bearer token (PROVIDER_TOKEN), required once one is configured. */
export const PROVIDER = [{ providerToken: [] }];
/** The metrics endpoint's bearer token (METRICS_TOKEN), required once one is configured. */
export const METRICS = [{ metricsToken: [] }];

export const SECURITY_SCHEMES = {
  adminToken: { type: "http", scheme: "bearer", description: "ADMIN_TOKEN" },
  providerToken: { type: "http", scheme: "bearer", description: "PROVIDER_TOKEN (when set)" },
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
  404: problemOf("Not found"),
  409: problemOf("Conflict"),
  413: problemOf("Body over 1 MiB"),
  415: problemOf("Body not sent as application/json"),
  503: problemOf("Unavailable; retry after Retry-After"),
};

/** Problem responses of a contract, by status. */
export function problems<const S extends keyof typeof PROBLEMS>(...statuses: S[]): Pick<typeof PROBLEMS, S> {
  return Object.fromEntries(statuses.map((s) => [s, PROBLEMS[s]])) as Pick<typeof PROBLEMS, S>;
}

/** Problems every admin write with a JSON body can answer, besides its own. */
export const BODY_PROBLEMS = [400, 401, 413, 415] as const;
