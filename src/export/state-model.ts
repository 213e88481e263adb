import type { HealthMode, LbAlgo, Protocol } from "../../schema/enums.js";
import type { DeploymentRow, RoutingRow } from "../../schema/tables.js";
import { compareStrings } from "../lib/order.js";
import { StoredGeo } from "../render/geo-config.js";
import { StoredMiddlewares } from "../render/middlewares.js";
import { StoredResilience } from "../render/resilience-config.js";
import { StoredSplit } from "../render/split-config.js";
import { normalizePem } from "../tls/ca-bundle.js";
import { STATE_VERSION, type StateDeployment, type StateDocument, type StateRoute } from "./state-schema.js";

// Pure: database rows → the canonical document (dump), and a document → the flat form the diff compares.

/** What the dump reads from the database (src/db/repo/state.ts loads it). */
export interface StateRows {
  deployments: DeploymentRow[];
  routes: RoutingRow[];
  middlewares: { deploymentId: string; config: Record<string, unknown> }[];
  /** deployment_traffic rows (absent: none). */
  traffic?: TrafficRows[];
  certificates: { fingerprintSha256: string; sans: string[] }[];
  /**
   * Pending routes (DOMAIN_VERIFICATION=required, ownership not proven): never in the document, but apply must step
   * around them (a pending primary, a pending route the file now lists). Absent: none.
   */
  pending?: PendingRoute[];
}

export interface TrafficRows {
  deploymentId: string;
  split: Record<string, unknown> | null;
  geo: Record<string, unknown> | null;
  resilience: Record<string, unknown> | null;
}

/** The traffic-management parts of the document, beside middlewares; each is one deployment_traffic column. */
export const TRAFFIC_PARTS = ["split", "geo", "resilience"] as const;
export type TrafficPartName = (typeof TRAFFIC_PARTS)[number];
const TRAFFIC_SCHEMAS = { split: StoredSplit, geo: StoredGeo, resilience: StoredResilience } as const;

/** A traffic part as stored, with defaults filled and keys sorted; undefined when unset. */
export function canonicalTraffic(part: TrafficPartName, value: unknown): Record<string, unknown> | undefined {
  if (value === null || value === undefined) {
    return undefined;
  }
  const parsed = TRAFFIC_SCHEMAS[part].safeParse(value);
  return sortKeysDeep(parsed.success ? parsed.data : value) as Record<string, unknown>;
}

export interface PendingRoute {
  id: string;
  deploymentId: string;
  domain: string;
  pathPrefix: string;
  isPrimary: boolean;
}

/** Sorts object keys recursively (arrays keep their order: it can be meaningful), so equal values print alike. */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(sortKeysDeep);
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => compareStrings(a, b));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeysDeep(v)]));
  }
  return value;
}

/** Middlewares as stored, with defaults filled and keys sorted; undefined when none are set. */
export function canonicalMiddlewares(config: unknown): Record<string, unknown> | undefined {
  const parsed = StoredMiddlewares.safeParse(config);
  // A row edited by hand into something invalid is shown as it is (apply would refuse it back).
  const value = sortKeysDeep(parsed.success ? parsed.data : config) as Record<string, unknown>;
  return value && Object.keys(value).length > 0 ? value : undefined;
}

const byRouteKey = (a: RoutingRow, b: RoutingRow) =>
  compareStrings(a.domain, b.domain) || compareStrings(a.pathPrefix, b.pathPrefix);

function healthOf(d: DeploymentRow): StateDeployment["health_check"] {
  const tls = {
    ...(d.backendTlsServerName === null ? {} : { server_name: d.backendTlsServerName }),
    ...(d.backendTlsCaPem === null ? {} : { ca_pem: d.backendTlsCaPem }),
    ...(d.backendTlsInsecureSkipVerify ? { insecure_skip_verify: true } : {}),
  };
  const h = {
    ...(d.healthPath === null ? {} : { path: d.healthPath }),
    ...(d.healthIntervalSeconds === null ? {} : { interval_seconds: d.healthIntervalSeconds }),
    ...(d.healthTimeoutSeconds === null ? {} : { timeout_seconds: d.healthTimeoutSeconds }),
    ...(d.healthExpectedStatus === null ? {} : { expected_status: d.healthExpectedStatus }),
    ...(d.healthMode === null ? {} : { mode: d.healthMode }),
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
  };
  return Object.keys(h).length > 0 ? h : undefined;
}

/** The canonical document of the current state: deployments by id, the primary route first, keys in a fixed order. */
export function stateFromRows(rows: StateRows): StateDocument {
  const routesOf = new Map<string, RoutingRow[]>();
  for (const r of rows.routes) {
    routesOf.set(r.deploymentId, [...(routesOf.get(r.deploymentId) ?? []), r]);
  }
  const mwOf = new Map(rows.middlewares.map((m) => [m.deploymentId, m.config]));
  const trafficOf = new Map((rows.traffic ?? []).map((t) => [t.deploymentId, t]));
  const deployments = [...rows.deployments]
    .sort((a, b) => compareStrings(a.id, b.id))
    .map((d): StateDeployment => {
      const routes = [...(routesOf.get(d.id) ?? [])].sort(byRouteKey);
      const primary = routes.find((r) => r.isPrimary) ?? routes[0];
      const health = healthOf(d);
      const middlewares = canonicalMiddlewares(mwOf.get(d.id) ?? {});
      const t = trafficOf.get(d.id);
      const traffic: Partial<Record<TrafficPartName, unknown>> = {};
      for (const part of TRAFFIC_PARTS) {
        const v = canonicalTraffic(part, t?.[part]);
        if (v) {
          traffic[part] = v;
        }
      }
      return {
        id: d.id,
        name: d.name,
        ...(primary
          ? {
              routing: {
                target_port: primary.targetPort,
                protocol: primary.protocol,
                load_balancer_algo: primary.loadBalancerAlgo,
                domains: [primary, ...routes.filter((r) => r !== primary)].map(
                  (r): StateRoute => ({
                    domain: r.domain,
                    path_prefix: r.pathPrefix,
                    ssl_enabled: r.sslEnabled,
                    ssl_cert_resolver: r.sslCertResolver,
                    tls_include_apex: r.tlsIncludeApex,
                    ...(r.targetPort === primary.targetPort ? {} : { target_port: r.targetPort }),
                  }),
                ),
              },
            }
          : {}),
        ...(health ? { health_check: health } : {}),
        ...(middlewares ? { middlewares: middlewares as StoredMiddlewares } : {}),
        ...(traffic as Pick<StateDeployment, TrafficPartName>),
      };
    });
  const certificates = [...rows.certificates]
    .sort((a, b) => compareStrings(a.fingerprintSha256, b.fingerprintSha256))
    .map((c) => ({ fingerprint_sha256: c.fingerprintSha256, sans: [...c.sans] }));
  return { version: STATE_VERSION, deployments, certificates };
}

// ── The flat form the diff compares and apply writes ──────────────────────────────────────────────

export interface FlatRoute {
  domain: string;
  path_prefix: string;
  deployment: string;
  target_port: number;
  protocol: Protocol;
  load_balancer_algo: LbAlgo;
  ssl_enabled: boolean;
  ssl_cert_resolver: string;
  tls_include_apex: boolean;
  primary: boolean;
  /** Where the route is in the file (desired side only). */
  at: string;
}

export interface FlatHealth {
  path: string | null;
  interval_seconds: number | null;
  timeout_seconds: number | null;
  expected_status: string | null;
  mode: HealthMode | null;
  tls_server_name: string | null;
  tls_ca_pem: string | null;
  tls_insecure_skip_verify: boolean;
}

export interface FlatDeployment {
  id: string;
  name: string;
  health: FlatHealth;
  middlewares: Record<string, unknown> | undefined;
  split: Record<string, unknown> | undefined;
  geo: Record<string, unknown> | undefined;
  resilience: Record<string, unknown> | undefined;
}

export interface FlatState {
  deployments: Map<string, FlatDeployment>;
  /** By routeKey(domain, path_prefix). */
  routes: Map<string, FlatRoute>;
  /** Fingerprint → SANs. */
  certificates: Map<string, string[]>;
}

/** How a route is named in diffs: the host and path as one string, `shop.example.com/api`. */
export const routeKey = (domain: string, pathPrefix: string) => `${domain}${pathPrefix}`;

export const NO_HEALTH: FlatHealth = {
  path: null,
  interval_seconds: null,
  timeout_seconds: null,
  expected_status: null,
  mode: null,
  tls_server_name: null,
  tls_ca_pem: null,
  tls_insecure_skip_verify: false,
};

/** Every value spelled out: omitted fields become their defaults (`defaultResolver` picks a route's resolver). */
export function flattenState(doc: StateDocument, defaultResolver: (domain: string) => string): FlatState {
  const deployments = new Map<string, FlatDeployment>();
  const routes = new Map<string, FlatRoute>();
  doc.deployments.forEach((d, i) => {
    const h = d.health_check ?? {};
    deployments.set(d.id, {
      id: d.id,
      name: d.name,
      health: {
        path: h.path ?? null,
        interval_seconds: h.interval_seconds ?? null,
        timeout_seconds: h.timeout_seconds ?? null,
        expected_status: h.expected_status ?? null,
        mode: h.mode ?? null,
        tls_server_name: h.tls?.server_name ?? null,
        tls_ca_pem: typeof h.tls?.ca_pem === "string" ? normalizePem(h.tls.ca_pem) : null,
        tls_insecure_skip_verify: h.tls?.insecure_skip_verify ?? false,
      },
      middlewares: canonicalMiddlewares(d.middlewares ?? {}),
      split: canonicalTraffic("split", d.split),
      geo: canonicalTraffic("geo", d.geo),
      resilience: canonicalTraffic("resilience", d.resilience),
    });
    const routing = d.routing;
    routing?.domains.forEach((r, j) => {
      routes.set(routeKey(r.domain, r.path_prefix), {
        domain: r.domain,
        path_prefix: r.path_prefix,
        deployment: d.id,
        target_port: r.target_port ?? routing.target_port,
        protocol: routing.protocol,
        load_balancer_algo: routing.load_balancer_algo,
        ssl_enabled: r.ssl_enabled,
        ssl_cert_resolver: r.ssl_cert_resolver ?? defaultResolver(r.domain),
        tls_include_apex: r.tls_include_apex,
        primary: j === 0,
        at: `deployments[${i}].routing.domains[${j}]`,
      });
    });
  });
  const certificates = new Map(doc.certificates.map((c) => [c.fingerprint_sha256, c.sans ?? []]));
  return { deployments, routes, certificates };
}
