import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";

type JsonObject = Record<string, unknown>;

const SCHEMA_FILE = new URL("../fixtures/traefik-schema/traefik-v3-file-provider.json", import.meta.url);

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
 * (docs/content/reference/dynamic-configuration/file.yaml, v3.6.24 and v3.7.9).
 */
export function traefikSchema(): JsonObject {
  const schema = JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as JsonObject;
  const lb = obj(schema, "definitions", "httpLoadBalancerService", "properties");
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

/** Validates a rendered dynamic config; returns readable errors (empty when valid). */
export function traefikSchemaErrors(config: unknown): string[] {
  compiled ??= new Ajv({ allErrors: true, strict: false }).compile(traefikSchema());
  if (compiled(config)) {
    return [];
  }
  return (compiled.errors ?? []).map(
    (e: ErrorObject) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`,
  );
}
