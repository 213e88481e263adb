import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { PROBLEM_CONTENT_TYPE, type Problem, problem, problemBody } from "../lib/problem.js";

// The API's side of the one problem vocabulary (src/lib/problem.ts): thrown as HttpProblem, answered as a hono
// Response by the app's single onError.

export type { FieldError, Problem, ProblemCode } from "../lib/problem.js";
export { problem } from "../lib/problem.js";

/** Thrown anywhere in a handler or middleware; the app's single onError turns it into a problem response. */
export class HttpProblem extends Error {
  constructor(readonly problem: Problem) {
    super(problem.title);
    this.name = "HttpProblem";
  }
}

/** Answers a problem for this request: `instance` is its path, `requestId` its id. */
export function problemResponse(c: Context, p: Problem): Response {
  const body = problemBody(p, new URL(c.req.url).pathname, c.get("requestId" as never) as string | undefined);
  return new Response(JSON.stringify(body), {
    status: p.status as ContentfulStatusCode,
    headers: { ...p.headers, "content-type": PROBLEM_CONTENT_TYPE },
  });
}

export const notFoundProblem = problem("NOT_FOUND", "No resource at this path.");

/** The database could not be reached or did not answer in time; the request may be retried. */
export const databaseUnavailableProblem = problem(
  "DATABASE_UNAVAILABLE",
  "The routing database did not answer in time. Retry after the delay given in Retry-After; a write that was " +
    "in flight may or may not have been applied, so read it back first.",
  { headers: { "Retry-After": "5" } },
);
