import { z } from "zod";
import {
  AddDomainBody,
  CertificateView,
  CreateDeploymentBody,
  DeploymentView,
  DnsRecord,
  EventsQuery,
  HealthCheckBody,
  HealthCheckView,
  HealthEventView,
  LocationView,
  MiddlewaresBody,
  PageQuery,
  Problem,
  PutLocationBody,
  PutRoutingBody,
  ReportFailureBody,
  ResolveQuery,
  RouteView,
  RoutingView,
  UploadCertificateBody,
} from "./schemas.js";

// /openapi.json is generated from the zod schemas that validate requests: there is no hand-kept copy.

interface Operation {
  method: "get" | "post" | "put" | "delete";
  path: string;
  summary: string;
  body?: z.ZodType;
  query?: z.ZodObject;
  /** `also`: a second success status with the same body (e.g. 200 for an idempotent repeat of a 201). */
  ok: { status: number; schema?: z.ZodType; description: string; also?: { status: number; description: string } };
  errors?: number[];
}

const Paged = (item: z.ZodType) => z.object({ items: z.array(item), next_cursor: z.string().nullable() });
const Items = (item: z.ZodType) => z.object({ items: z.array(item) });
const DomainWithDns = RouteView.extend({ dns_records: z.array(DnsRecord) });
/** Present only when the domain was accepted but may imitate another name (mixed scripts in one IDN label). */
const Warnings = z.array(z.string()).optional();

export const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/api/v1/deployments",
    summary: "Create a deployment",
    body: CreateDeploymentBody,
    ok: { status: 201, schema: DeploymentView, description: "Created" },
    errors: [400, 409],
  },
  {
    method: "get",
    path: "/api/v1/deployments",
    summary: "List deployments (keyset paged)",
    query: PageQuery,
    ok: { status: 200, schema: Paged(DeploymentView), description: "A page" },
  },
  {
    method: "get",
    path: "/api/v1/deployments/{id}",
    summary: "Get a deployment",
    ok: { status: 200, schema: DeploymentView, description: "The deployment" },
    errors: [404],
  },
  {
    method: "delete",
    path: "/api/v1/deployments/{id}",
    summary: "Delete a deployment with its routes and replicas",
    ok: { status: 204, description: "Deleted" },
    errors: [404],
  },
  {
    method: "get",
    path: "/api/v1/deployments/{id}/routing",
    summary: "Primary routing and every domain",
    ok: { status: 200, schema: RoutingView, description: "Routing" },
    errors: [404],
  },
  {
    method: "put",
    path: "/api/v1/deployments/{id}/routing",
    summary: "Create or update the primary route (partial)",
    body: PutRoutingBody,
    ok: { status: 200, schema: RoutingView.extend({ warnings: Warnings }), description: "Routing after the change" },
    errors: [400, 404, 409],
  },
  {
    method: "get",
    path: "/api/v1/deployments/{id}/domains",
    summary: "List domains with DNS records",
    ok: { status: 200, schema: Items(DomainWithDns), description: "Domains" },
    errors: [404],
  },
  {
    method: "post",
    path: "/api/v1/deployments/{id}/domains",
    summary: "Add a custom domain",
    body: AddDomainBody,
    ok: {
      status: 201,
      schema: z.object({ route: RouteView, dns_records: z.array(DnsRecord), warnings: Warnings }),
      description: "Created",
      also: { status: 200, description: "The deployment already had it: the existing route" },
    },
    errors: [400, 404, 409],
  },
  {
    method: "delete",
    path: "/api/v1/deployments/{id}/domains/{domain}",
    summary: "Remove a domain (all paths, or ?path_prefix=)",
    ok: { status: 204, description: "Removed" },
    errors: [400, 404],
  },
  {
    method: "get",
    path: "/api/v1/deployments/{id}/locations",
    summary: "Replicas with health",
    ok: { status: 200, schema: Items(LocationView), description: "Replicas" },
    errors: [404],
  },
  {
    method: "put",
    path: "/api/v1/deployments/{id}/locations/{location_id}",
    summary: "Register or update a replica",
    body: PutLocationBody,
    ok: {
      status: 200,
      schema: LocationView,
      description: "Updated",
      also: { status: 201, description: "Created" },
    },
    errors: [400, 404, 409],
  },
  {
    method: "delete",
    path: "/api/v1/deployments/{id}/locations/{location_id}",
    summary: "Remove a replica",
    ok: { status: 204, description: "Removed" },
    errors: [404],
  },
  {
    method: "get",
    path: "/api/v1/deployments/{id}/health-check",
    summary: "Effective health-check settings",
    ok: { status: 200, schema: HealthCheckView, description: "Settings" },
    errors: [404],
  },
  {
    method: "put",
    path: "/api/v1/deployments/{id}/health-check",
    summary: "Override health-check settings (null resets to the default)",
    body: HealthCheckBody,
    ok: { status: 200, schema: HealthCheckView, description: "Settings after the change" },
    errors: [400, 404],
  },
  {
    method: "post",
    path: "/api/v1/deployments/{id}/locations/{location_id}/failures",
    summary: "Report a request failure: the replica is unhealthy at once",
    body: ReportFailureBody,
    ok: { status: 202, description: "Recorded (or collapsed into a report less than 1 s old)" },
    errors: [400, 404],
  },
  {
    method: "get",
    path: "/api/v1/deployments/{id}/locations/{location_id}/events",
    summary: "Health transitions of a replica, newest first",
    query: EventsQuery,
    ok: { status: 200, schema: Items(HealthEventView), description: "Events" },
    errors: [404],
  },
  {
    method: "get",
    path: "/api/v1/deployments/{id}/middlewares",
    summary: "Middleware settings (basic-auth users as names only)",
    ok: { status: 200, description: "Settings" },
    errors: [404],
  },
  {
    method: "put",
    path: "/api/v1/deployments/{id}/middlewares",
    summary: "Replace middleware settings",
    body: MiddlewaresBody,
    ok: { status: 200, description: "Settings after the change" },
    errors: [400, 404],
  },
  {
    method: "post",
    path: "/api/v1/certificates",
    summary: "Upload a certificate (key stored encrypted)",
    body: UploadCertificateBody,
    ok: { status: 201, schema: CertificateView, description: "Metadata, never key material" },
    errors: [400, 409],
  },
  {
    method: "get",
    path: "/api/v1/certificates",
    summary: "List certificates",
    ok: { status: 200, schema: Items(CertificateView), description: "Certificates" },
  },
  {
    method: "get",
    path: "/api/v1/certificates/{id}",
    summary: "Get a certificate's metadata",
    ok: { status: 200, schema: CertificateView, description: "Metadata" },
    errors: [404],
  },
  {
    method: "delete",
    path: "/api/v1/certificates/{id}",
    summary: "Delete a certificate",
    ok: { status: 204, description: "Deleted" },
    errors: [404],
  },
  {
    method: "get",
    path: "/api/v1/routing/stats",
    summary: "Routes, replicas, config revision and Traefik pollers",
    ok: { status: 200, description: "Statistics" },
  },
  {
    method: "get",
    path: "/api/v1/routing/resolve",
    summary: "Which route answers scheme + host + path (serving, or redirecting to the scheme it serves), and why",
    query: ResolveQuery,
    ok: { status: 200, description: "Resolution" },
    errors: [400],
  },
];

function schemaOf(s: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(s, { io: "input", unrepresentable: "any", target: "draft-2020-12" }) as Record<
    string,
    unknown
  >;
  delete json.$schema; // OpenAPI 3.1's dialect is already 2020-12
  return json;
}

const problemRef = { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } };

/** Builds the OpenAPI 3.1 document. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    if (op.query) {
      const q = schemaOf(op.query) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties ?? {})) {
        params.push({
          name,
          in: "query",
          required: (q.required ?? []).includes(name),
          schema: schema as { type: string },
        });
      }
    }
    const okContent = op.ok.schema ? { content: { "application/json": { schema: schemaOf(op.ok.schema) } } } : {};
    const responses: Record<string, unknown> = {
      [op.ok.status]: { description: op.ok.description, ...okContent },
      ...(op.ok.also ? { [op.ok.also.status]: { description: op.ok.also.description, ...okContent } } : {}),
      401: { description: "Missing or invalid admin token", content: problemRef },
    };
    for (const s of op.errors ?? []) {
      responses[s] = { description: "Problem details (RFC 9457)", content: problemRef };
    }
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = {
      summary: op.summary,
      operationId: `${op.method}${op.path
        .replace(/\/api\/v1/, "")
        .replace(/[{}]/g, "")
        .replace(/\/(\w)/g, (_, ch: string) => ch.toUpperCase())}`,
      security: [{ adminToken: [] }],
      ...(params.length > 0 ? { parameters: params } : {}),
      ...(op.body
        ? { requestBody: { required: true, content: { "application/json": { schema: schemaOf(op.body) } } } }
        : {}),
      responses,
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "obiente-router API", version, description: "Routing control plane for Traefik." },
    servers: [{ url: "/" }],
    paths,
    components: {
      securitySchemes: { adminToken: { type: "http", scheme: "bearer", description: "ADMIN_TOKEN" } },
      schemas: { Problem: schemaOf(Problem) },
    },
  };
}
