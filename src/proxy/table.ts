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
  /** The latest CPU reading; updated in place by `updateCpu` (readings send no notification). */
  cpu: number | null;
  cpuAt: Date | null;
}

/** One replica's latest CPU reading, as the proxy's cadence reads it. */
export interface CpuReading {
  id: string;
  cpuUsage: number | null;
  cpuUpdatedAt: Date | null;
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

/** Everything one deployment contributes to the table: replaced as a whole when it changes. */
interface DeploymentEntry {
  readonly routes: readonly HostRoute[];
  /** The route a header-routed request takes when none matches its host and path. */
  readonly primary: TableBackend;
  readonly backends: ReadonlyMap<string, TableBackend>;
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
 *
 * Kept per deployment, so the shell can follow the change feed: `replaceDeployments` swaps the entries of the
 * deployments a notification named (built from only their rows) and `updateCpu` refreshes readings in place. A
 * request in flight keeps the backend and replica objects it picked; they are never reused for a new entry.
 */
export class RoutingTable {
  private readonly entries = new Map<string, DeploymentEntry>();
  private readonly replicasById = new Map<string, TableReplica[]>();
  /** How many table replicas dial each origin (the shell keeps one connection pool per origin). */
  private readonly originRefs = new Map<string, number>();

  private constructor(private readonly opts: TableOptions) {}

  /**
   * Builds a table from a snapshot (only `least-conn` routes: see loadProxySnapshot). Rows the renderer would skip (invalid domain, path or address) are skipped
   * here too. Round-robin counters continue from `previous`, so a refresh does not restart the rotation.
   */
  static build(snapshot: ProxySnapshot, opts: TableOptions, previous?: RoutingTable): RoutingTable {
    const table = new RoutingTable(opts);
    const { routesOf, replicasOf } = groupByDeployment(snapshot);
    for (const [deploymentId, routes] of routesOf) {
      table.add(deploymentId, routes, replicasOf.get(deploymentId) ?? [], previous?.entries.get(deploymentId));
    }
    return table;
  }

  /**
   * Replaces the entries of `deploymentIds` with what `rows` holds for them (rows of those deployments only, as
   * loadProxyDeployments reads them): a deployment without a routable row leaves the table. Round-robin counters
   * carry over. Returns the origins no replica in the table dials any more (their pools can close).
   */
  replaceDeployments(deploymentIds: Iterable<string>, rows: ProxySnapshot): string[] {
    const ids = new Set(deploymentIds);
    const { routesOf, replicasOf } = groupByDeployment(rows);
    const dropped = new Set<string>();
    const before = new Map<string, DeploymentEntry>();
    for (const id of ids) {
      const old = this.entries.get(id);
      if (old) {
        before.set(id, old);
        this.remove(id, old, dropped);
      }
    }
    for (const id of ids) {
      const routes = routesOf.get(id);
      if (routes) {
        this.add(id, routes, replicasOf.get(id) ?? [], before.get(id));
      }
    }
    return [...dropped].filter((origin) => !this.originRefs.has(origin));
  }

  /** Sets the readings of the replicas in the table; unknown ids are ignored. Returns how many replicas changed. */
  updateCpu(readings: Iterable<CpuReading>): number {
    let changed = 0;
    for (const reading of readings) {
      for (const r of this.replicasById.get(reading.id) ?? []) {
        if (r.cpu !== reading.cpuUsage || r.cpuAt?.getTime() !== reading.cpuUpdatedAt?.getTime()) {
          r.cpu = reading.cpuUsage;
          r.cpuAt = reading.cpuUpdatedAt;
          changed++;
        }
      }
    }
    return changed;
  }

  /** The deployments in the table (those whose replicas' CPU readings matter). */
  deploymentIds(): string[] {
    return [...this.entries.keys()];
  }

  /** Every upstream origin in the table. */
  get origins(): ReadonlySet<string> {
    return new Set(this.originRefs.keys());
  }

  hasOrigin(origin: string): boolean {
    return this.originRefs.has(origin);
  }

  private add(
    deploymentId: string,
    routeRows: readonly ProxyRouteRow[],
    replicaRows: readonly ProxyReplicaRow[],
    previous: DeploymentEntry | undefined,
  ): void {
    const opts = this.opts;
    const valid = replicaRows.filter(
      (r) =>
        checkAddress(r.address, opts.replicaAllowList) === undefined &&
        (r.port === null || checkPort(r.port) === undefined),
    );
    const backends = new Map<string, TableBackend>();
    const backendFor = (route: ProxyRouteRow): TableBackend => {
      const key = `${deploymentId}|${route.protocol}|${route.targetPort}`;
      const existing = backends.get(key);
      if (existing) {
        return existing;
      }
      const scheme = route.protocol === "https" ? "https" : "http";
      const replicas: TableReplica[] = [];
      for (const row of valid) {
        const port = row.port ?? route.targetPort;
        replicas.push({
          id: row.id,
          deploymentId,
          origin: `${scheme}://${urlHost(row.address)}:${port}`,
          address: row.address,
          port,
          healthy: row.status === "running" && row.healthStatus === "healthy",
          cpu: row.cpuUsage,
          cpuAt: row.cpuUpdatedAt,
        });
      }
      replicas.sort(byId); // stable rotation order
      const backend: TableBackend = {
        key,
        deploymentId,
        protocol: route.protocol,
        intervalSeconds: route.healthIntervalSeconds ?? opts.defaultIntervalSeconds,
        replicas,
        rr: previous?.backends.get(key)?.rr ?? 0,
      };
      backends.set(key, backend);
      return backend;
    };

    const routes: HostRoute[] = [];
    let primaryRoute: ProxyRouteRow | undefined;
    let primary: TableBackend | undefined;
    for (const route of routeRows) {
      if (checkDomain(route.domain) !== undefined || checkPathPrefix(route.pathPrefix) !== undefined) {
        continue;
      }
      const entry: HostRoute = { domain: route.domain, pathPrefix: route.pathPrefix, backend: backendFor(route) };
      routes.push(entry);
      // The deployment's own route for a header-routed request: the primary one, else the lowest id.
      if (!primaryRoute || isBetterPrimary(route, primaryRoute)) {
        primaryRoute = route;
        primary = entry.backend;
      }
    }
    if (!primary) {
      return; // no routable route: not in the table
    }
    this.entries.set(deploymentId, { routes, primary, backends });
    for (const backend of backends.values()) {
      for (const replica of backend.replicas) {
        push(this.replicasById, replica.id, replica);
        this.originRefs.set(replica.origin, (this.originRefs.get(replica.origin) ?? 0) + 1);
      }
    }
  }

  private remove(deploymentId: string, entry: DeploymentEntry, dropped: Set<string>): void {
    this.entries.delete(deploymentId);
    for (const backend of entry.backends.values()) {
      for (const replica of backend.replicas) {
        const same = this.replicasById.get(replica.id);
        const rest = same?.filter((r) => r.deploymentId !== deploymentId) ?? [];
        if (rest.length > 0) {
          this.replicasById.set(replica.id, rest);
        } else {
          this.replicasById.delete(replica.id);
        }
        const refs = (this.originRefs.get(replica.origin) ?? 1) - 1;
        if (refs > 0) {
          this.originRefs.set(replica.origin, refs);
        } else {
          this.originRefs.delete(replica.origin);
          dropped.add(replica.origin);
        }
      }
    }
  }

  /** Number of deployments with at least one route. */
  get deploymentCount(): number {
    return this.entries.size;
  }

  /**
   * The backend of a deployment named by the trusted routing header: the deployment's route matching host and
   * path if there is one (its target port), else its primary route. Undefined for an unknown deployment.
   */
  byDeployment(deploymentId: string, host: string, path: string): TableBackend | undefined {
    const own = this.entries.get(deploymentId);
    if (!own) {
      return undefined;
    }
    if (own.routes.length > 1) {
      const r = matchRoute(own.routes, host, path);
      if (r) {
        return r.backend;
      }
    }
    return own.primary;
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

function groupByDeployment(snapshot: ProxySnapshot) {
  const routesOf = new Map<string, ProxyRouteRow[]>();
  for (const r of snapshot.routes) {
    push(routesOf, r.deploymentId, r);
  }
  const replicasOf = new Map<string, ProxyReplicaRow[]>();
  for (const r of snapshot.replicas) {
    push(replicasOf, r.deploymentId, r);
  }
  return { routesOf, replicasOf };
}

function isBetterPrimary(a: ProxyRouteRow, b: ProxyRouteRow): boolean {
  if (a.isPrimary !== b.isPrimary) {
    return a.isPrimary;
  }
  return a.id < b.id;
}
