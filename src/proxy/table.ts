import type { Health, Protocol } from "../../schema/enums.js";
import { freshCpu } from "../health/state.js";
import { byId } from "../lib/order.js";
import type { ReplicaAllowList } from "../render/address.js";
import { matchRoute } from "../render/rules.js";
import { checkAddress, checkDomain, checkPathPrefix, checkPort, urlHost } from "../render/validate.js";

// Pure: no I/O, no clock. The proxy's shell builds a table per database snapshot and asks it, per request,
// which replica to use. Time comes in as an argument.

/** A route as the fallback proxy needs it: where it listens, and which port replicas serve it on. */
export interface ProxyRouteRow {
  id: string;
  deploymentId: string;
  domain: string;
  pathPrefix: string;
  targetPort: number;
  protocol: Protocol;
  isPrimary: boolean;
  /** The deployment's probe interval (null = service default); CPU readings count for 3 intervals. */
  healthIntervalSeconds: number | null;
}

/** A replica with its health and latest CPU reading. */
export interface ProxyReplicaRow {
  id: string;
  deploymentId: string;
  address: string;
  port: number | null;
  status: string;
  healthStatus: Health;
  cpuUsage: number | null;
  cpuUpdatedAt: Date | null;
}

export interface ProxySnapshot {
  routes: readonly ProxyRouteRow[];
  replicas: readonly ProxyReplicaRow[];
}

export interface TableReplica {
  readonly id: string;
  readonly deploymentId: string;
  /** `http://10.0.3.7:31005`: names this replica's upstream connection pool. */
  readonly origin: string;
  /** Address and port to dial (no brackets). */
  readonly address: string;
  readonly port: number;
  /** Running and healthy; the proxy clears it at once when a connect fails. */
  healthy: boolean;
  readonly cpu: number | null;
  readonly cpuAt: Date | null;
}

/** The replicas one route reaches: a deployment's replicas on one (protocol, target port). */
export interface TableBackend {
  readonly key: string;
  readonly deploymentId: string;
  readonly protocol: Protocol;
  readonly intervalSeconds: number;
  readonly replicas: readonly TableReplica[];
  /** Round-robin counter among equally good replicas; carried over to the next table. */
  rr: number;
}

interface HostRoute {
  readonly domain: string;
  readonly pathPrefix: string;
  readonly backend: TableBackend;
}

export interface TableOptions {
  /** HEALTH_INTERVAL_SECONDS: the probe interval of deployments without an override. */
  defaultIntervalSeconds: number;
  /** REPLICA_ALLOWED_CIDRS: refused replica addresses (link-local, metadata, …) it covers are dialled after all. */
  replicaAllowList?: ReplicaAllowList | undefined;
}

/** Lower-cases a Host header value and drops the port and a trailing dot (`[::1]:80` → `[::1]`). */
export function normalizeHost(raw: string): string {
  let end = raw.length;
  if (raw.charCodeAt(0) === 91 /* [ */) {
    const close = raw.indexOf("]");
    end = close === -1 ? end : close + 1;
  } else {
    const colon = raw.indexOf(":");
    if (colon !== -1) {
      end = colon;
    }
  }
  if (end > 0 && raw.charCodeAt(end - 1) === 46 /* . */) {
    end--;
  }
  const host = end === raw.length ? raw : raw.slice(0, end);
  return host.toLowerCase();
}

/**
 * Routing state of the fallback proxy: deployment lookup plus the least-CPU choice. There is no lookup by Host
 * alone: every request names its deployment in the header Traefik sets with the secret (issue 10 #1).
 */
export class RoutingTable {
  private constructor(
    private readonly primary: Map<string, TableBackend>,
    private readonly routesByDeployment: Map<string, HostRoute[]>,
    private readonly replicasById: Map<string, TableReplica[]>,
    private readonly backends: Map<string, TableBackend>,
    /** Every upstream origin in the table (the shell keeps one connection pool per origin). */
    readonly origins: ReadonlySet<string>,
  ) {}

  /**
   * Builds a table from a snapshot (only `least-conn` routes: see loadProxySnapshot). Rows the renderer would skip (invalid domain, path or address) are skipped
   * here too. Round-robin counters continue from `previous`, so a refresh does not restart the rotation.
   */
  static build(snapshot: ProxySnapshot, opts: TableOptions, previous?: RoutingTable): RoutingTable {
    const replicasOf = new Map<string, ProxyReplicaRow[]>();
    for (const r of snapshot.replicas) {
      if (
        checkAddress(r.address, opts.replicaAllowList) !== undefined ||
        (r.port !== null && checkPort(r.port) !== undefined)
      ) {
        continue;
      }
      const list = replicasOf.get(r.deploymentId);
      if (list) {
        list.push(r);
      } else {
        replicasOf.set(r.deploymentId, [r]);
      }
    }
    const backends = new Map<string, TableBackend>();
    const replicasById = new Map<string, TableReplica[]>();
    const origins = new Set<string>();
    const backendFor = (route: ProxyRouteRow): TableBackend => {
      const key = `${route.deploymentId}|${route.protocol}|${route.targetPort}`;
      const existing = backends.get(key);
      if (existing) {
        return existing;
      }
      const scheme = route.protocol === "https" ? "https" : "http";
      const replicas: TableReplica[] = [];
      for (const row of replicasOf.get(route.deploymentId) ?? []) {
        const port = row.port ?? route.targetPort;
        const replica: TableReplica = {
          id: row.id,
          deploymentId: row.deploymentId,
          origin: `${scheme}://${urlHost(row.address)}:${port}`,
          address: row.address,
          port,
          healthy: row.status === "running" && row.healthStatus === "healthy",
          cpu: row.cpuUsage,
          cpuAt: row.cpuUpdatedAt,
        };
        replicas.push(replica);
        origins.add(replica.origin);
        const same = replicasById.get(row.id);
        if (same) {
          same.push(replica);
        } else {
          replicasById.set(row.id, [replica]);
        }
      }
      replicas.sort(byId); // stable rotation order
      const backend: TableBackend = {
        key,
        deploymentId: route.deploymentId,
        protocol: route.protocol,
        intervalSeconds: route.healthIntervalSeconds ?? opts.defaultIntervalSeconds,
        replicas,
        rr: previous?.backends.get(key)?.rr ?? 0,
      };
      backends.set(key, backend);
      return backend;
    };

    const primary = new Map<string, TableBackend>();
    const primaryRoute = new Map<string, ProxyRouteRow>();
    const routesByDeployment = new Map<string, HostRoute[]>();
    for (const route of snapshot.routes) {
      if (checkDomain(route.domain) !== undefined || checkPathPrefix(route.pathPrefix) !== undefined) {
        continue;
      }
      const entry: HostRoute = { domain: route.domain, pathPrefix: route.pathPrefix, backend: backendFor(route) };
      push(routesByDeployment, route.deploymentId, entry);
      // The deployment's own route for a header-routed request: the primary one, else the lowest id.
      const current = primaryRoute.get(route.deploymentId);
      if (!current || isBetterPrimary(route, current)) {
        primaryRoute.set(route.deploymentId, route);
        primary.set(route.deploymentId, entry.backend);
      }
    }
    return new RoutingTable(primary, routesByDeployment, replicasById, backends, origins);
  }

  /** Number of deployments with at least one route. */
  get deploymentCount(): number {
    return this.routesByDeployment.size;
  }

  /**
   * The backend of a deployment named by the trusted routing header: the deployment's route matching host and
   * path if there is one (its target port), else its primary route. Undefined for an unknown deployment.
   */
  byDeployment(deploymentId: string, host: string, path: string): TableBackend | undefined {
    const own = this.routesByDeployment.get(deploymentId);
    if (!own) {
      return undefined;
    }
    if (own.length > 1) {
      const r = matchRoute(own, host, path);
      if (r) {
        return r.backend;
      }
    }
    return this.primary.get(deploymentId);
  }

  /**
   * The healthy replica with the lowest fresh CPU reading (see `freshCpu`). Replicas without a fresh reading
   * count as tied with the best, so a new or silent replica still gets traffic; ties rotate round-robin.
   * `excluding` skips one replica (the retry after a failed connect). Undefined when none is healthy.
   */
  pickReplica(backend: TableBackend, now: Date, excluding?: string): TableReplica | undefined {
    const { replicas, intervalSeconds } = backend;
    let min = Number.POSITIVE_INFINITY;
    let ties = 0;
    let missing = 0;
    for (const r of replicas) {
      if (!r.healthy || r.id === excluding) {
        continue;
      }
      const cpu = freshCpu(r.cpu, r.cpuAt, now, intervalSeconds);
      if (cpu === null) {
        missing++;
      } else if (cpu < min) {
        min = cpu;
        ties = 1;
      } else if (cpu === min) {
        ties++;
      }
    }
    const total = ties + missing;
    if (total === 0) {
      return undefined;
    }
    let k = backend.rr % total;
    backend.rr = backend.rr >= 0x3fff_ffff ? 0 : backend.rr + 1; // stays a small integer
    for (const r of replicas) {
      if (!r.healthy || r.id === excluding) {
        continue;
      }
      const cpu = freshCpu(r.cpu, r.cpuAt, now, intervalSeconds);
      if (cpu === null || cpu === min) {
        if (k === 0) {
          return r;
        }
        k--;
      }
    }
    return undefined; // unreachable: the second pass sees the same members
  }

  /** Takes a replica out of rotation in this table at once (a failed connect); true if it was known. */
  markUnhealthy(replicaId: string): boolean {
    const list = this.replicasById.get(replicaId);
    if (!list) {
      return false;
    }
    for (const r of list) {
      r.healthy = false;
    }
    return true;
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) {
    list.push(value);
  } else {
    map.set(key, [value]);
  }
}

function isBetterPrimary(a: ProxyRouteRow, b: ProxyRouteRow): boolean {
  if (a.isPrimary !== b.isPrimary) {
    return a.isPrimary;
  }
  return a.id < b.id;
}
