import { Conflict, Invalid, NotFound } from "../db/errors.js";
import { PROBLEM_CATALOGUE, type ProblemCode } from "../lib/problem.js";
import { CertificateProblem } from "../tls/certificate.js";
import { HttpProblem, type Problem, problem } from "./problem.js";
import { validatorProblem } from "./validate.js";

const catalogued = (code: string): code is ProblemCode => Object.hasOwn(PROBLEM_CATALOGUE, code);

/** Maps errors that carry meaning for the client; anything else is a 500 with a generic message. */
export function domainProblem(err: Error): Problem | undefined {
  if (err instanceof HttpProblem) {
    return err.problem;
  }
  if (err instanceof NotFound) {
    const code = `${err.resource.toUpperCase()}_NOT_FOUND`;
    const detail = `No ${err.resource} ${err.id}.`;
    const title = `${err.resource[0]?.toUpperCase()}${err.resource.slice(1)} not found`;
    return catalogued(code) ? problem(code, detail) : { status: 404, code, title, detail };
  }
  if (err instanceof Conflict) {
    const extra = { extra: err.details };
    return catalogued(err.code)
      ? problem(err.code, err.message, extra)
      : { status: 409, code: err.code, title: "Conflict", detail: err.message, ...extra };
  }
  if (err instanceof Invalid) {
    return problem("VALIDATION_FAILED", err.message, { errors: [{ location: err.location, message: err.message }] });
  }
  if (err instanceof CertificateProblem) {
    return problem("INVALID_CERTIFICATE", err.message, {
      errors: [{ location: err.location, message: err.message }],
    });
  }
  return validatorProblem(err);
}
