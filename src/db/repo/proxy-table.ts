import { and, eq, inArray, type SQL } from "drizzle-orm";
import { deploymentLocations, deploymentRouting, deployments } from "../../../schema/tables.js";
import type { CpuReading, ProxySnapshot } from "../../proxy/table.js";
import { STABLE_TRACK } from "../../render/split-config.js";
import type { Db } from "../client.js";
import { isRendered, isServing, replicaColumns, routeColumns } from "./snapshot.js";

/**
 * Everything the fallback proxy routes on, read in one consistent (repeatable read) view: the verified
 * `least-conn` routes only (the only ones the renderer sends through the proxy) and the replicas of their
 * deployments. A round-robin or ip-hash deployment is not in the table, so the proxy cannot be used to reach it
 * around the middlewares of its own Traefik router (issue 10 #1); nor can a pending route's domain (ownership not
 * proven) reach anything through it.
 *
 * Only replicas that may get new requests are in it: not draining (see `isServing`; the proxy reloads on the
 * change feed's NOTIFY, so a drain stops new picks within one debounced reload while requests already sent finish
 * on the old pool), and on the `stable` track (tracks are pools for Traefik's weighted splits, and a least-conn
 * deployment cannot have a split: without one only `stable` replicas get traffic, as in src/render/traffic.ts).
 */
export async function loadProxySnapshot(db: Db): Promise<ProxySnapshot> {
  return loadProxyRows(db, undefined);
}

/**
 * Ids per query: a coalesced batch or a large table stays well below PostgreSQL's 65,535 bind parameters, and each
 * query is an index lookup per id (deployment_routing_deployment_idx, deployment_locations_deployment_idx).
 */
const ID_CHUNK = 1000;

/**
 * What loadProxySnapshot reads, for these deployments only (the ones the change feed named): their verified
 * `least-conn` routes and the serving `stable` replicas of those that have one. A deployment absent from the
 * result has nothing for the proxy (deleted, or no longer `least-conn`), and leaves its table.
 */
export async function loadProxyDeployments(db: Db, deploymentIds: readonly string[]): Promise<ProxySnapshot> {
  if (deploymentIds.length === 0) {
    return { routes: [], replicas: [] };
  }
  return loadProxyRows(db, deploymentIds);
}

/**
 * The latest CPU readings of the replicas of these deployments (the ones in the proxy's table). Readings fire no
 * NOTIFY (they change every few seconds), so the proxy reads them on its PROXY_REFRESH_MS cadence: three columns,
 * by index, for the least-CPU deployments only.
 */
export async function loadProxyCpu(db: Db, deploymentIds: readonly string[]): Promise<CpuReading[]> {
  const out: CpuReading[] = [];
  for (let i = 0; i < deploymentIds.length; i += ID_CHUNK) {
    const rows = await db
      .select({
        id: deploymentLocations.id,
        cpuUsage: deploymentLocations.cpuUsage,
        cpuUpdatedAt: deploymentLocations.cpuUpdatedAt,
      })
      .from(deploymentLocations)
      .where(inArray(deploymentLocations.deploymentId, deploymentIds.slice(i, i + ID_CHUNK)));
    for (const r of rows) {
      out.push(r);
    }
  }
  return out;
}

/** Every deployment's proxy rows (`ids` undefined), or only these deployments'. */
async function loadProxyRows(db: Db, ids: readonly string[] | undefined): Promise<ProxySnapshot> {
  return db.transaction(
    async (tx) => {
      const routeQuery = (where: SQL | undefined) =>
        tx
          .select({
            ...routeColumns,
            isPrimary: deploymentRouting.isPrimary,
            healthIntervalSeconds: deployments.healthIntervalSeconds,
          })
          .from(deploymentRouting)
          .innerJoin(deployments, eq(deployments.id, deploymentRouting.deploymentId))
          .where(and(eq(deploymentRouting.loadBalancerAlgo, "least-conn"), isRendered, where));
      const replicaQuery = (deploymentsWhere: SQL) =>
        tx
          .select({
            ...replicaColumns,
            cpuUsage: deploymentLocations.cpuUsage,
            cpuUpdatedAt: deploymentLocations.cpuUpdatedAt,
          })
          .from(deploymentLocations)
          .where(and(deploymentsWhere, isServing, eq(deploymentLocations.track, STABLE_TRACK)));
      if (ids === undefined) {
        const routes = await routeQuery(undefined);
        const replicas =
          routes.length === 0
            ? []
            : await replicaQuery(
                inArray(
                  deploymentLocations.deploymentId,
                  tx
                    .selectDistinct({ id: deploymentRouting.deploymentId })
                    .from(deploymentRouting)
                    .where(and(eq(deploymentRouting.loadBalancerAlgo, "least-conn"), isRendered)),
                ),
              );
        return { routes, replicas };
      }
      const routes: Awaited<ReturnType<typeof routeQuery>> = [];
      const replicas: Awaited<ReturnType<typeof replicaQuery>> = [];
      for (let i = 0; i < ids.length; i += ID_CHUNK) {
        const chunk = await routeQuery(inArray(deploymentRouting.deploymentId, ids.slice(i, i + ID_CHUNK)));
        const viaProxy = [...new Set(chunk.map((r) => r.deploymentId))];
        if (viaProxy.length > 0) {
          replicas.push(...(await replicaQuery(inArray(deploymentLocations.deploymentId, viaProxy))));
        }
        routes.push(...chunk);
      }
      return { routes, replicas };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
