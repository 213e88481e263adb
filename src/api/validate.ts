import type { Context } from "hono";
import type { z } from "zod";
import { type FieldError, HttpProblem } from "./problem.js";

/** zod issues → `errors[]` with locations like `body.servers[1].url`. */
export function fieldErrors(where: "body" | "query" | "path", issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.map((i) => {
    let location: string = where;
    for (const seg of i.path) {
      location += typeof seg === "number" ? `[${seg}]` : `.${String(seg)}`;
    }
    const message = i.code === "unrecognized_keys" ? `unknown field(s): ${i.keys.join(", ")}` : i.message;
    return { location, message };
  });
}

function invalid(errors: FieldError[]): HttpProblem {
  return new HttpProblem({
    status: 400,
    code: "VALIDATION_FAILED",
    title: "Invalid request",
    detail:
      errors.length === 1 ? `${errors[0]?.location}: ${errors[0]?.message}` : `${errors.length} fields are invalid.`,
    errors,
  });
}

/** A 400 VALIDATION_FAILED for one field, from a check that needs the app's settings (REPLICA_ALLOWED_CIDRS). */
export function invalidField(location: string, message: string): HttpProblem {
  return invalid([{ location, message }]);
}

/** Reads and validates a JSON body; malformed JSON and wrong content types are 400/415 problems, never 500s. */
export async function parseBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new HttpProblem({
      status: 415,
      code: "UNSUPPORTED_MEDIA_TYPE",
      title: "Unsupported Media Type",
      detail: "Send the body as application/json.",
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await c.req.text());
  } catch {
    throw new HttpProblem({
      status: 400,
      code: "MALFORMED_JSON",
      title: "Malformed JSON",
      detail: "The request body is not valid JSON.",
    });
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    throw invalid(fieldErrors("body", r.error.issues));
  }
  return r.data;
}

export function parseQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  const r = schema.safeParse(c.req.query());
  if (!r.success) {
    throw invalid(fieldErrors("query", r.error.issues));
  }
  return r.data;
}

export function parseParam<S extends z.ZodType>(c: Context, name: string, schema: S): z.output<S> {
  const r = schema.safeParse(c.req.param(name));
  if (!r.success) {
    throw invalid(fieldErrors("path", r.error.issues).map((e) => ({ ...e, location: `path.${name}` })));
  }
  return r.data;
}
