import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  real,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import {
  DOMAIN_VERIFICATION_STATES,
  type DomainVerificationState,
  HEALTH,
  HEALTH_MODES,
  type Health,
  type HealthMode,
  LB_ALGOS,
  type LbAlgo,
  PROTOCOLS,
  type Protocol,
  REPLICA_STATUS,
} from "./enums.js";

const timestamps = {
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
};

const inList = (values: readonly string[]) => sql.raw(values.map((v) => `'${v}'`).join(", "));

export const deployments = pgTable(
  "deployments",
  {
    id: text("id").primaryKey(), // dep_abc123
    name: text("name").notNull(),
    // Health-check overrides; null means the service-wide default (HEALTH_* settings).
    healthPath: text("health_path"),
    healthIntervalSeconds: integer("health_interval_seconds"),
    healthTimeoutSeconds: integer("health_timeout_seconds"),
    /** `2xx` (default), a code (`204`), a range (`200-399`) or a comma list of those. */
    healthExpectedStatus: text("health_expected_status"),
    /** How replicas are probed: `grpc` (grpc.health.v1) or `http` (GET of the path); null = grpc for h2c, else http. */
    healthMode: text("health_mode", { enum: HEALTH_MODES }).$type<HealthMode>(),
    // How `https` replicas' certificates are verified, by our probes and by Traefik's serversTransport.
    /** SNI and the name the certificate must carry; null = the replica address. */
    backendTlsServerName: text("backend_tls_server_name"),
    /** PEM bundle of CA certificates trusted instead of the system roots; null = system roots. */
    backendTlsCaPem: text("backend_tls_ca_pem"),
    /** Explicit opt-out of certificate verification; never the default. */
    backendTlsInsecureSkipVerify: boolean("backend_tls_insecure_skip_verify").notNull().default(false),
    ...timestamps,
  },
  (t) => [
    check("deployments_health_mode_ck", sql`${t.healthMode} is null or ${t.healthMode} in (${inList(HEALTH_MODES)})`),
  ],
);

/** One row per (domain, path_prefix); that pair is unique across all deployments. */
export const deploymentRouting = pgTable(
  "deployment_routing",
  {
    id: text("id").primaryKey(), // rt_…, stable: Traefik names derive from it
    deploymentId: text("deployment_id")
      .notNull()
      .references(() => deployments.id, { onDelete: "cascade" }),
    domain: text("domain").notNull(),
    pathPrefix: text("path_prefix").notNull().default("/"),
    targetPort: integer("target_port").notNull(),
    protocol: text("protocol", { enum: PROTOCOLS }).$type<Protocol>().notNull().default("http"),
    loadBalancerAlgo: text("load_balancer_algo", { enum: LB_ALGOS }).$type<LbAlgo>().notNull().default("round-robin"),
    sslEnabled: boolean("ssl_enabled").notNull().default(true),
    sslCertResolver: text("ssl_cert_resolver").notNull().default("letsencrypt"),
    /** Wildcard routes only: also ask the resolver for the apex (`app.example.com`) as a SAN. */
    tlsIncludeApex: boolean("tls_include_apex").notNull().default(false),
    /** The route `GET/PUT …/routing` shows and edits; at most one per deployment. */
    isPrimary: boolean("is_primary").notNull().default(false),
    /**
     * Domain ownership (DOMAIN_VERIFICATION=required): a `pending` route is never rendered and claims nothing; it
     * turns `verified` once `TXT _obiente-challenge.<domain>` holds its token. Routes predating the setting, and
     * domains under PLATFORM_DOMAINS, are `verified`.
     */
    verification: text("verification", { enum: DOMAIN_VERIFICATION_STATES })
      .$type<DomainVerificationState>()
      .notNull()
      .default("verified"),
    verificationToken: text("verification_token"),
    /** A pending route is removed after this (DOMAIN_VERIFICATION_TTL_HOURS from its creation). */
    verificationExpiresAt: timestamp("verification_expires_at", { withTimezone: true }),
    /** When the background job looks the TXT record up again (backoff). */
    verificationNextCheckAt: timestamp("verification_next_check_at", { withTimezone: true }),
    verificationAttempts: integer("verification_attempts").notNull().default(0),
    verifiedAt: timestamp("verified_at", { withTimezone: true }),
    ...timestamps,
  },
  (t) => [
    // Only verified routes claim their (domain, path): several tenants may wait on the same pending name, and the
    // first to prove ownership gets it. One deployment holds a (domain, path) once, pending or not.
    uniqueIndex("deployment_routing_domain_path_uq")
      .on(t.domain, t.pathPrefix)
      .where(sql`${t.verification} = 'verified'`),
    uniqueIndex("deployment_routing_deployment_domain_path_uq").on(t.deploymentId, t.domain, t.pathPrefix),
    uniqueIndex("deployment_routing_primary_uq").on(t.deploymentId).where(sql`${t.isPrimary}`),
    index("deployment_routing_deployment_idx").on(t.deploymentId),
    check("deployment_routing_port_ck", sql`${t.targetPort} between 1 and 65535`),
    check("deployment_routing_protocol_ck", sql`${t.protocol} in (${inList(PROTOCOLS)})`),
    check("deployment_routing_algo_ck", sql`${t.loadBalancerAlgo} in (${inList(LB_ALGOS)})`),
    check("deployment_routing_verification_ck", sql`${t.verification} in (${inList(DOMAIN_VERIFICATION_STATES)})`),
    index("deployment_routing_pending_idx").on(t.verificationNextCheckAt).where(sql`${t.verification} = 'pending'`),
  ],
);

/** One row per replica (container) of a deployment. */
export const deploymentLocations = pgTable(
  "deployment_locations",
  {
    id: text("id").primaryKey(), // chosen by the orchestrator
    deploymentId: text("deployment_id")
      .notNull()
      .references(() => deployments.id, { onDelete: "cascade" }),
    nodeId: text("node_id").notNull().default(""),
    nodeHostname: text("node_hostname").notNull().default(""),
    address: text("address").notNull(),
    /** Reachable port; null means "the route's target_port". */
    port: integer("port"),
    containerId: text("container_id").notNull().default(""),
    status: text("status", { enum: REPLICA_STATUS }).notNull().default("running"),
    healthStatus: text("health_status", { enum: HEALTH }).$type<Health>().notNull().default("unknown"),
    cpuUsage: real("cpu_usage"),
    cpuUpdatedAt: timestamp("cpu_updated_at", { withTimezone: true }),
    consecutiveSuccesses: integer("consecutive_successes").notNull().default(0),
    consecutiveFailures: integer("consecutive_failures").notNull().default(0),
    lastCheckAt: timestamp("last_check_at", { withTimezone: true }),
    lastError: text("last_error"),
    /** When the next active probe is due; null = at once (new or moved replica). */
    nextProbeAt: timestamp("next_probe_at", { withTimezone: true }),
    /** A checker instance holds the replica's probe until then (lease; see src/health/checker.ts). */
    probeLeaseUntil: timestamp("probe_lease_until", { withTimezone: true }),
    probeLeaseOwner: text("probe_lease_owner"),
    lastFailureReportAt: timestamp("last_failure_report_at", { withTimezone: true }),
    /** Traffic-split pool (`stable`, `canary`, `v2`, …): without a split only `stable` replicas get traffic. */
    track: text("track").notNull().default("stable"),
    /** Geographic region (`eu`, `us-east`, …) for geo routing; null = none. */
    region: text("region"),
    /** Draining: no new requests from this instant; null = not draining. */
    drainStartedAt: timestamp("drain_started_at", { withTimezone: true }),
    /** End of the drain period: after it the replica counts as removed (the orchestrator may stop it). */
    drainUntil: timestamp("drain_until", { withTimezone: true }),
    /** When the "drained" event was written (once per drain). */
    drainedAt: timestamp("drained_at", { withTimezone: true }),
    ...timestamps,
  },
  (t) => [
    index("deployment_locations_deployment_idx").on(t.deploymentId),
    check("deployment_locations_track_ck", sql`${t.track} ~ '^[a-z0-9][a-z0-9-]{0,31}$'`),
    check("deployment_locations_region_ck", sql`${t.region} is null or ${t.region} ~ '^[a-z0-9][a-z0-9-]{0,31}$'`),
    index("deployment_locations_due_idx").on(t.nextProbeAt),
    check("deployment_locations_port_ck", sql`${t.port} is null or ${t.port} between 1 and 65535`),
    check("deployment_locations_health_ck", sql`${t.healthStatus} in (${inList(HEALTH)})`),
    check("deployment_locations_status_ck", sql`${t.status} in (${inList(REPLICA_STATUS)})`),
  ],
);

/** Every health transition of a replica, newest last: the first thing an operator reads on a 502/503. */
export const locationHealthEvents = pgTable(
  "location_health_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    locationId: text("location_id")
      .notNull()
      .references(() => deploymentLocations.id, { onDelete: "cascade" }),
    deploymentId: text("deployment_id").notNull(),
    fromStatus: text("from_status", { enum: HEALTH }).$type<Health>().notNull(),
    toStatus: text("to_status", { enum: HEALTH }).$type<Health>().notNull(),
    at: timestamp("at", { withTimezone: true }).notNull(),
    reason: text("reason").notNull(),
    source: text("source", { enum: ["probe", "report", "registration"] }).notNull(),
  },
  (t) => [index("location_health_events_location_idx").on(t.locationId, t.at)],
);

/** Certificates customers upload for their own domains. The key is AES-256-GCM encrypted (see src/tls/crypto.ts). */
export const certificates = pgTable(
  "certificates",
  {
    id: text("id").primaryKey(), // crt_…
    certPem: text("cert_pem").notNull(), // leaf first, then the chain
    keyEncrypted: text("key_encrypted").notNull(), // v1:<key id>:<iv>:<tag>:<ciphertext>, base64url parts
    subject: text("subject").notNull(),
    issuer: text("issuer").notNull(),
    sans: jsonb("sans").$type<string[]>().notNull(),
    notBefore: timestamp("not_before", { withTimezone: true }).notNull(),
    notAfter: timestamp("not_after", { withTimezone: true }).notNull(),
    fingerprintSha256: text("fingerprint_sha256").notNull(),
    ...timestamps,
  },
  (t) => [uniqueIndex("certificates_fingerprint_uq").on(t.fingerprintSha256)],
);

/** Per-deployment middleware settings, validated by the API (src/api/middleware-schemas.ts) and again at render. */
export const deploymentMiddlewares = pgTable("deployment_middlewares", {
  deploymentId: text("deployment_id")
    .primaryKey()
    .references(() => deployments.id, { onDelete: "cascade" }),
  config: jsonb("config").$type<Record<string, unknown>>().notNull(),
  ...timestamps,
});

/**
 * Per-deployment traffic management (unvalidated JSON, as stored by the API; render validates it again):
 * `split` (canary/A-B weights, request rules, mirror), `geo` (country → region routing), `resilience` (retry,
 * circuit breaker, in-flight limit, timeouts, passive health). Null = not configured.
 */
export const deploymentTraffic = pgTable("deployment_traffic", {
  deploymentId: text("deployment_id")
    .primaryKey()
    .references(() => deployments.id, { onDelete: "cascade" }),
  split: jsonb("split").$type<Record<string, unknown>>(),
  geo: jsonb("geo").$type<Record<string, unknown>>(),
  resilience: jsonb("resilience").$type<Record<string, unknown>>(),
  ...timestamps,
});

/** A progressive rollout of one track (src/rollout/): its schedule, state and history; leased to one instance. */
export const deploymentRollouts = pgTable(
  "deployment_rollouts",
  {
    deploymentId: text("deployment_id")
      .primaryKey()
      .references(() => deployments.id, { onDelete: "cascade" }),
    track: text("track").notNull(),
    steps: jsonb("steps").$type<number[]>().notNull(),
    intervalSeconds: integer("interval_seconds").notNull(),
    abortWhen: jsonb("abort_when").$type<Record<string, unknown>>().notNull(),
    /** running | paused | aborted | promoted */
    state: text("state").notNull(),
    stepIndex: integer("step_index").notNull().default(0),
    nextStepAt: timestamp("next_step_at", { withTimezone: true }),
    history: jsonb("history").$type<Record<string, unknown>[]>().notNull(),
    leaseOwner: text("lease_owner"),
    leaseUntil: timestamp("lease_until", { withTimezone: true }),
    ...timestamps,
  },
  (t) => [index("deployment_rollouts_due_idx").on(t.nextStepAt)],
);

/** Raw bytes (`bytea`): a revision's gzipped config. */
const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => "bytea",
  fromDriver: (v) => (Buffer.isBuffer(v) ? v : Buffer.from(v)),
});

/**
 * Every distinct config rendered by any instance, shared by all of them: the number is the durable
 * `X-Config-Revision`, unique on the sha256 of the bytes (two instances rendering the same bytes share one row;
 * bytes seen before keep their number). Rendered is not always served: the guard holds a mass removal, a freeze
 * pins an older revision; `first_served_at` says whether and when it was.
 */
export const configRevisions = pgTable(
  "config_revisions",
  {
    revision: bigserial("revision", { mode: "number" }).primaryKey(),
    hash: text("hash").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    /** What made the instance render it: `api`, `apply`, `health`, `feed` (another instance or SQL), `startup`. */
    cause: text("cause").notNull(),
    /** Who: the API caller (token name) or the instance id for health transitions. */
    actor: text("actor"),
    /** e.g. the API request (`PUT /api/v1/deployments/{id}/routing`) that changed the state. */
    detail: text("detail"),
    /** Counts and names of routers, services and middlewares added, removed and changed against the one served before. */
    summary: jsonb("summary").$type<Record<string, unknown>>().notNull(),
    /** The JSON bytes, gzipped. */
    body: bytea("body").notNull(),
    bytes: integer("bytes").notNull(),
    /** The guard held it (it removes too many routers); served only once confirmed. */
    held: boolean("held").notNull().default(false),
    confirmedAt: timestamp("confirmed_at", { withTimezone: true }),
    confirmedBy: text("confirmed_by"),
    firstServedAt: timestamp("first_served_at", { withTimezone: true }),
    lastServedAt: timestamp("last_served_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("config_revisions_hash_uq").on(t.hash)],
);

/** At most one row: while it exists every instance serves that revision's bytes, whatever the current state. */
export const routingFreeze = pgTable(
  "routing_freeze",
  {
    id: integer("id").primaryKey().default(1),
    revision: bigint("revision", { mode: "number" }).notNull(),
    reason: text("reason").notNull(),
    actor: text("actor"),
    frozenAt: timestamp("frozen_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [check("routing_freeze_single_ck", sql`${t.id} = 1`)],
);

/**
 * Managed API tokens: only the SHA-256 of the secret is stored (the secret is 256 random bits, shown once). A
 * revoked token keeps its row (audit rows name it) with `revoked_at` set.
 */
export const apiTokens = pgTable(
  "api_tokens",
  {
    id: text("id").primaryKey(), // tok_…
    name: text("name").notNull(),
    /** Hex SHA-256 of the whole secret (`obr_…`). */
    hash: text("hash").notNull(),
    /** The first characters of the secret (`obr_Ab12`), to recognise it in a list; never enough to use it. */
    prefix: text("prefix").notNull(),
    scopes: jsonb("scopes").$type<string[]>().notNull(),
    /** Restriction to these deployment ids (null: no id list). */
    deploymentIds: jsonb("deployment_ids").$type<string[]>(),
    /** Restriction to deployment ids starting with this (null: no prefix). */
    deploymentPrefix: text("deployment_prefix"),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    createdBy: text("created_by"),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    revokedBy: text("revoked_by"),
  },
  (t) => [uniqueIndex("api_tokens_hash_uq").on(t.hash)],
);

/** One row per accepted API write, committed in the write's own transaction. */
export const auditLog = pgTable(
  "audit_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    /** `tok_…`, or `env:admin` for an ADMIN_TOKEN from the environment. */
    tokenId: text("token_id"),
    tokenName: text("token_name"),
    clientAddress: text("client_address"),
    requestId: text("request_id"),
    method: text("method").notNull(),
    path: text("path").notNull(),
    /** The endpoint's template (`PUT /api/v1/deployments/{id}/routing`). */
    operation: text("operation").notNull(),
    /** `deployment`, `route`, `replica`, `certificate`, `token`, `webhook`, `freeze`, `revision`, `state`. */
    resourceType: text("resource_type").notNull(),
    resourceId: text("resource_id"),
    deploymentId: text("deployment_id"),
    status: integer("status").notNull(),
    /** `[{field, before, after}]` of what changed; secrets as "<redacted>". */
    changes: jsonb("changes").$type<unknown[]>().notNull(),
  },
  (t) => [
    index("audit_log_at_idx").on(t.at),
    index("audit_log_deployment_idx").on(t.deploymentId, t.id),
    index("audit_log_token_idx").on(t.tokenId, t.id),
  ],
);

/**
 * What happened, for operators and webhooks: health transitions, config revisions, certificate expiry, domain
 * verification, guard trips, tokens. The id orders events across instances (SSE `Last-Event-ID`, webhook cursors).
 */
export const events = pgTable(
  "events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    type: text("type").notNull(),
    deploymentId: text("deployment_id"),
    /** What the event is about: a replica id, a revision number, a certificate id, a domain, a token id. */
    subject: text("subject"),
    data: jsonb("data").$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index("events_type_idx").on(t.type, t.id), index("events_deployment_idx").on(t.deploymentId, t.id)],
);

/**
 * Webhook subscriptions. Deliveries go out in event order per webhook: `cursor` is the last event id handled;
 * the instance holding the lease (`lease_owner` until `lease_until`) is the only one delivering.
 */
export const webhooks = pgTable("webhooks", {
  id: text("id").primaryKey(), // wh_…
  url: text("url").notNull(),
  /** Event types delivered (`*` for all). */
  events: jsonb("events").$type<string[]>().notNull(),
  /** The signing secret, AES-256-GCM encrypted like certificate keys (it must be read back to sign). */
  secretEncrypted: text("secret_encrypted").notNull(),
  cursor: bigint("cursor", { mode: "number" }).notNull().default(0),
  /** Attempts so far at the event after `cursor`; the next one not before `next_attempt_at`. */
  attempts: integer("attempts").notNull().default(0),
  nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }),
  leaseOwner: text("lease_owner"),
  leaseUntil: timestamp("lease_until", { withTimezone: true }),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  createdBy: text("created_by"),
});

/** Every delivery attempt, newest last. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    webhookId: text("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    eventId: bigint("event_id", { mode: "number" }).notNull(),
    attempt: integer("attempt").notNull(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    /** HTTP status received; null when no response came (connection refused, timeout, refused address). */
    statusCode: integer("status_code"),
    ok: boolean("ok").notNull(),
    error: text("error"),
    durationMs: integer("duration_ms").notNull(),
  },
  (t) => [index("webhook_deliveries_webhook_idx").on(t.webhookId, t.id)],
);

// Room for later capabilities (each gets its own table and migration when built): traffic_splits (canary / A-B).

export type DeploymentRow = typeof deployments.$inferSelect;
export type RoutingRow = typeof deploymentRouting.$inferSelect;
export type LocationRow = typeof deploymentLocations.$inferSelect;
export type HealthEventRow = typeof locationHealthEvents.$inferSelect;
export type CertificateRow = typeof certificates.$inferSelect;
export type RevisionRow = typeof configRevisions.$inferSelect;
export type FreezeRow = typeof routingFreeze.$inferSelect;
export type ApiTokenRow = typeof apiTokens.$inferSelect;
export type AuditRow = typeof auditLog.$inferSelect;
export type EventRow = typeof events.$inferSelect;
export type WebhookRow = typeof webhooks.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
export type TrafficRow = typeof deploymentTraffic.$inferSelect;
export type RolloutRow = typeof deploymentRollouts.$inferSelect;
