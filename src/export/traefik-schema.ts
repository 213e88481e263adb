import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import schemaJson from "./traefik-schema/traefik-v3-file-provider.json" with { type: "json" };

// Imported rather than read from disk: tsc copies the JSON next to the compiled module, so dist/ (and the Docker
// image, which ships only dist/) has it without a copy step.

type JsonObject = Record<string, unknown>;

function obj(parent: JsonObject, ...path: string[]): JsonObject {
  let cur = parent;
  for (const key of path) {
    const next = cur[key];
    if (next === null || typeof next !== "object") {
      throw new Error(`schema overlay: ${path.join(".")} not found`);
    }
    cur = next as JsonObject;
  }
  return cur;
}

/**
 * SchemaStore's schema with a small overlay for what Traefik accepts but the schema lags on, and a few
 * tightenings where Traefik itself is strict. Each entry cites Traefik's generated dynamic reference
 * (docs/content/reference/dynamic-configuration/file.yaml, v3.6.24 and v3.7.9). A fresh copy on every call.
 */
export function traefikSchema(): JsonObject {
  const schema = structuredClone(schemaJson) as JsonObject;
  const lb = obj(schema, "definitions", "httpLoadBalancerService", "properties");
  const duration = { type: "string", minLength: 1 };
  // reference v3.6.24 `http.services.Service01.loadBalancer.strategy` (wrr | p2c | hrw | leasttime).
  lb.strategy = { type: "string", enum: ["wrr", "p2c", "hrw", "leasttime"] };
  // reference `loadBalancer.servers[].{url, weight, preservePath}`: Traefik rejects unknown keys, so be strict too.
  const server = obj(lb, "servers", "items");
  server.properties = {
    url: { type: "string", minLength: 1 },
    weight: { type: "integer", minimum: 0 },
    preservePath: { type: "boolean" },
  };
  server.additionalProperties = false;
  // Traefik decodes the whole payload strictly: an unknown top-level or `http.*` key fails it.
  schema.additionalProperties = false;
  obj(schema, "properties", "http").additionalProperties = false;
  // SchemaStore lacks `http.serversTransports`; reference v3.7.9 `http.serversTransports.ServersTransport0.{serverName,
  // insecureSkipVerify, rootCAs, certificates, …}`. Only the fields we render, closed (RENDER-EDGES, backend.ts):
  obj(schema, "properties", "http", "properties").serversTransports = {
    type: "object",
    additionalProperties: {
      type: "object",
      properties: {
        serverName: { type: "string", minLength: 1 },
        insecureSkipVerify: { type: "boolean" },
        rootCAs: { type: "array", minItems: 1, items: { type: "string", minLength: 1 } },
        // reference `…ServersTransport0.forwardingTimeouts.{dialTimeout, responseHeaderTimeout, idleConnTimeout}`:
        forwardingTimeouts: {
          type: "object",
          properties: { dialTimeout: duration, idleConnTimeout: duration, responseHeaderTimeout: duration },
          additionalProperties: false,
        },
      },
      additionalProperties: false,
    },
  };
  // reference v3.6.24 `loadBalancer.passiveHealthCheck.{failureWindow, maxFailedAttempts}` (SchemaStore lags):
  lb.passiveHealthCheck = {
    type: "object",
    properties: { failureWindow: duration, maxFailedAttempts: { type: "integer", minimum: 1 } },
    additionalProperties: false,
  };
  // reference v3.7.9 `http.middlewares.Middleware22.retry.{status, timeout}` (3.7 only: the semantics check gates the
  // version; src/render/resilience.ts renders them only with TRAEFIK_VERSION=3.7):
  const retry = obj(schema, "definitions", "retryMiddleware", "properties");
  retry.status = { type: "array", minItems: 1, items: { type: "string", pattern: "^[0-9]{3}(-[0-9]{3})?$" } };
  retry.timeout = duration;
  // Where SchemaStore leaves objects open that we emit, close them to the reference's fields, so a misspelt key
  // fails here rather than in Traefik. reference `http.middlewares.Middleware02.basicAuth.{users, usersFile,
  // realm, removeHeader, headerField}`:
  obj(schema, "definitions", "basicAuthMiddleware").additionalProperties = false;
  // reference `http.routers.Router0.tls.{options, certResolver, domains[].{main, sans}}`:
  const routerTls = obj(schema, "definitions", "httpRouter", "properties", "tls");
  routerTls.additionalProperties = false;
  const tlsDomain = obj(routerTls, "properties", "domains", "items");
  tlsDomain.additionalProperties = false;
  tlsDomain.required = ["main"];
  // reference `tls.certificates[].{certFile, keyFile, stores}` (certFile/keyFile take a path or the PEM itself):
  const certificate = obj(schema, "properties", "tls", "properties", "certificates", "items");
  certificate.additionalProperties = false;
  certificate.required = ["certFile", "keyFile"];
  return schema;
}

let compiled: ValidateFunction | undefined;

/** JSON-schema problems of one dynamic-config document (one readable line each), empty when it validates. */
export function traefikSchemaProblems(doc: unknown): string[] {
  compiled ??= new Ajv({ allErrors: true, strict: false }).compile(traefikSchema());
  return compiled(doc)
    ? []
    : (compiled.errors ?? []).map(
        (e: ErrorObject) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`,
      );
}
