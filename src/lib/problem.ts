// RFC 9457 problem details: the one vocabulary of every error this service answers, from the API (wrapped in a
// hono Response by src/api/problem.ts) and from the fallback proxy (written with res.writeHead by
// src/proxy/problem.ts). A leaf module: it imports nothing, so the proxy can use it without the API.

export interface FieldError {
  /** Where the value was: `body.servers[1].url`, `path.id`, `query.limit`. */
  location: string;
  message: string;
}

/** One problem, before it knows the request it answers. */
export interface Problem {
  status: number;
  code: string;
  title: string;
  detail?: string;
  errors?: FieldError[];
  /** Extra machine-readable members, e.g. `owner` on DOMAIN_CONFLICT. */
  extra?: Record<string, unknown>;
  /** Response headers such as `WWW-Authenticate`, `Allow` or `Retry-After`. */
  headers?: Record<string, string>;
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/**
 * Every code with its status and title, once. Codes are stable and machine-readable; `type` is derived from them.
 * `<RESOURCE>_NOT_FOUND` and the conflict codes come from the domain errors (src/db/errors.ts) and are listed
 * here so a client can see the whole vocabulary in one place.
 */
export const PROBLEM_CATALOGUE = {
  // Plain HTTP failures (type about:blank).
  NOT_FOUND: { status: 404, title: "Not Found" },
  METHOD_NOT_ALLOWED: { status: 405, title: "Method Not Allowed" },
  // Requests the API refuses.
  VALIDATION_FAILED: { status: 400, title: "Invalid request" },
  MALFORMED_JSON: { status: 400, title: "Malformed JSON" },
  INVALID_CERTIFICATE: { status: 400, title: "Invalid certificate" },
  UNAUTHORIZED: { status: 401, title: "Unauthorized" },
  /** The token is valid but lacks the scope the operation needs (`required_scope` names it). */
  FORBIDDEN: { status: 403, title: "Forbidden" },
  /** A deployment-restricted token called an endpoint outside /api/v1/deployments, or named a deployment it may not create. */
  TOKEN_RESTRICTED: { status: 403, title: "Token restricted to some deployments" },
  TOKEN_NOT_FOUND: { status: 404, title: "Token not found" },
  BODY_TOO_LARGE: { status: 413, title: "Payload Too Large" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: "Unsupported Media Type" },
  DEPLOYMENT_NOT_FOUND: { status: 404, title: "Deployment not found" },
  LOCATION_NOT_FOUND: { status: 404, title: "Location not found" },
  CERTIFICATE_NOT_FOUND: { status: 404, title: "Certificate not found" },
  DOMAIN_NOT_FOUND: { status: 404, title: "Domain not found" },
  DEPLOYMENT_EXISTS: { status: 409, title: "Conflict" },
  DOMAIN_CONFLICT: { status: 409, title: "Conflict" },
  /** Domain ownership: the `_obiente-challenge` TXT record does not hold the route's token (yet). */
  DOMAIN_NOT_VERIFIED: { status: 422, title: "Domain ownership not verified" },
  LOCATION_CONFLICT: { status: 409, title: "Conflict" },
  CERTIFICATE_EXISTS: { status: 409, title: "Conflict" },
  /** A state file references a certificate that is not uploaded (POST /api/v1/certificates first). */
  CERTIFICATE_NOT_UPLOADED: { status: 409, title: "Certificate not uploaded" },
  // Revisions, freeze and guard (issue 13).
  REVISION_NOT_FOUND: { status: 404, title: "Revision not found" },
  REVISION_NOT_HELD: { status: 409, title: "Revision not held" },
  // Events and webhooks (issue 14).
  WEBHOOK_NOT_FOUND: { status: 404, title: "Webhook not found" },
  /** The webhook URL is, or resolves to, an address webhooks may not reach (SSRF; see WEBHOOK_ALLOW_PRIVATE). */
  WEBHOOK_URL_REFUSED: { status: 400, title: "Webhook URL refused" },
  // The service itself.
  INTERNAL: { status: 500, title: "Internal Server Error" },
  CONFIG_UNAVAILABLE: { status: 503, title: "No configuration rendered yet" },
  DATABASE_UNAVAILABLE: { status: 503, title: "Database unavailable" },
  /** The ownership TXT lookup failed (SERVFAIL, timeout, refused): DNS did not answer, so nothing was decided. */
  DNS_LOOKUP_FAILED: { status: 502, title: "DNS lookup failed" },
  // The fallback proxy.
  BAD_REQUEST: { status: 400, title: "Bad Request" },
  INVALID_PATH: { status: 400, title: "Invalid path" },
  PROXY_UNAUTHENTICATED: { status: 401, title: "Unauthenticated" },
  PROXY_FORBIDDEN: { status: 403, title: "Forbidden" },
  BAD_UPSTREAM: { status: 502, title: "Bad upstream" },
  NO_HEALTHY_REPLICA: { status: 503, title: "No healthy replica" },
  UPSTREAM_TIMEOUT: { status: 504, title: "Upstream timeout" },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEM_CATALOGUE;

/** A catalogued problem: status and title from the catalogue, the rest from the caller. */
export function problem(
  code: ProblemCode,
  detail?: string,
  more: Pick<Problem, "errors" | "extra" | "headers"> = {},
): Problem {
  const { status, title } = PROBLEM_CATALOGUE[code];
  return { status, code, title, ...(detail === undefined ? {} : { detail }), ...more };
}

/** `type` URI for a code: plain HTTP failures are `about:blank` (RFC 9457 §4.2.1). */
export function problemType(code: string): string {
  if (code === "NOT_FOUND" || code === "METHOD_NOT_ALLOWED") {
    return "about:blank";
  }
  return `urn:obiente-router:problem:${code.toLowerCase().replaceAll("_", "-")}`;
}

/** The body every problem is sent with; `instance` is the request path, `requestId` the request's id. */
export function problemBody(p: Problem, instance: string, requestId: string | undefined): Record<string, unknown> {
  return {
    type: problemType(p.code),
    title: p.title,
    status: p.status,
    ...(p.detail === undefined ? {} : { detail: p.detail }),
    instance,
    code: p.code,
    requestId,
    ...(p.errors ? { errors: p.errors } : {}),
    ...p.extra,
  };
}
