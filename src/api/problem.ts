import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export interface FieldError {
  location: string;
  message: string;
}

export interface ProblemInit {
  status: ContentfulStatusCode;
  code: string;
  title: string;
  detail?: string;
  errors?: FieldError[];
  /** Extra machine-readable members, e.g. `owner` on DOMAIN_CONFLICT. */
  extra?: Record<string, unknown>;
  /** Response headers such as `WWW-Authenticate`, `Allow` or `Retry-After`. */
  headers?: Record<string, string>;
}

/** Thrown anywhere in a handler; the app's single onError turns it into a problem response. */
export class HttpProblem extends Error {
  constructor(readonly init: ProblemInit) {
    super(init.title);
    this.name = "HttpProblem";
  }
}

/** `type` URI for a code: plain HTTP failures are `about:blank` (RFC 9457 §4.2.1). */
export function problemType(code: string): string {
  if (code === "NOT_FOUND" || code === "METHOD_NOT_ALLOWED") {
    return "about:blank";
  }
  return `urn:obiente-router:problem:${code.toLowerCase().replaceAll("_", "-")}`;
}

/** Builds every RFC 9457 problem body the service sends, with `application/problem+json`. */
export function problemResponse(c: Context, init: ProblemInit): Response {
  const body = {
    type: problemType(init.code),
    title: init.title,
    status: init.status,
    ...(init.detail === undefined ? {} : { detail: init.detail }),
    instance: new URL(c.req.url).pathname,
    code: init.code,
    requestId: c.get("requestId" as never) as string | undefined,
    ...(init.errors ? { errors: init.errors } : {}),
    ...init.extra,
  };
  return new Response(JSON.stringify(body), {
    status: init.status,
    headers: { ...init.headers, "content-type": "application/problem+json" },
  });
}

export const notFoundProblem: ProblemInit = {
  status: 404,
  code: "NOT_FOUND",
  title: "Not Found",
  detail: "No resource at this path.",
};

/** The database could not be reached or did not answer in time; the request may be retried. */
export const databaseUnavailableProblem: ProblemInit = {
  status: 503,
  code: "DATABASE_UNAVAILABLE",
  title: "Database unavailable",
  detail:
    "The routing database did not answer in time. Retry after the delay given in Retry-After; a write that was " +
    "in flight may or may not have been applied, so read it back first.",
  headers: { "Retry-After": "5" },
};
