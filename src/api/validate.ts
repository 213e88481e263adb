import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { z } from "zod";
import { type FieldError, HttpProblem, type Problem, problem } from "./problem.js";

// Request validation runs in the route contracts (@hono/zod-openapi); this module turns what goes wrong there into
// the API's problems: 400 VALIDATION_FAILED with `errors[]`, 400 MALFORMED_JSON, 415 UNSUPPORTED_MEDIA_TYPE.

type Where = "body" | "query" | "path";
const WHERE: Record<string, Where> = { json: "body", query: "query", param: "path" };

/** A body is JSON when its content type says so (`application/json`, `application/<x>+json`, any parameters). */
const JSON_TYPE = /^application\/(.+\+)?json\b/i;

/** zod issues → `errors[]` with locations like `body.servers[1].url`. */
export function fieldErrors(where: Where, issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.map((i) => {
    let location: string = where;
    for (const seg of i.path) {
      location += typeof seg === "number" ? `[${seg}]` : `.${String(seg)}`;
    }
    const message = i.code === "unrecognized_keys" ? `unknown field(s): ${i.keys.join(", ")}` : i.message;
    return { location, message };
  });
}

/** A 400 VALIDATION_FAILED naming every field that failed; `detail` sums them up unless given. */
export function invalid(
  errors: FieldError[],
  detail = errors.length === 1
    ? `${errors[0]?.location}: ${errors[0]?.message}`
    : `${errors.length} fields are invalid.`,
): HttpProblem {
  return new HttpProblem(problem("VALIDATION_FAILED", detail, { errors }));
}

/** A 400 VALIDATION_FAILED for one field, from a check that needs the app's settings (REPLICA_ALLOWED_CIDRS). */
export function invalidField(location: string, message: string): HttpProblem {
  return invalid([{ location, message }]);
}

const unsupportedMediaType = () =>
  new HttpProblem(problem("UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json."));

/**
 * The `defaultHook` of every contract: runs after each part of the request (path, query, body) was validated and
 * throws the problem for the first part that failed. A body without a JSON content type never counts as `{}`.
 */
export function validationHook(
  result: { target: string } & ({ success: true } | { success: false; error: z.ZodError }),
  c: Context,
): void {
  if (result.target === "json" && !JSON_TYPE.test(c.req.header("content-type") ?? "")) {
    throw unsupportedMediaType();
  }
  if (!result.success) {
    throw invalid(fieldErrors(WHERE[result.target] ?? "body", result.error.issues));
  }
}

/**
 * What the contract validators throw before the hook sees the body: a content type the route does not accept (415)
 * or a body that is not JSON (400). The parser's own message is never echoed.
 */
export function validatorProblem(err: Error): Problem | undefined {
  if (!(err instanceof HTTPException)) {
    return undefined;
  }
  if (err.status === 415) {
    return unsupportedMediaType().problem;
  }
  if (err.status === 400) {
    return problem("MALFORMED_JSON", "The request body is not valid JSON.");
  }
  return undefined;
}
