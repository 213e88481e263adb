import { isIP } from "node:net";
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { EXPECTED_STATUS_RE } from "../health/state.js";
import { checkCidr } from "../render/validate.js";

const optional = z.string().trim().min(1).optional().catch(undefined); // "" counts as unset
const flag = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0"])
    .optional()
    .transform((v) => (v === undefined ? fallback : v === "true" || v === "1"));
/** A comma-separated list; blanks dropped, "" and unset both mean empty. */
const commaList = () =>
  z
    .string()
    .optional()
    .transform((v) =>
      (v ?? "")
        .split(",")
        .map((t) => t.trim())
        .filter((t) => t.length > 0),
    );
const tokenList = commaList().refine(
  (list) => list.every((t) => t.length >= 16),
  "each token must be at least 16 characters",
);
const entryPointName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "letters, digits, '-' and '_' only");
const resolverName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, '.', '-' and '_' only");

export const Env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().trim().min(1).default("127.0.0.1"),
  DATABASE_URL: optional, // unset → embedded PGlite
  /** Client-side deadline of each query (PostgreSQL): a frozen or unreachable server fails fast instead of hanging. */
  DB_QUERY_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(5000),
  /** Deadline to open a connection, handshake included. */
  DB_CONNECT_TIMEOUT_SECONDS: z.coerce.number().min(0.1).max(600).default(5),
  /** Pooled connections idle this long are closed. */
  DB_IDLE_TIMEOUT_SECONDS: z.coerce.number().min(1).max(86_400).default(60),
  DATA_DIR: z
    .string()
    .trim()
    .min(1)
    .default("./data")
    .transform((p) => (isAbsolute(p) ? p : resolve(p))), // PGlite lives in DATA_DIR/pglite
  PROVIDER_TOKEN: tokenList, // Traefik's bearer token(s) for GET /traefik/config
  ADMIN_TOKEN: tokenList, // bearer token(s) for /api/v1
  PUBLIC_URL: optional,
  /** Public IPs of the Traefik edge: the A/AAAA records users create for apex domains. */
  PUBLIC_IPS: commaList().refine(
    (list) => list.every((ip) => isIP(ip) !== 0),
    "must be a comma-separated list of IP addresses",
  ),
  /** Host name users point subdomains at with a CNAME (e.g. edge.example.net). */
  PUBLIC_CNAME_TARGET: optional,
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** `json` (one JSON object per line, for log shippers) or `pretty` (coloured, for a human at a terminal). */
  LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
  /** Bearer token(s) for GET /metrics; unset: /metrics is open (it carries no secrets; bind or firewall it). */
  METRICS_TOKEN: tokenList,
  /**
   * A direct, session-mode PostgreSQL connection for LISTEN/NOTIFY and advisory locks, when DATABASE_URL goes through
   * a transaction pooler (PgBouncer `pool_mode = transaction`), where LISTEN does not work. Unset: DATABASE_URL.
   */
  DATABASE_LISTEN_URL: optional,
  /**
   * What DATABASE_URL connects to: `session` (PostgreSQL itself, or a session pooler) or `transaction` (PgBouncer
   * `pool_mode = transaction`: no prepared statements, no session state). Unset: `transaction` when
   * DATABASE_LISTEN_URL is set, `session` otherwise.
   */
  DATABASE_POOL_MODE: z.enum(["session", "transaction"]).optional(),
  ENTRYPOINT_WEB: entryPointName.default("web"),
  ENTRYPOINT_WEBSECURE: entryPointName.default("websecure"),
  DEFAULT_CERT_RESOLVER: resolverName.default("letsencrypt"),
  /** Resolver for new wildcard routes that do not name one: wildcard certificates need DNS-01. */
  DEFAULT_WILDCARD_CERT_RESOLVER: resolverName.default("letsencrypt-dns"),
  /**
   * Load balancers in front of Traefik (comma list of CIDRs or IPs) that the operator also lists in Traefik's
   * `entryPoints.<ep>.forwardedHeaders.trustedIPs`. Empty (default): Traefik deletes X-Forwarded-For, so the
   * middlewares' `ip_depth` is refused and never rendered; the client IP is the peer address.
   */
  TRUSTED_PROXY_CIDRS: commaList().refine(
    (list) => list.every((c) => checkCidr(c) === undefined),
    "must be a comma list of CIDR ranges or IPs",
  ),
  /** 32 bytes (64 hex chars or base64) encrypting uploaded private keys; unset: generated into DATA_DIR. */
  CERT_ENCRYPTION_KEY: optional,
  /** Certificates expiring within this many days are flagged in stats and warned about daily. */
  CERT_EXPIRY_WARN_DAYS: z.coerce.number().int().min(1).max(365).default(21),
  /** How often each instance checks the database for changes it was not notified of. */
  CONFIG_REFRESH_SECONDS: z.coerce.number().min(0.1).max(3600).default(5),
  /** Changes arriving within this window are rendered once. */
  RENDER_COALESCE_MS: z.coerce.number().int().min(0).max(10_000).default(50),
  /**
   * Changes re-render only the deployments the change feed names; this often the whole document is rebuilt from a
   * full read anyway and compared with the incrementally kept one (a difference is logged and counted). 0: never.
   */
  RENDER_FULL_RELOAD_SECONDS: z.coerce.number().int().min(0).max(86_400).default(600),
  HEALTH_ENABLED: flag(true),
  /** Default seconds between active probes of one replica (per-deployment override: PUT …/health-check). */
  HEALTH_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(30),
  HEALTH_TIMEOUT_SECONDS: z.coerce.number().min(0.1).max(120).default(5),
  /** Probes in flight at once, per instance. */
  HEALTH_CONCURRENCY: z.coerce.number().int().min(1).max(4096).default(64),
  /** Consecutive successes an unhealthy replica needs to be routed again. */
  HEALTH_RISE: z.coerce.number().int().min(1).max(100).default(3),
  HEALTH_PATH: z
    .string()
    .regex(/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*$/, "must be a URL path")
    .default("/health"),
  HEALTH_EXPECTED_STATUS: z.string().regex(EXPECTED_STATUS_RE, "like 2xx, 204, 200-399 or a comma list").default("2xx"),
  /** How often the checker wakes to probe what is due (node-cron; must divide 60). */
  HEALTH_TICK_SECONDS: z.coerce
    .number()
    .int()
    .refine((n) => n >= 1 && n <= 60 && 60 % n === 0, "must divide 60")
    .default(5),
  /** Also emit Traefik's own `healthCheck` on services, so Traefik reacts between polls. */
  TRAEFIK_HEALTHCHECK: flag(false),
  /**
   * The oldest Traefik version the rendered config must work on (README: Traefik ≥ 3.6). Fields Traefik added
   * later (retry `status`/`timeout`, failover `errors`) are rendered only when this is at least their version.
   */
  TRAEFIK_VERSION: z.enum(["3.6", "3.7"]).default("3.6"),
  /** Names this instance in probe leases; defaults to host name + pid. */
  INSTANCE_ID: optional,
  /** Run the bundled least-CPU proxy inside the service; `least-conn` deployments are routed through it. */
  FALLBACK_ENABLED: flag(true),
  PROXY_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  /**
   * Bind address of the proxy; defaults to 127.0.0.1, not HOST: it must be reachable by Traefik only (an internal
   * network address, plus FALLBACK_TRUSTED_CIDRS; see the README's trust model).
   */
  PROXY_HOST: optional,
  /** Where Traefik reaches the proxy; defaults to http://PROXY_HOST:PROXY_PORT. */
  FALLBACK_PROXY_URL: optional.refine((v) => v === undefined || /^https?:\/\/[^/\s`{}]+\/?$/.test(v), {
    message: "must be an http(s) origin like http://obiente-router:8081",
  }),
  /** Shared secret Traefik sends in X-Obiente-Proxy-Secret; unset: generated once into DATA_DIR. */
  FALLBACK_PROXY_SECRET: optional.refine(
    (v) => v === undefined || (v.length >= 16 && /^[\x21-\x7E]+$/.test(v) && !v.includes("{{")),
    {
      message: "must be at least 16 printable characters",
    },
  ),
  /**
   * Peers the proxy serves at all, and whose X-Forwarded-* it keeps (comma list of CIDRs or addresses); unset: any
   * peer with the secret is served, X-Forwarded-* kept from 127.0.0.1 and ::1 only.
   */
  FALLBACK_TRUSTED_CIDRS: commaList().refine(
    (list) => list.every((c) => checkCidr(c) === undefined),
    "must be a comma list of CIDR ranges or IPs",
  ),
  /**
   * Replica addresses that are refused by default (link-local, cloud metadata, unspecified, multicast, broadcast)
   * but allowed here (comma list of CIDRs or IPs), e.g. `169.254.10.0/24` for replicas on a link-local network.
   */
  REPLICA_ALLOWED_CIDRS: commaList().refine(
    (list) => list.every((c) => checkCidr(c) === undefined),
    "must be a comma list of CIDR ranges or IPs",
  ),
  /** How often the fallback proxy reads its table's replicas' CPU readings (without LISTEN: the whole table). */
  PROXY_REFRESH_MS: z.coerce.number().int().min(50).max(3_600_000).default(1000),
  /** The fallback proxy's safety-net reload of its whole table while it follows the change feed (LISTEN). */
  PROXY_FULL_REFRESH_MS: z.coerce.number().int().min(1000).max(86_400_000).default(60_000),
  PROXY_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(1).max(3_600_000).default(3000),
  PROXY_RESPONSE_TIMEOUT_MS: z.coerce.number().int().min(1).max(3_600_000).default(60_000),
  /** A WebSocket (or other upgraded connection) through the proxy is closed after this long with no frame either way. */
  PROXY_WS_IDLE_TIMEOUT_MS: z.coerce.number().int().min(1).max(86_400_000).default(300_000),
  /** How often the progressive-rollout worker looks for due steps and abort conditions. */
  ROLLOUT_TICK_MS: z.coerce.number().int().min(100).max(3_600_000).default(5000),
  /** Config revisions kept in the database (newest by number); the frozen, held and last served one always stay. */
  REVISION_RETENTION: z.coerce.number().int().min(10).max(1_000_000).default(500),
  /** A render removing more than this share of the served routers is held until confirmed (100: never). */
  GUARD_MAX_REMOVED_PERCENT: z.coerce.number().min(0).max(100).default(50),
  /** The guard only looks at a served config with at least this many routers. */
  GUARD_MIN_ROUTERS: z.coerce.number().int().min(1).max(10_000_000).default(10),
  /** Audit rows older than this many days are deleted (daily). */
  AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).max(36_500).default(90),
  /**
   * `required`: a new custom domain outside PLATFORM_DOMAINS is stored `pending` (never rendered) until its
   * `TXT _obiente-challenge.<domain>` record proves ownership. `off` (default): every domain is routed at once.
   */
  DOMAIN_VERIFICATION: z.enum(["off", "required"]).default("off"),
  /** Domain suffixes the platform owns (comma list, e.g. `obiente.app`): names under them need no proof. */
  PLATFORM_DOMAINS: commaList().transform((list) => list.map((d) => d.toLowerCase().replace(/^\*?\.|\.$/g, ""))),
  /** A pending domain not verified within this many hours is removed. */
  DOMAIN_VERIFICATION_TTL_HOURS: z.coerce.number().min(1).max(8760).default(72),
  /** DNS servers (comma list of `ip` or `ip:port`) for the ownership TXT lookups; unset: the system's resolvers. */
  DOMAIN_VERIFICATION_DNS: commaList(),
  /** Let webhook URLs reach loopback, private and link-local addresses (tests, an internal receiver). */
  WEBHOOK_ALLOW_PRIVATE: flag(false),
});
export type Config = z.infer<typeof Env>;

/** Parses the environment once; throws one error listing every problem. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const r = Env.safeParse(env);
  if (r.success) {
    return Object.freeze(r.data);
  }
  const lines = r.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
  throw new Error(`invalid environment\n${lines.join("\n")}`);
}
