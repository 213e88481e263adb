import type { Health, LbAlgo, Protocol } from "../../schema/enums.js";
import type { ReplicaAllowList } from "./address.js";

// ── Input: what render() needs from the database, nothing more ─────────────────────────────────

export interface RouteInput {
  id: string;
  deploymentId: string;
  domain: string;
  pathPrefix: string;
  targetPort: number;
  protocol: Protocol;
  loadBalancerAlgo: LbAlgo;
  sslEnabled: boolean;
  sslCertResolver: string;
  /** The deployment's health-check overrides (null = service default); used only for Traefik's own healthCheck. */
  healthPath?: string | null;
  healthIntervalSeconds?: number | null;
  healthTimeoutSeconds?: number | null;
  /** Wildcard routes: request the apex as a SAN too. */
  tlsIncludeApex?: boolean;
  /**
   * protocol `https`: how replicas' certificates are verified (Traefik serversTransport and our own probes).
   * null/undefined: verified against the system roots with the replica address as server name.
   */
  backendTls?: BackendTls | null;
  /** protocol `h2c`: health via the gRPC health protocol (`grpc`, the default) or an HTTP/2 prior-knowledge GET. */
  healthMode?: HealthMode | null;
  /** The deployment's expected health status (`2xx`, `204`, `200-399`, comma list); null = service default. */
  healthExpectedStatus?: string | null;
}

export type HealthMode = "http" | "grpc";

export interface BackendTls {
  /** SNI and the name the certificate must carry; null = the replica address. */
  serverName: string | null;
  /** PEM bundle of CA certificates to trust instead of the system roots; null = system roots. */
  caPem: string | null;
  /** Explicit opt-out of verification (never the default). */
  insecureSkipVerify: boolean;
}

export interface ReplicaInput {
  id: string;
  deploymentId: string;
  address: string;
  port: number | null;
  status: string;
  healthStatus: Health;
  /** Traffic-split pool; undefined = `stable`. Without a split only `stable` replicas get traffic. */
  track?: string;
  /** Geographic region for geo routing; undefined/null = none. */
  region?: string | null;
}

export interface RenderSettings {
  entryPoints: { web: string; websecure: string };
  /** Listed with weight 0 when a deployment has no healthy replica: Traefik then answers 503, not 404. */
  noReplicaUrl: string;
  /**
   * The bundled least-CPU proxy. When set, `least-conn` routes point at it, with a headers middleware telling it
   * the deployment and proving the request came through Traefik. Unset: `least-conn` renders as round-robin.
   */
  fallbackProxy?: { url: string; secret: string };
  /** When set, services also carry Traefik's own active `healthCheck` (TRAEFIK_HEALTHCHECK=true). */
  traefikHealthCheck?: {
    path: string;
    intervalSeconds: number;
    timeoutSeconds: number;
    /** HEALTH_EXPECTED_STATUS: the default for deployments without their own `healthExpectedStatus`. */
    expectedStatus?: string;
  };
  /**
   * TRUSTED_PROXY_CIDRS: the load balancers in front of Traefik, also listed in its entry points'
   * `forwardedHeaders.trustedIPs`. Empty or unset: X-Forwarded-For is deleted by Traefik, so no `ipStrategy.depth`
   * is rendered (a stored `ip_depth` falls back to the peer address, with a warning).
   */
  trustedProxyCidrs?: readonly string[];
  /** TRAEFIK_VERSION: the oldest Traefik the config must work on; undefined = 3.6. */
  traefikVersion?: "3.6" | "3.7";
  /** REPLICA_ALLOWED_CIDRS: refused replica addresses (link-local, metadata, …) it covers are rendered after all. */
  replicaAllowList?: ReplicaAllowList | undefined;
}

export interface RenderInput {
  routes: readonly RouteInput[];
  replicas: readonly ReplicaInput[];
  settings: RenderSettings;
  /** Uploaded certificates with decrypted keys (the shell decrypts; render only places them). */
  certificates?: readonly TlsCertificateInput[];
  /** Stored middleware settings per deployment id (unvalidated: render checks them). */
  middlewares?: ReadonlyMap<string, unknown>;
  /** Stored traffic settings per deployment id, `{split, geo, resilience}` (unvalidated: render checks them). */
  traffic?: ReadonlyMap<string, unknown>;
}

export interface RenderWarning {
  /** `middleware`: the deployment is served, but a stored setting was not rendered as stored (id = deployment). */
  kind: "route" | "replica" | "certificate" | "middleware";
  id: string;
  reason: string;
}

export interface RenderResult {
  /** `{}` when nothing can be routed: Traefik applies it (an empty routers map would be rejected, issue 9 #1). */
  config: TraefikDocument;
  warnings: RenderWarning[];
  /**
   * The config holds secrets (private keys, the fallback proxy secret, basic-auth hashes, custom header values):
   * serve it only with a token.
   */
  hasSecrets: boolean;
}

// ── Output: the subset of Traefik v3 dynamic configuration we emit (field names as Traefik spells them) ──

export interface Server {
  url: string;
  weight?: number;
}

export interface HealthCheck {
  interval: string;
  /** `grpc`: the gRPC health protocol (pkg/healthcheck/healthcheck.go checkHealthGRPC); unset: an HTTP GET. */
  mode?: "grpc";
  /** HTTP mode only (gRPC mode ignores it). */
  path?: string;
  /** HTTP mode only: the one status code that counts as healthy; unset: 200–399. */
  status?: number;
  timeout: string;
}

/** `http.serversTransports.<name>`: how Traefik dials https replicas (pkg/config/dynamic/http_config.go). */
export interface ServersTransport {
  /** Durations as Go strings (`"5s"`, `"250ms"`); pkg/config/dynamic/http_config.go ForwardingTimeouts. */
  forwardingTimeouts?: { dialTimeout?: string; idleConnTimeout?: string; responseHeaderTimeout?: string };
  insecureSkipVerify?: boolean;
  /** types.FileOrContent: a path or, as here, the PEM itself. */
  rootCAs?: string[];
  serverName?: string;
}

export interface LoadBalancer {
  healthCheck?: HealthCheck;
  servers: Server[];
  passHostHeader?: boolean;
  /** Name of an `http.serversTransports` entry (https replicas with their own verification policy). */
  serversTransport?: string;
  /** Traefik ≥ 3.6: a server failing this often within the window is taken out for a while. */
  passiveHealthCheck?: PassiveHealthCheck;
  /** Traefik ≥ 3.6: `wrr` (default), `p2c`, `hrw` (client-IP affinity), `leasttime`. */
  strategy?: "wrr" | "p2c" | "hrw" | "leasttime";
}

/** `loadBalancer.passiveHealthCheck` (Traefik ≥ 3.6, pkg/config/dynamic/http_config.go PassiveServerHealthCheck). */
export interface PassiveHealthCheck {
  failureWindow?: string;
  maxFailedAttempts?: number;
}

/** A child of a `weighted` service (pkg/config/dynamic/http_config.go WRRService). */
export interface WeightedChild {
  name: string;
  weight: number;
}

/** Traefik's sticky cookie (pkg/config/dynamic/http_config.go Cookie). */
export interface StickyCookie {
  httpOnly?: boolean;
  name?: string;
  sameSite?: "none" | "lax" | "strict";
  secure?: boolean;
}

export interface WeightedService {
  /** Only `{}`: Traefik then propagates its children's health (each child must have a health check). */
  healthCheck?: Record<string, never>;
  services: WeightedChild[];
  sticky?: { cookie: StickyCookie };
}

export interface MirroringService {
  /** Requests with a bigger body are not mirrored (Traefik default -1: no limit; we bound it). */
  maxBodySize?: number;
  mirrors: { name: string; percent: number }[];
  service: string;
}

export interface FailoverService {
  fallback: string;
  healthCheck?: Record<string, never>;
  service: string;
}

/**
 * One entry of `http.services`: exactly one of the kinds is set. Traffic management (src/render/traffic.ts) adds
 * weighted, mirroring and failover services; everything else is a `loadBalancer`.
 */
export interface Service {
  failover?: FailoverService;
  loadBalancer?: LoadBalancer;
  mirroring?: MirroringService;
  weighted?: WeightedService;
}

export interface RouterTls {
  certResolver?: string;
  domains?: { main: string; sans?: string[] }[];
}

export interface Router {
  rule: string;
  service: string;
  entryPoints: string[];
  priority: number;
  middlewares?: string[];
  tls?: RouterTls;
}

export interface Middleware {
  basicAuth?: { realm?: string; removeHeader: boolean; users: string[] };
  circuitBreaker?: {
    checkPeriod?: string;
    expression: string;
    fallbackDuration?: string;
    recoveryDuration?: string;
    responseCode?: number;
  };
  compress?: { encodings?: string[]; minResponseBodyBytes?: number };
  headers?: Record<string, unknown>;
  inFlightReq?: { amount: number; sourceCriterion?: { ipStrategy?: { depth: number }; requestHost?: boolean } };
  ipAllowList?: { ipStrategy?: { depth: number }; sourceRange: string[] };
  rateLimit?: {
    average: number;
    burst: number;
    period: string;
    sourceCriterion?: { ipStrategy?: { depth: number }; requestHeaderName?: string };
  };
  redirectRegex?: { permanent: boolean; regex: string; replacement: string };
  redirectScheme?: { permanent: boolean; scheme: "http" | "https" };
  /** `status`/`timeout` need Traefik ≥ 3.7 (TRAEFIK_VERSION). */
  retry?: { attempts: number; initialInterval?: string; status?: string[]; timeout?: string };
  stripPrefix?: { prefixes: string[] };
}

export interface TlsCertificateInput {
  id: string;
  certPem: string;
  keyPem: string;
  sans: string[];
}

export interface TlsConfig {
  certificates: { certFile: string; keyFile: string }[];
}

export interface HttpConfig {
  routers: Record<string, Router>;
  services: Record<string, Service>;
  middlewares?: Record<string, Middleware>;
  serversTransports?: Record<string, ServersTransport>;
}

/** A document that routes something: `http.routers` and `http.services` are never empty maps. */
export interface DynamicConfig {
  http: HttpConfig;
  tls?: TlsConfig;
}

/** The document with nothing to route. */
export interface EmptyConfig {
  http?: undefined;
  tls?: undefined;
}

/** What render() returns and GET /traefik/config serves. */
export type TraefikDocument = DynamicConfig | EmptyConfig;
