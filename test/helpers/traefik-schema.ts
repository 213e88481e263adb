import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { parse as parseYaml } from "yaml";

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
      },
      additionalProperties: false,
    },
  };
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

/** What a test may accept from the semantics check, each with its reason written next to it in the test. */
export interface TraefikCheckOptions {
  /** `warn:` lines matching one of these are accepted (never `error:` lines). */
  acceptWarnings?: RegExp[];
  /** The empty document `{}` is intended (Traefik applies it and removes every router of the provider). */
  allowEmpty?: boolean;
  /** The provider the document is served by: `http` (GET /traefik/config, the default) or `file` (the export). */
  provider?: "http" | "file";
  /** A Traefik static config other than the shipped traefik/traefik.yml (e.g. other entry point names). */
  staticConfig?: unknown;
}

interface SemanticsOptions {
  static?: unknown;
  minVersion?: string;
  allowEmpty?: boolean;
  provider?: string;
}

/** The part of ../shared/traefik/semantics/semantics.mjs (read-only, beside the repository) that tests use. */
interface SemanticsModule {
  validate(text: string, opts: SemanticsOptions): string[];
}

// Relative to the repository root, so a fresh clone with shared/ beside it (CI) resolves it too.
const SEMANTICS_URL = new URL("../../../shared/traefik/semantics/semantics.mjs", import.meta.url);
const semantics = (await import(SEMANTICS_URL.href)) as SemanticsModule;
/** traefik/traefik.yml, the static config we ship. */
export const STATIC_CONFIG = parseYaml(
  readFileSync(new URL("../../traefik/traefik.yml", import.meta.url), "utf8"),
) as unknown;

/**
 * The shipped static config plus entry points and (HTTP-01) certificate resolvers a test configures under other
 * names (ENTRYPOINT_WEB, DEFAULT_CERT_RESOLVER, …), so its rendered config can be checked against them.
 */
export function staticConfigWith(extra: { entryPoints?: string[]; resolvers?: string[] }): unknown {
  const base = structuredClone(STATIC_CONFIG) as {
    entryPoints: Record<string, unknown>;
    certificatesResolvers: Record<string, unknown>;
  };
  for (const [i, name] of (extra.entryPoints ?? []).entries()) {
    base.entryPoints[name] = { address: `:${8000 + i}` };
  }
  for (const name of extra.resolvers ?? []) {
    base.certificatesResolvers[name] = {
      acme: { storage: `/letsencrypt/${name}.json`, httpChallenge: { entryPoint: "web" } },
    };
  }
  return base;
}

/**
 * Validates a rendered dynamic config (an object, or the served JSON/YAML text) against the JSON schema and
 * Traefik v3.7.9's semantics (the decoder, the runtime build and the hazards, with our shipped static config, or
 * `opts.staticConfig`): readable problems, empty when valid.
 */
export function traefikSchemaErrors(config: unknown, opts: TraefikCheckOptions = {}): string[] {
  compiled ??= new Ajv({ allErrors: true, strict: false }).compile(traefikSchema());
  // A served body (JSON or YAML text) is checked as Traefik reads it: its bytes.
  const doc: unknown = typeof config === "string" ? parseYaml(config) : config;
  const errors = compiled(doc)
    ? []
    : (compiled.errors ?? []).map(
        (e: ErrorObject) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`,
      );
  const text = typeof config === "string" ? config : JSON.stringify(config);
  const lines = semantics.validate(text, {
    static: opts.staticConfig ?? STATIC_CONFIG,
    minVersion: "3.6.0",
    allowEmpty: opts.allowEmpty ?? false,
    provider: opts.provider ?? "http",
  });
  const accepted = opts.acceptWarnings ?? [];
  return [...errors, ...lines.filter((l) => !(l.startsWith("warn:") && accepted.some((re) => re.test(l))))];
}
