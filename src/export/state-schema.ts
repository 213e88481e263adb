import { z } from "zod";
import {
  CreateDeploymentBody,
  DeploymentId,
  Domain,
  HealthCheckBody,
  LbAlgo,
  PathPrefix,
  Port,
  Protocol,
  ResolverName,
} from "../api/schemas.js";
import type { FieldError } from "../lib/problem.js";
import { StoredGeo } from "../render/geo-config.js";
import { IP_DEPTH_NEEDS_TRUSTED_PROXIES, StoredMiddlewares } from "../render/middlewares.js";
import { defaultSslEnabled } from "../render/reserved.js";
import { StoredResilience } from "../render/resilience-config.js";
import { StoredSplit } from "../render/split-config.js";

// The declarative routing state document (issue 12 §2): every field is validated by the same zod pieces the API
// uses (src/api/schemas.ts, src/render/middlewares.ts), so a file can hold nothing the API would refuse.

export const STATE_VERSION = 1;

export const StateRoute = z
  .strictObject({
    domain: Domain,
    path_prefix: PathPrefix.default("/"),
    ssl_enabled: z.boolean().optional().meta({
      description: "Omitted: false for reserved names (`.localhost`, `.test`, `.internal`, `.local`), else true.",
    }),
    ssl_cert_resolver: ResolverName.optional().meta({
      description: "Omitted: DEFAULT_CERT_RESOLVER (DEFAULT_WILDCARD_CERT_RESOLVER for `*.` domains).",
    }),
    tls_include_apex: z.boolean().default(false),
    target_port: Port.optional().meta({ description: "Only where it differs from routing.target_port." }),
  })
  // The default depends on the (normalized) domain, so it is filled here rather than by `.default()`.
  .transform(({ domain, path_prefix, ssl_enabled, ...rest }) => ({
    domain,
    path_prefix,
    ssl_enabled: ssl_enabled ?? defaultSslEnabled(domain),
    ...rest,
  }));
export type StateRoute = z.infer<typeof StateRoute>;

export const StateRouting = z.strictObject({
  target_port: Port,
  protocol: Protocol.default("http"),
  load_balancer_algo: LbAlgo.default("round-robin"),
  domains: z
    .array(StateRoute)
    .min(1)
    .meta({ description: "The primary route first (the one GET …/routing shows), then the others." }),
});
export type StateRouting = z.infer<typeof StateRouting>;

export const StateDeployment = z.strictObject({
  id: DeploymentId,
  name: CreateDeploymentBody.shape.name,
  routing: StateRouting.optional().meta({ description: "Omitted when the deployment has no route." }),
  health_check: HealthCheckBody.optional().meta({
    description: "Only the overrides; omitted fields use the defaults.",
  }),
  middlewares: StoredMiddlewares.optional().meta({
    description: "As stored: basic-auth users as htpasswd lines (bcrypt, apr1 or {SHA} hashes), never passwords.",
  }),
  split: StoredSplit.optional().meta({
    description: "Canary / A-B split, as PUT …/split takes it. A running rollout moves its track's weight.",
  }),
  geo: StoredGeo.optional().meta({ description: "Geographic routing, as PUT …/geo takes it (not with `split`)." }),
  resilience: StoredResilience.optional().meta({ description: "Retry, circuit breaker, limits, as PUT …/resilience." }),
});
export type StateDeployment = z.infer<typeof StateDeployment>;

export const StateCertificate = z.strictObject({
  fingerprint_sha256: z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^[0-9a-f]{64}$/, "64 hex digits (the SHA-256 of the DER certificate)"),
  sans: z.array(z.string().max(1000)).max(1000).optional().meta({ description: "For the reader; not compared." }),
});

export const StateDocument = z
  .strictObject({
    version: z.literal(STATE_VERSION),
    deployments: z.array(StateDeployment).default([]),
    certificates: z
      .array(StateCertificate)
      .default([])
      .meta({ description: "Uploaded certificates, by reference only (upload with POST /api/v1/certificates)." }),
  })
  .meta({ title: "obiente-router routing state" });
export type StateDocument = z.infer<typeof StateDocument>;

/** The JSON Schema editors validate state files with (published at GET /api/v1/state/schema). */
export function stateJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(StateDocument, { io: "input", unrepresentable: "any", target: "draft-2020-12" }) as Record<
    string,
    unknown
  >;
}

export interface ValidateOptions {
  /** TRUSTED_PROXY_CIDRS: without it, ip_depth > 0 is refused (as PUT …/middlewares does). */
  trustedProxies: readonly string[];
}

/** Location of a zod path: `deployments[3].routing.domains[1].domain`. */
export function locationOf(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    out += typeof seg === "number" ? `[${seg}]` : out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out || "(document)";
}

/**
 * Validates a parsed document (JSON or YAML): the field schemas, then what spans entries (a deployment id, a
 * host + path or a certificate twice) and the checks PUT …/health-check and …/middlewares make.
 */
export function validateState(
  raw: unknown,
  opts: ValidateOptions,
): { ok: true; doc: StateDocument } | { ok: false; errors: FieldError[] } {
  const r = StateDocument.safeParse(raw);
  if (!r.success) {
    return {
      ok: false,
      errors: r.error.issues.map((i) => ({
        location: locationOf(i.path),
        message: i.code === "unrecognized_keys" ? `unknown field(s): ${i.keys.join(", ")}` : i.message,
      })),
    };
  }
  const doc = r.data;
  const errors: FieldError[] = [];
  const seenIds = new Map<string, number>();
  const seenRoutes = new Map<string, string>();
  doc.deployments.forEach((d, i) => {
    const at = `deployments[${i}]`;
    const first = seenIds.get(d.id);
    if (first !== undefined) {
      errors.push({ location: `${at}.id`, message: `${d.id} is listed twice (also deployments[${first}])` });
    } else {
      seenIds.set(d.id, i);
    }
    d.routing?.domains.forEach((route, j) => {
      const where = `${at}.routing.domains[${j}]`;
      const key = `${route.domain} ${route.path_prefix}`;
      const other = seenRoutes.get(key);
      if (other !== undefined) {
        errors.push({
          location: `${where}.domain`,
          message: `${route.domain} on path ${route.path_prefix} is listed twice (also ${other})`,
        });
      } else {
        seenRoutes.set(key, where);
      }
    });
    const tls = d.health_check?.tls;
    if (tls?.insecure_skip_verify && typeof tls.ca_pem === "string") {
      errors.push({
        location: `${at}.health_check.tls.insecure_skip_verify`,
        message:
          "insecure_skip_verify cannot be combined with a CA bundle: verify against ca_pem, or skip verification, not both",
      });
    }
    if (d.split && d.geo) {
      errors.push({ location: `${at}.geo`, message: "a deployment has either a split or geo routing, not both" });
    }
    if ((d.split || d.geo) && d.routing?.load_balancer_algo === "least-conn") {
      errors.push({
        location: `${at}.${d.split ? "split" : "geo"}`,
        message:
          "least-conn deployments are balanced by the fallback proxy, which knows no tracks or regions: use round-robin or ip-hash",
      });
    }
    if (opts.trustedProxies.length === 0) {
      for (const kind of ["ip_allow_list", "rate_limit"] as const) {
        if ((d.middlewares?.[kind]?.ip_depth ?? 0) > 0) {
          errors.push({ location: `${at}.middlewares.${kind}.ip_depth`, message: IP_DEPTH_NEEDS_TRUSTED_PROXIES });
        }
      }
    }
  });
  const seenCerts = new Map<string, number>();
  doc.certificates.forEach((c, i) => {
    const first = seenCerts.get(c.fingerprint_sha256);
    if (first !== undefined) {
      errors.push({
        location: `certificates[${i}].fingerprint_sha256`,
        message: `listed twice (also certificates[${first}])`,
      });
    } else {
      seenCerts.set(c.fingerprint_sha256, i);
    }
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, doc };
}
