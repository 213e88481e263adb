import { domainToASCII } from "node:url";
import { z } from "zod";
import { HEALTH, HEALTH_MODES, LB_ALGOS, PROTOCOLS, REPLICA_STATUS } from "../../schema/enums.js";
import { EXPECTED_STATUS_RE } from "../health/state.js";
import { RegionName } from "../render/geo-config.js";
import { HtpasswdLine, StoredMiddlewares } from "../render/middlewares.js";
import { TrackName } from "../render/split-config.js";
import {
  checkAddressForm,
  checkDomain,
  checkDomainSyntax,
  checkId,
  checkPathPrefix,
  checkResolverName,
  traefikPathPrefix,
} from "../render/validate.js";
import { checkCaBundle } from "../tls/ca-bundle.js";
import { checkDomainPolicy } from "./domain-policy.js";

// Request and response shapes. The same zod schemas validate requests and generate /openapi.json.

/** Lower-cases, drops a trailing dot and converts IDN labels to punycode; returns "" when not convertible. */
export function normalizeDomain(raw: string): string {
  let d = raw.trim().toLowerCase();
  if (d.endsWith(".")) {
    d = d.slice(0, -1);
  }
  const wildcard = d.startsWith("*.");
  const rest = wildcard ? d.slice(2) : d;
  // domainToASCII applies UTS #46 (IDNA) mapping; anything it cannot map (or that smuggles URL syntax) fails.
  if (/[^\p{L}\p{N}\p{M}.-]/u.test(rest)) {
    return raw; // keep it as given so the error names the real value
  }
  const ascii = domainToASCII(rest);
  return ascii === "" ? raw : `${wildcard ? "*." : ""}${ascii}`;
}

/**
 * Writes escapes the way Traefik compares paths (`/caf%41` → `/cafA`, `/x%2fy` → `/x%2Fy`; see traefikPathPrefix)
 * and drops a trailing slash (except on "/") so `/api/` and `/api` are one route. An escape that cannot be
 * normalized is kept as given, so checkPathPrefix names it.
 */
export function normalizePathPrefix(raw: string): string {
  const traefik = traefikPathPrefix(raw);
  const p = "value" in traefik ? traefik.value : raw;
  return p.length > 1 && p.endsWith("/") ? p.replace(/\/+$/, "") || "/" : p;
}

const fromCheck = (check: (v: string) => string | undefined) => (v: string, ctx: z.RefinementCtx) => {
  const reason = check(v);
  if (reason) {
    ctx.addIssue({ code: "custom", message: reason });
  }
};

export const Domain = z
  .string()
  .max(1000)
  .overwrite(normalizeDomain)
  .superRefine(fromCheck((d) => checkDomain(d) ?? checkDomainPolicy(d)))
  .meta({
    description:
      "Host name, optionally `*.` + name for a one-label wildcard. IDNs are stored as punycode. Refused: a public " +
      "suffix (`co.uk`, `github.io`) or a wildcard directly under one, invalid punycode, IDNA bidi violations.",
    example: "app.example.com",
  });

/** A stored domain named in a path (delete): syntax only, so routes from before a policy change can be removed. */
export const DomainName = z.string().max(1000).overwrite(normalizeDomain).superRefine(fromCheck(checkDomainSyntax));

export const PathPrefix = z
  .string()
  .max(1100)
  .overwrite(normalizePathPrefix)
  .superRefine(fromCheck(checkPathPrefix))
  .meta({ description: "URL path prefix starting with `/`.", example: "/api" });

export const Port = z.number().int().min(1).max(65535);
export const Protocol = z.enum(PROTOCOLS).meta({ description: "`h2c` for gRPC without TLS." });
/** `least-cpu` is accepted as an alias of `least-conn` (lowest CPU usage wins). */
export const LbAlgo = z
  .enum([...LB_ALGOS, "least-cpu"])
  .transform((v) => (v === "least-cpu" ? "least-conn" : v))
  .meta({ description: "round-robin (default), least-conn (alias least-cpu: lowest CPU usage), ip-hash." });
export const ResolverName = z.string().superRefine(fromCheck(checkResolverName));

export const DeploymentId = z.string().superRefine(fromCheck(checkId)).meta({ example: "dep_abc123" });
export const LocationId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, "1–128 of letters, digits, '_', '.', ':' and '-'")
  .meta({ example: "loc_node1_web_1" });
const Label = z
  .string()
  .max(253)
  .regex(/^[^\p{Cc}]*$/u, "no control characters");

export const CreateDeploymentBody = z.strictObject({
  id: DeploymentId.optional(),
  name: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .regex(/^[^\p{Cc}]*$/u, "no control characters"),
});
export type CreateDeploymentBody = z.infer<typeof CreateDeploymentBody>;

const SslEnabled = z.boolean().optional().meta({
  description: "Omitted on a new route: false for reserved names (.localhost, .test, .internal, .local), else true.",
});

export const PutRoutingBody = z.strictObject({
  domain: Domain.optional(),
  path_prefix: PathPrefix.optional(),
  target_port: Port.optional(),
  protocol: Protocol.optional(),
  load_balancer_algo: LbAlgo.optional(),
  ssl_enabled: SslEnabled,
  ssl_cert_resolver: ResolverName.optional(),
  tls_include_apex: z.boolean().optional().meta({ description: "Wildcard domains: also request the apex as a SAN." }),
});
export type PutRoutingBody = z.infer<typeof PutRoutingBody>;

export const AddDomainBody = z.strictObject({
  domain: Domain,
  path_prefix: PathPrefix.default("/"),
  target_port: Port.optional(),
  ssl_enabled: SslEnabled,
  ssl_cert_resolver: ResolverName.optional(),
  tls_include_apex: z.boolean().optional(),
});
export type AddDomainBody = z.infer<typeof AddDomainBody>;

export const PutLocationBody = z.strictObject({
  node_id: Label.optional(),
  node_hostname: Label.optional(),
  address: z
    .string()
    .superRefine(fromCheck(checkAddressForm))
    .meta({
      description:
        "IPv4 (dotted quad), IPv6 (no brackets) or DNS name. Link-local, cloud metadata, unspecified, multicast and " +
        "broadcast addresses are refused unless REPLICA_ALLOWED_CIDRS covers them. A new address (or port) is a " +
        "new endpoint: its health starts over and a drain of the old one ends.",
      example: "10.0.1.7",
    }),
  port: Port.nullable().optional(),
  container_id: Label.optional(),
  status: z.enum(REPLICA_STATUS).default("running"),
  cpu_usage: z.number().min(0).max(100).nullable().optional(),
  track: TrackName.optional().meta({
    description:
      "Traffic-split pool (default `stable`). Without a split only `stable` replicas get traffic; `PUT …/split` " +
      "weighs tracks against each other. Omitted on update: unchanged.",
    example: "canary",
  }),
  region: RegionName.nullable().optional().meta({
    description: "Geographic region for geo routing (`PUT …/geo`); null: none. Omitted on update: unchanged.",
    example: "eu",
  }),
});
export type PutLocationBody = z.infer<typeof PutLocationBody>;

// ── Path parameters ──────────────────────────────────────────────────────────────────────────────

export const DeploymentParams = z.object({ id: DeploymentId });
export const LocationParams = z.object({ id: DeploymentId, location_id: LocationId });
export const DomainParams = z.object({ id: DeploymentId, domain: DomainName });
/** Certificate ids are looked up as given: an unknown one is a 404. */
export const CertificateParams = z.object({ id: z.string() });

// ── Queries ──────────────────────────────────────────────────────────────────────────────────────

export const PageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  after: z.string().max(64).optional(),
});

/** GET /api/v1/deployments: keyset paging plus an optional search on id and name. */
export const DeploymentsQuery = PageQuery.extend({
  q: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[^\p{Cc}]*$/u, "no control characters")
    .optional()
    .meta({
      description:
        "Only deployments whose id or name contains this text (case-insensitive, taken literally: `%` and `_` " +
        "are not wildcards). Combines with `after` and `limit`.",
      example: "shop",
    }),
});

/** `Name: value`, a header line /routing/resolve takes into account. */
const ResolveHeader = z
  .string()
  .max(8192)
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\x20-\x7E\t]*$/, "a header line `Name: value` (printable ASCII)");

export const ResolveQuery = z.strictObject({
  host: z.string().min(1).max(1000),
  path: z.string().max(8192).default("/"),
  scheme: z
    .enum(["http", "https"])
    .default("http")
    .meta({ description: "The request's scheme: the web (http) or websecure (https) entry point." }),
  header: z
    .union([ResolveHeader, z.array(ResolveHeader).max(50)])
    .optional()
    .meta({
      description:
        "A request header as `Name: value` (repeatable): decides A/B rules of a traffic split. The query string " +
        "goes in `path` (`/x?variant=b`).",
      example: "X-Variant: b",
    }),
  cookie: z
    .string()
    .max(8192)
    .optional()
    .meta({ description: "The request's Cookie header value (`ab=b; other=1`): decides cookie A/B rules." }),
  country: z
    .string()
    .regex(/^[A-Za-z]{2}$/, "an ISO 3166-1 alpha-2 code")
    .optional()
    .meta({ description: "The client's country (as the geo header would carry it) for geographic routing." }),
});

export const DeleteDomainQuery = z.strictObject({ path_prefix: PathPrefix.optional() });
export const VerifyDomainQuery = z.strictObject({
  path_prefix: PathPrefix.optional().meta({ description: "Verify this path's route only (default: every path)." }),
});

// ── Responses ────────────────────────────────────────────────────────────────────────────────────

export const DeploymentView = z.object({
  id: z.string(),
  name: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type DeploymentView = z.infer<typeof DeploymentView>;

export const TxtRecord = z.object({ type: z.literal("TXT"), name: z.string(), value: z.string() });

/** A route's domain ownership (DOMAIN_VERIFICATION): pending routes are not routed until their TXT record is seen. */
export const VerificationView = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("verified"),
    verified_at: z
      .string()
      .nullable()
      .meta({ description: "When ownership was proven; null when no proof was needed." }),
  }),
  z.object({
    status: z.literal("pending"),
    token: z.string(),
    expires_at: z.string().meta({ description: "The route is removed unless verified by then." }),
    next_check_at: z.string().nullable().meta({ description: "The background re-check." }),
    attempts: z.number(),
    record: TxtRecord.meta({ description: "The TXT record to create: `_obiente-challenge.<domain>` = token." }),
  }),
]);
export type VerificationView = z.infer<typeof VerificationView>;

export const RouteView = z.object({
  id: z.string(),
  deployment_id: z.string(),
  domain: z.string(),
  path_prefix: z.string(),
  target_port: z.number(),
  protocol: Protocol,
  load_balancer_algo: z.enum(LB_ALGOS),
  ssl_enabled: z.boolean(),
  ssl_cert_resolver: z.string(),
  tls_include_apex: z.boolean(),
  is_primary: z.boolean(),
  verification: VerificationView,
  created_at: z.string(),
  updated_at: z.string(),
});
export type RouteView = z.infer<typeof RouteView>;

export const RoutingView = z.object({
  deployment_id: z.string(),
  domain: z.string().nullable(),
  path_prefix: z.string().nullable(),
  target_port: z.number().nullable(),
  protocol: Protocol.nullable(),
  load_balancer_algo: z.enum(LB_ALGOS).nullable(),
  ssl_enabled: z.boolean().nullable(),
  ssl_cert_resolver: z.string().nullable(),
  domains: z.array(RouteView),
});
export type RoutingView = z.infer<typeof RoutingView>;

export const DnsRecord = z.object({
  type: z.enum(["A", "AAAA", "CNAME", "ALIAS", "TXT"]),
  name: z.string(),
  value: z.string(),
});
export type DnsRecord = z.infer<typeof DnsRecord>;

export const LocationView = z.object({
  id: z.string(),
  deployment_id: z.string(),
  node_id: z.string(),
  node_hostname: z.string(),
  address: z.string(),
  port: z.number().nullable(),
  container_id: z.string(),
  status: z.enum(REPLICA_STATUS),
  health_status: z.enum(HEALTH),
  track: z.string(),
  region: z.string().nullable(),
  // Optional only in the type (views.ts builds the row part); every location response carries all three.
  draining: z
    .boolean()
    .optional()
    .meta({
      description:
        "Draining (`POST …/drain`): out of the rendered servers and the fallback proxy's choice, its in-flight " +
        "requests finishing; true until the drain period ends.",
    }),
  drain_until: z
    .string()
    .nullable()
    .meta({ description: "End of the drain period (null: not draining); after it the replica may be stopped." }),
  drained: z.boolean().optional().meta({
    description: "The drain period is over: the replica gets no traffic and counts as removed (`replica.drained`).",
  }),
  cpu_usage: z.number().nullable(),
  consecutive_successes: z.number(),
  consecutive_failures: z.number(),
  last_check_at: z.string().nullable(),
  last_error: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type LocationView = z.infer<typeof LocationView>;

/** POST …/locations/:location_id/drain. */
export const DrainBody = z.strictObject({
  seconds: z.number().int().min(1).max(3600).default(30).meta({
    description:
      "How long in-flight requests get to finish (1–3600, default 30). Draining again sets a new end from now.",
    example: 30,
  }),
  force: z.boolean().default(false).meta({
    description: "Drain even the last healthy replica of its track (its route then answers 503).",
  }),
});
export type DrainBody = z.infer<typeof DrainBody>;

/** RFC 9457 problem details, the body of every error; extra members (e.g. `owner`) may follow. */
export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number(),
    detail: z.string().optional(),
    instance: z.string(),
    code: z.string(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ location: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: "Problem" });

export const ReportFailureBody = z.strictObject({
  reason: z
    .string()
    .max(200)
    .regex(/^[^\p{Cc}]*$/u, "no control characters")
    .optional()
    .meta({ description: "What failed, e.g. `connect ECONNREFUSED` or `HTTP 502 from upstream`." }),
});

/** A DNS name (or IPv4 literal) for TLS verification of a replica: letters, digits, hyphens, dots. */
const SERVER_NAME_RE = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

export const HealthCheckBody = z.strictObject({
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*$/, "must be a URL path")
    .max(1024)
    .nullable()
    .optional(),
  interval_seconds: z.number().int().min(1).max(86_400).nullable().optional(),
  timeout_seconds: z.number().int().min(1).max(120).nullable().optional(),
  expected_status: z
    .string()
    .max(100)
    .regex(EXPECTED_STATUS_RE, "like 2xx, 204, 200-399 or a comma list")
    .nullable()
    .optional(),
  mode: z.enum(HEALTH_MODES).nullable().optional().meta({
    description: "`grpc` (grpc.health.v1.Health/Check) or `http` (GET of path); null = grpc for h2c, else http",
  }),
  tls: z
    .strictObject({
      server_name: z
        .string()
        .trim()
        .toLowerCase()
        .regex(
          SERVER_NAME_RE,
          "a DNS name like api.internal: the SNI and the name the replica's certificate must carry",
        )
        .nullable()
        .optional(),
      ca_pem: z
        .string()
        .max(256 * 1024)
        .superRefine((v, ctx) => {
          const why = checkCaBundle(v);
          if (why) {
            ctx.addIssue({ code: "custom", message: `invalid CA bundle: ${why}` });
          }
        })
        .nullable()
        .optional()
        .meta({ description: "PEM CA certificates trusted instead of the system roots" }),
      insecure_skip_verify: z
        .boolean()
        .nullable()
        .optional()
        .meta({ description: "skip certificate verification (explicit opt-out; not with ca_pem)" }),
    })
    .nullable()
    .optional()
    .meta({ description: "How https replicas' certificates are verified; null clears it (system roots)" }),
});

export const HealthCheckView = z.object({
  path: z.string(),
  interval_seconds: z.number(),
  timeout_seconds: z.number(),
  expected_status: z.string(),
  mode: z.enum(HEALTH_MODES).nullable(),
  tls: z.object({
    server_name: z.string().nullable(),
    ca_pem: z.string().nullable(),
    insecure_skip_verify: z.boolean(),
  }),
  overrides: z.array(z.string()),
});
export type HealthCheckView = z.infer<typeof HealthCheckView>;

export const HealthEventView = z.object({
  location_id: z.string(),
  from: z.enum(HEALTH),
  to: z.enum(HEALTH),
  at: z.string(),
  reason: z.string(),
  source: z.string(),
});
export type HealthEventView = z.infer<typeof HealthEventView>;

export const EventsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) });

export const UploadCertificateBody = z.strictObject({
  cert_pem: z.string().min(1).max(200_000).meta({ description: "Leaf certificate first, then the chain (PEM)." }),
  key_pem: z.string().min(1).max(50_000).meta({ description: "Unencrypted private key (PEM); stored encrypted." }),
});

export const CertificateView = z.object({
  id: z.string(),
  subject: z.string(),
  issuer: z.string(),
  sans: z.array(z.string()),
  not_before: z.string(),
  not_after: z.string(),
  fingerprint_sha256: z.string(),
  expires_in_days: z.number(),
  expiring_soon: z.boolean(),
  used_by: z.array(z.object({ route_id: z.string(), deployment_id: z.string(), domain: z.string() })),
  created_at: z.string(),
});
export type CertificateView = z.infer<typeof CertificateView>;

const BasicAuthUser = z.strictObject({
  username: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, "1–64 of letters, digits, '.', '_', '@', '-'"),
  password: z.string().min(1).max(256),
});

/** Input of PUT …/middlewares: like the stored form, but basic-auth users come with passwords (hashed on arrival). */
export const MiddlewaresBody = StoredMiddlewares.extend({
  basic_auth: z
    .strictObject({
      users: z.array(BasicAuthUser).max(100).default([]),
      htpasswd: z.array(HtpasswdLine).max(100).default([]),
      realm: z
        .string()
        .min(1)
        .max(64)
        .regex(/^[\x20-\x21\x23-\x7E]*$/, "printable ASCII, no quotes")
        .refine((s) => !s.includes("{{"), "must not contain {{")
        .optional(),
      remove_header: z.boolean().default(true),
    })
    .refine((b) => b.users.length + b.htpasswd.length > 0, "give users or htpasswd lines")
    .refine((b) => {
      const names = [...b.users.map((u) => u.username), ...b.htpasswd.map((l) => l.split(":")[0])];
      return new Set(names).size === names.length;
    }, "each user name may appear only once")
    .optional(),
});
export type MiddlewaresBody = z.infer<typeof MiddlewaresBody>;

// ── Response composites ──────────────────────────────────────────────────────────────────────────

export const Items = <S extends z.ZodType>(item: S) => z.object({ items: z.array(item) });
export const Paged = <S extends z.ZodType>(item: S) =>
  z.object({ items: z.array(item), next_cursor: z.string().nullable() });

/** Present only when the domain was accepted but may imitate another name (mixed scripts in one IDN label). */
const Warnings = z.array(z.string()).optional();

export const RoutingChangeView = RoutingView.extend({ warnings: Warnings });
export const DomainWithDnsView = RouteView.extend({ dns_records: z.array(DnsRecord) });
export const AddedDomainView = z.object({
  route: RouteView,
  verification: VerificationView,
  dns_records: z.array(DnsRecord).meta({ description: "Routing records, and the ownership TXT record while pending." }),
  warnings: Warnings,
});
export const VerifiedDomainView = z.object({
  domain: z.string(),
  verification: VerificationView.meta({ description: "verified once every route of the domain asked about is" }),
  routes: z.array(RouteView),
});

export const FailureReportView = z.object({
  location_id: z.string(),
  health_status: z.enum(HEALTH),
  collapsed: z.boolean().meta({ description: "Folded into a report less than 1 s old." }),
  transition: z.boolean().meta({ description: "The report changed the replica's health." }),
});

/** Middleware settings as stored, basic-auth users as names only, plus the fixed chain order. */
export const MiddlewaresView = z.looseObject({ chain_order: z.array(z.string()) });

export const HealthzView = z.object({ status: z.literal("ok") });
export const ReadyzView = z.object({
  status: z.enum(["ready", "not-ready"]),
  stale: z.boolean(),
  revision: z.number().nullable(),
});
export const IndexView = z.object({
  name: z.string(),
  version: z.string(),
  description: z.string(),
  links: z.record(z.string(), z.string()),
});

/** What is served, to whom (the fields clients read first; see the README for the rest). */
export const StatsView = z.looseObject({
  total_routes: z.number(),
  cached_proxies: z.number(),
  timestamp: z.string(),
  config: z.looseObject({ revision: z.number(), hash: z.string() }).nullable(),
  pollers: z.array(z.looseObject({ node: z.string(), serving_current: z.boolean() })),
});

/** Which route answers scheme + host + path, what Traefik does with the request, and why. */
export const ResolutionView = z.looseObject({
  host: z.string(),
  path: z.string(),
  scheme: z.enum(["http", "https"]),
  matched: z.boolean(),
  outcome: z.number().meta({ description: "The status Traefik answers (a redirect, 404, 503, or 200)." }),
  reason: z.string(),
  candidates: z.array(z.looseObject({ route_id: z.string(), priority: z.number() })),
  traffic: z
    .object({
      kind: z.enum(["split", "geo"]),
      via: z
        .enum(["rule", "weighted", "region", "none"])
        .meta({ description: "An A/B rule's router, the weighted split, a geo region's router, or none (503)." }),
      router: z.string().meta({ description: "The router that takes the request (also `router` above)." }),
      service: z.string(),
      track: z.string().nullable().meta({ description: "The track an A/B rule picks; null for a weighted pick." }),
      rule_index: z.number().int().nullable(),
      weights: z
        .array(z.object({ track: z.string(), weight: z.number().int(), percent: z.number() }))
        .meta({ description: "The weighted split now: tracks with a healthy replica and their share." }),
      sticky: z.boolean(),
      mirror: z
        .object({ track: z.string(), percent: z.number().int(), max_body_bytes: z.number().int() })
        .nullable()
        .meta({ description: "Shadow copies (responses discarded); bigger request bodies are not mirrored." }),
      geo: z
        .object({ mapped: z.string(), served: z.string().nullable(), reason: z.string() })
        .optional()
        .meta({ description: "Geographic routing: the region the country maps to and the region serving it." }),
      reason: z.string(),
    })
    .optional()
    .meta({ description: "How the deployment's traffic split or geo routing handles this request (when it has one)." }),
});
