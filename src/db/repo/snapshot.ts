import { eq, sql } from "drizzle-orm";
import { deploymentLocations, deploymentRouting, deployments } from "../../../schema/tables.js";
import type { ReplicaInput, RouteInput, TlsCertificateInput } from "../../render/types.js";
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
    .where(isRendered);
  const routes = rows.map(({ tlsServerName, tlsCaPem, tlsInsecureSkipVerify, ...r }): RouteInput => {
    // Verification settings matter only where replicas speak TLS; null = system roots, address as name.
    const declared = tlsServerName !== null || tlsCaPem !== null || tlsInsecureSkipVerify;
    const backendTls =
      r.protocol === "https" && declared
        ? { serverName: tlsServerName, caPem: tlsCaPem, insecureSkipVerify: tlsInsecureSkipVerify }
        : null;
    return { ...r, backendTls };
  });
  const replicas = await tx.select(replicaColumns).from(deploymentLocations);
  const { certs, failed } = certKey ? await loadCertificatesForRender(tx, certKey) : { certs: [], failed: [] };
  const middlewares = await loadAllMiddlewares(tx);
  const traffic = await loadAllTraffic(tx);
  return { routes, replicas, certificates: certs, certificateFailures: failed, middlewares, traffic, changeSeq };
}

/** Current value of the change sequence; cheap enough to poll every few seconds. */
export async function readChangeSeq(db: Db): Promise<string> {
  const rows = await db.execute<{ v: string }>(
    sql`select (case when is_called then last_value else 0 end)::text as v from routing_change_seq`,
  );
  return rowsOf<{ v: string }>(rows)[0]?.v ?? "0";
}
