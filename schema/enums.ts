/** Enumerations shared by the tables, the zod schemas and the renderer: one `as const` array each. */

export const PROTOCOLS = ["http", "https", "h2c"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** `least-conn` means "the healthy replica with the lowest CPU usage" in this platform. */
export const LB_ALGOS = ["round-robin", "least-conn", "ip-hash"] as const;
export type LbAlgo = (typeof LB_ALGOS)[number];

export const HEALTH = ["unknown", "healthy", "unhealthy"] as const;
export type Health = (typeof HEALTH)[number];

/** How a replica's health is checked: a gRPC `grpc.health.v1.Health/Check` call, or an HTTP GET of the path. */
export const HEALTH_MODES = ["grpc", "http"] as const;
export type HealthMode = (typeof HEALTH_MODES)[number];

/** Lifecycle of a replica as the orchestrator reports it; only `running` replicas are probed or routed. */
export const REPLICA_STATUS = ["running", "starting", "stopping", "stopped", "failed"] as const;
export type ReplicaStatus = (typeof REPLICA_STATUS)[number];

/** Ownership of a route's domain (DOMAIN_VERIFICATION): only `verified` routes are rendered. */
export const DOMAIN_VERIFICATION_STATES = ["pending", "verified"] as const;
export type DomainVerificationState = (typeof DOMAIN_VERIFICATION_STATES)[number];

/** What a managed API token may do (see src/api/scopes.ts for what each one grants). */
export const TOKEN_SCOPES = ["read", "write", "certificates", "admin", "provider"] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];
