import { and, eq, inArray, isNull, type SQL, sql } from "drizzle-orm";
import { deploymentLocations, deploymentRouting, deployments } from "../../../schema/tables.js";
import { type DeploymentInput, deploymentsOf } from "../../render/render.js";
import type { RenderSettings, ReplicaInput, RouteInput, TlsCertificateInput } from "../../render/types.js";
import { type Db, rowsOf } from "../client.js";
import { loadCertificatesForRender } from "./certificates.js";
import { loadAllMiddlewares } from "./middlewares.js";
import { loadAllTraffic } from "./traffic.js";

/** Columns every routing reader needs (the renderer here, the fallback proxy's table in proxy-table.ts). */
export const routeColumns = {
  id: deploymentRouting.id,
  deploymentId: deploymentRouting.deploymentId,
  domain: deploymentRouting.domain,
  pathPrefix: deploymentRouting.pathPrefix,
  targetPort: deploymentRouting.targetPort,
  protocol: deploymentRouting.protocol,
};

/**
 * Routes that are routed: a `pending` route (its domain's ownership not yet proven, DOMAIN_VERIFICATION=required)
 * is never rendered, never in the fallback proxy's table, and never matched by /routing/resolve.
 */
export const isRendered = eq(deploymentRouting.verification, "verified");

/**
 * Replicas that may get new requests: not draining (`POST …/drain` sets drain_started_at; a drained replica keeps
 * it until the drain is cancelled or the replica moves). Every reader of replicaColumns filters with it — the
 * render snapshot (so /traefik/config, previews and /routing/resolve) and the fallback proxy's table
 * (proxy-table.ts) — so a drain leaves the servers with the same commit, and the change feed (migration 0008's
 * trigger on drain_started_at/drain_until) re-renders at once.
 *
 * Left out rather than rendered with weight 0, because in Traefik v3.7.9 the two are the same thing: every
 * balancer ignores a server whose weight is ≤ 0 when it is added (pkg/server/service/loadbalancer/wrr/wrr.go and
 * hrw/hrw.go, `Add`: "non-positive weight is meaningless"), so a weight-0 server keeps no sticky-cookie entry
 * (wrr registers it with the sticky handler only after that check; a cookie naming it falls through to a new
 * pick, pkg/server/service/loadbalancer/sticky.go `StickyHandler`) and no hash slot. Nothing is lost for `ip-hash`
 * either: hrw scores each (client, server) pair on its own (`getNodeScore`) and picks the highest, so removing one
 * server moves only the clients whose best score was that server; everyone else keeps their replica. Traefik's
 * `fenced` server flag (terminating but still serving sticky clients) is internal to its Kubernetes providers
 * (`toml:"-" yaml:"-" file:"-"` in pkg/config/dynamic/http_config.go) and not documented for the HTTP provider,
 * so we do not render it. In-flight requests are not cut by the reload: a request keeps the handler it started
 * with and only new ones see the new one (pkg/middlewares/handler_switcher.go, `ServeHTTP`/`UpdateHandler`), and
 * the fallback proxy closes a leaving replica's connection pool gracefully (src/proxy/server.ts `install`).
 */
export const isServing = isNull(deploymentLocations.drainStartedAt);

export const replicaColumns = {
  id: deploymentLocations.id,
  deploymentId: deploymentLocations.deploymentId,
  address: deploymentLocations.address,
  port: deploymentLocations.port,
  status: deploymentLocations.status,
  healthStatus: deploymentLocations.healthStatus,
  track: deploymentLocations.track,
  region: deploymentLocations.region,
};

export interface RoutingSnapshot {
  routes: RouteInput[];
  replicas: ReplicaInput[];
  certificates: TlsCertificateInput[];
  /** Certificates this instance could not decrypt (wrong CERT_ENCRYPTION_KEY): reported, not rendered. */
  certificateFailures: { id: string; reason: string }[];
  middlewares: Map<string, unknown>;
  /** Stored traffic settings per deployment (`{split, geo, resilience}`, unvalidated). */
  traffic: Map<string, unknown>;
  /** Value of routing_change_seq when the snapshot was read. */
  changeSeq: string;
}

/** Reads everything the renderer needs in one consistent (repeatable read) view; pending routes are left out. */
export async function loadSnapshot(db: Db, certKey?: Buffer): Promise<RoutingSnapshot> {
  return db.transaction((tx) => readSnapshot(tx, certKey), {
    isolationLevel: "repeatable read",
    accessMode: "read only",
  });
}

/**
 * The body of loadSnapshot inside a transaction the caller holds (a preview reads its own uncommitted writes).
 * Consistent only when that transaction is repeatable read.
 */
export async function readSnapshot(tx: Db, certKey?: Buffer): Promise<RoutingSnapshot> {
  const changeSeq = await readChangeSeq(tx);
  const { routes, replicas } = await readRows(tx);
  const { certs, failed } = certKey ? await loadCertificatesForRender(tx, certKey) : { certs: [], failed: [] };
  const middlewares = await loadAllMiddlewares(tx);
  const traffic = await loadAllTraffic(tx);
  return { routes, replicas, certificates: certs, certificateFailures: failed, middlewares, traffic, changeSeq };
}

/**
 * The rows of these deployments only, grouped per deployment (an incremental re-render, issue 16): what
 * readSnapshot reads, filtered by deployment id, in one repeatable-read view. A deployment with no rows left is
 * simply absent. Certificates are not read: a change to them sends the feed's empty payload (a full reload).
 */
export async function loadDeployments(db: Db, ids: readonly string[]): Promise<DeploymentInput[]> {
  if (ids.length === 0) {
    return [];
  }
  return db.transaction(
    async (tx) => {
      const { routes, replicas } = await readRows(tx, ids);
      const middlewares = await loadAllMiddlewares(tx, ids);
      const traffic = await loadAllTraffic(tx, ids);
      // Only the settings matter for grouping: deploymentsOf reads none of them.
      return deploymentsOf({ routes, replicas, middlewares, traffic, settings: NO_SETTINGS });
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}

const NO_SETTINGS = {} as RenderSettings;

/** Routes (verified, with their deployment's settings) and serving replicas; all of them, or these deployments'. */
async function readRows(tx: Db, ids?: readonly string[]): Promise<{ routes: RouteInput[]; replicas: ReplicaInput[] }> {
  const only = <T extends SQL>(
    cond: T,
    col: typeof deploymentRouting.deploymentId | typeof deploymentLocations.deploymentId,
  ) => (ids ? (and(cond, inArray(col, [...ids])) as SQL) : cond);
  const rows = await tx
    .select({
      ...routeColumns,
      loadBalancerAlgo: deploymentRouting.loadBalancerAlgo,
      sslEnabled: deploymentRouting.sslEnabled,
      sslCertResolver: deploymentRouting.sslCertResolver,
      healthPath: deployments.healthPath,
      healthIntervalSeconds: deployments.healthIntervalSeconds,
      healthTimeoutSeconds: deployments.healthTimeoutSeconds,
      healthExpectedStatus: deployments.healthExpectedStatus,
      healthMode: deployments.healthMode,
      tlsIncludeApex: deploymentRouting.tlsIncludeApex,
      tlsServerName: deployments.backendTlsServerName,
      tlsCaPem: deployments.backendTlsCaPem,
      tlsInsecureSkipVerify: deployments.backendTlsInsecureSkipVerify,
    })
    .from(deploymentRouting)
    .innerJoin(deployments, eq(deployments.id, deploymentRouting.deploymentId))
    .where(only(isRendered, deploymentRouting.deploymentId));
  const routes = rows.map(({ tlsServerName, tlsCaPem, tlsInsecureSkipVerify, ...r }): RouteInput => {
    // Verification settings matter only where replicas speak TLS; null = system roots, address as name.
    const declared = tlsServerName !== null || tlsCaPem !== null || tlsInsecureSkipVerify;
    const backendTls =
      r.protocol === "https" && declared
        ? { serverName: tlsServerName, caPem: tlsCaPem, insecureSkipVerify: tlsInsecureSkipVerify }
        : null;
    return { ...r, backendTls };
  });
  const replicas = await tx
    .select(replicaColumns)
    .from(deploymentLocations)
    .where(only(isServing, deploymentLocations.deploymentId));
  return { routes, replicas };
}

/** Current value of the change sequence; cheap enough to poll every few seconds. */
export async function readChangeSeq(db: Db): Promise<string> {
  const rows = await db.execute<{ v: string }>(
    sql`select (case when is_called then last_value else 0 end)::text as v from routing_change_seq`,
  );
  return rowsOf<{ v: string }>(rows)[0]?.v ?? "0";
}
